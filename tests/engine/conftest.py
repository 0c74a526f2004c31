"""Shared fixtures: miniature Wan models built once per session, and an engine that serves them."""

from __future__ import annotations

import os

# Tests must never reach the Hugging Face hub. Set before anything imports huggingface_hub, and also
# patched into its constants in case another test package imported it first.
os.environ["HF_HUB_OFFLINE"] = "1"

from collections.abc import Callable, Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import huggingface_hub.constants  # noqa: E402
import pytest  # noqa: E402

from kinema.engine.base import GenerationRequest, Task  # noqa: E402
from kinema.engine.registry import TINY_WAN, ModelRegistry, ModelSpec, builtin_registry  # noqa: E402

huggingface_hub.constants.HF_HUB_OFFLINE = True


@pytest.fixture(scope="module", autouse=True)
def _single_cpu_thread() -> Iterator[None]:
    """Run the engine tests' torch work on one CPU thread, restoring the setting afterwards.

    Miniatures gain nothing from intra-op parallelism, and on a small shared machine two OpenMP threads
    stall whenever another process holds a core: clips that take 0.3 s took up to 11 s with two threads.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models dir holding the tiny-wan miniatures, built once for the whole session."""
    from kinema.engine.tiny import build_tiny_models

    root = tmp_path_factory.mktemp("models")
    assert build_tiny_models(root) is True
    return root


@pytest.fixture(scope="session")
def registry() -> ModelRegistry:
    return builtin_registry()


@pytest.fixture(scope="session")
def tiny(registry: ModelRegistry) -> ModelSpec:
    return registry.resolve(TINY_WAN)


@pytest.fixture(scope="session")
def engine(registry: ModelRegistry, models_dir: Path):
    """An engine on the CPU with room for every miniature, shared so each is loaded only once."""
    from kinema.engine.runtime import Engine

    return Engine(registry, models_dir, memory_budget_bytes=1 << 30, device="cpu")


@pytest.fixture
def make_request(tiny: ModelSpec) -> Callable[..., GenerationRequest]:
    """Builds a tiny-wan request: 96x64, 17 frames, 4 steps unless overridden."""

    def make(task: Task = "t2v", **overrides: object) -> GenerationRequest:
        fields: dict[str, object] = {
            "task": task,
            "prompt": "a red cat walking on the beach at sunset",
            "negative_prompt": "blurry",
            "width": 96,
            "height": 64,
            "num_frames": 17,
            "fps": tiny.fps,
            "num_inference_steps": tiny.default_steps,
            "guidance_scale": tiny.default_guidance,
            "seed": 1234,
        }
        fields.update(overrides)
        return GenerationRequest(**fields)  # type: ignore[arg-type]

    return make
