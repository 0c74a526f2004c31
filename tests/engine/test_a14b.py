"""Wan 2.2 A14B's shape of model: two experts (high-noise ``transformer``, low-noise ``transformer_2``)
switched at the boundary timestep, run through the miniature ``tiny-wan-a14b``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from kinema.engine.base import GenerationRequest, Task
from kinema.engine.registry import TINY_WAN_A14B, ModelRegistry, ModelSpec, UnsupportedRequest, tiny_a14b_spec
from kinema.engine.runtime import Engine
from kinema.engine.speed import configure_speed
from kinema.engine.wan import WanBackend


@pytest.fixture(scope="module")
def spec() -> ModelSpec:
    return tiny_a14b_spec()


@pytest.fixture(scope="module")
def a14b_engine(spec: ModelSpec, tmp_path_factory: pytest.TempPathFactory) -> Engine:
    engine = Engine(ModelRegistry([spec]), tmp_path_factory.mktemp("a14b"), 1 << 30, device="cpu")
    assert engine.ensure_miniatures() == [TINY_WAN_A14B]  # built offline by the registered builder
    assert engine.ensure_miniatures() == []  # and only once
    return engine


def _request(spec: ModelSpec, task: Task, **extra: Any) -> GenerationRequest:
    fields: dict[str, Any] = {
        "task": task,
        "prompt": "a red cat",
        "width": 96,
        "height": 64,
        "num_frames": 9,
        "fps": spec.fps,
        "num_inference_steps": spec.default_steps,
        "guidance_scale": spec.default_guidance,
        "seed": 3,
        **extra,
    }
    return GenerationRequest(**fields)


@pytest.fixture
def expert_calls(a14b_engine: Engine, spec: ModelSpec) -> Iterator[Callable[[Task], list[tuple[str, float]]]]:
    """Records (expert, timestep) for every forward of either expert of a task's pipeline."""
    calls: list[tuple[str, float]] = []
    handles: list[Any] = []

    def watch(task: Task) -> list[tuple[str, float]]:
        pipe = a14b_engine.backend_for(spec, task).pipeline
        for name in ("transformer", "transformer_2"):

            def hook(module: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], name: str = name) -> None:
                calls.append((name, float(kwargs["timestep"].flatten()[0])))

            handles.append(getattr(pipe, name).register_forward_pre_hook(hook, with_kwargs=True))
        return calls

    yield watch
    for handle in handles:
        handle.remove()


@pytest.mark.parametrize(("task", "boundary"), [("t2v", 0.875), ("i2v", 0.9)])
def test_both_experts_run_and_switch_at_the_boundary(
    a14b_engine: Engine,
    spec: ModelSpec,
    expert_calls: Callable[[Task], list[tuple[str, float]]],
    task: Task,
    boundary: float,
) -> None:
    backend = a14b_engine.backend_for(spec, task)
    pipe = backend.pipeline
    assert pipe.config.boundary_ratio == boundary
    assert pipe.transformer is not pipe.transformer_2
    calls = expert_calls(task)
    extra = {"image": Image.new("RGB", (96, 64), (200, 30, 30))} if task == "i2v" else {}
    steps: list[int] = []
    with a14b_engine.use(spec, task) as running:
        frames = running.generate(_request(spec, task, **extra), lambda d, t: steps.append(d), lambda: False).frames
    assert frames.shape == (9, 64, 96, 3)
    assert steps == [1, 2, 3, 4]

    # With classifier-free guidance each step calls its expert twice (conditional, unconditional).
    timesteps = [float(t) for t in pipe.scheduler.timesteps]
    threshold = boundary * pipe.scheduler.config.num_train_timesteps
    expected = [("transformer" if t >= threshold else "transformer_2", t) for t in timesteps for _ in range(2)]
    assert calls == expected
    names = [name for name, _ in calls]
    assert "transformer" in names and "transformer_2" in names  # the miniature's schedule crosses the boundary
    assert names.index("transformer_2") == len(names) - names[::-1].index("transformer") == 4  # one switch


def test_low_noise_expert_gets_its_own_guidance(a14b_engine: Engine, spec: ModelSpec) -> None:
    backend = a14b_engine.backend_for(spec, "t2v")
    assert isinstance(backend, WanBackend)
    pipe = backend.pipeline
    assert backend._guidance_inputs(pipe, _request(spec, "t2v")) == {"guidance_scale": 4.0, "guidance_scale_2": 3.0}
    # a caller's own guidance (or turbo's 1.0) goes to both experts
    assert backend._guidance_inputs(pipe, _request(spec, "t2v", guidance_scale=6.0)) == {
        "guidance_scale": 6.0,
        "guidance_scale_2": 6.0,
    }
    # and the second guidance really reaches the pipeline
    with a14b_engine.use(spec, "t2v") as running:
        running.generate(_request(spec, "t2v", num_inference_steps=1), lambda d, t: None, lambda: False)
    assert pipe._guidance_scale_2 == 3.0


def test_memory_counts_both_experts(a14b_engine: Engine, spec: ModelSpec) -> None:
    backend = a14b_engine.backend_for(spec, "t2v")
    pipe = backend.pipeline
    experts = sum(t.numel() * t.element_size() for m in (pipe.transformer, pipe.transformer_2) for t in m.parameters())
    assert backend.memory_bytes() > experts  # both experts plus text encoder and VAE
    # read from the checkpoint headers, transformer_2/ included (rotary tables are not saved: a few KB less)
    assert experts < backend.estimate_bytes() <= backend.memory_bytes() < 1.05 * backend.estimate_bytes()


def test_fast_preset_caches_both_experts(a14b_engine: Engine, spec: ModelSpec) -> None:
    pipe = a14b_engine.backend_for(spec, "t2v").pipeline
    try:
        configure_speed(pipe, "fast")
        assert pipe.transformer.is_cache_enabled and pipe.transformer_2.is_cache_enabled
        configure_speed(pipe, "exact")
        assert not pipe.transformer.is_cache_enabled and not pipe.transformer_2.is_cache_enabled
    finally:
        configure_speed(pipe, "exact")


def test_catalogue_entries_resolve_and_validate_sizes(registry: ModelRegistry) -> None:
    t2v = registry.resolve("wan2.2-t2v-a14b")
    i2v = registry.resolve("Wan2.2-I2V-A14B")
    assert t2v.tasks["t2v"].repo_id == "Wan-AI/Wan2.2-T2V-A14B-Diffusers"
    assert i2v.tasks["i2v"].repo_id == "Wan-AI/Wan2.2-I2V-A14B-Diffusers"
    for spec in (t2v, i2v):
        assert spec.fps == 16 and spec.default_steps == 40
        assert registry.num_frames(spec, None) == 81
        assert registry.native_size(spec, None) == (1280, 720)
        assert registry.native_size(spec, "832x480") == (832, 480)
        assert registry.native_size(spec, "1024x1792") == (720, 1280)
        with pytest.raises(UnsupportedRequest) as info:
            registry.native_size(spec, "1280x704")
        assert info.value.param == "size"
        # one expert on the GPU at a time with model offload: the peak is one expert, not both
        assert spec.largest_component_gb * 2 < spec.weights_gb
    assert t2v.flow_shift_for(1280, 720) == t2v.flow_shift_for(832, 480) == 12.0
    assert i2v.flow_shift_for(1280, 720) == i2v.flow_shift_for(480, 832) == 5.0
    assert (t2v.default_guidance, t2v.guidance_2_for(t2v.default_guidance)) == (4.0, 3.0)
    with pytest.raises(UnsupportedRequest, match="cannot do i2v"):
        registry.source(t2v, "i2v")


def test_miniature_build_is_complete(a14b_engine: Engine, spec: ModelSpec) -> None:
    root = Path(a14b_engine.models_dir) / TINY_WAN_A14B
    for task in spec.tasks:
        assert (root / task / "transformer_2").is_dir()
        assert "boundary_ratio" in (root / task / "model_index.json").read_text()
