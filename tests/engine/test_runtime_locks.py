"""The engine's locks: a load on one thread does not hold up generation on another; one device never
runs two generations at once.

These use a stand-in backend whose ``load`` and ``generate`` only wait and record when they ran, so the
tests see the engine's locking alone, in well under a second.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from kinema.engine import families
from kinema.engine.base import CancelFn, GenerationRequest, GenerationResult, ProgressFn, Task
from kinema.engine.device import Placement
from kinema.engine.footprint import OffloadMode
from kinema.engine.layout import BUILT_MARKER
from kinema.engine.registry import ComponentSource, ModelRegistry, ModelSpec
from kinema.engine.runtime import Engine

FAMILY = "standin"


class StandInBackend:
    """A backend with no weights: ``load`` runs ``on_load`` (a test hook that may block) and ``generate``
    records its start and end in ``log``, sleeping ``generate_seconds`` in between, and returns one black frame."""

    on_load: ClassVar[dict[str, Callable[[], None]]] = {}  # model name -> hook run inside load
    log: ClassVar[list[tuple[str, str]]] = []  # (model name, "start" | "end") in the order they happened
    log_lock: ClassVar[threading.Lock] = threading.Lock()
    generate_seconds: ClassVar[float] = 0.05

    def __init__(
        self,
        spec: ModelSpec,
        task: Task,
        path: Path,
        placement: Placement,
        *,
        share_with: Any = None,
        offload: OffloadMode = "none",
        compile_blocks: bool = False,
        turbo_lora: Path | None = None,
    ) -> None:
        self.spec, self.task, self.path, self.placement = spec, task, path, placement
        self._loaded = False

    @staticmethod
    def weights_key_for(path: Path, placement: Placement) -> str:
        return f"{path}@{placement.device}"

    @property
    def weights_key(self) -> str:
        return self.weights_key_for(self.path, self.placement)

    @property
    def loaded(self) -> bool:
        return self._loaded

    @property
    def busy(self) -> bool:
        return False

    @property
    def pipeline(self) -> Any:
        return None

    def load(self) -> None:
        hook = self.on_load.get(self.spec.name)
        if hook is not None:
            hook()
        self._loaded = True

    def unload(self) -> None:
        self._loaded = False

    def memory_bytes(self) -> int:
        return 1 if self._loaded else 0

    def estimate_bytes(self) -> int:
        return 1

    def generate(self, request: GenerationRequest, progress: ProgressFn, should_cancel: CancelFn) -> GenerationResult:
        self._record("start")
        time.sleep(self.generate_seconds)
        self._record("end")
        return GenerationResult(frames=np.zeros((1, 1, 1, 3), dtype=np.uint8), fps=1)

    def _record(self, what: str) -> None:
        with self.log_lock:
            self.log.append((self.spec.name, what))


@pytest.fixture
def standin(tmp_path: Path, tiny: ModelSpec) -> Iterator[tuple[Engine, ModelSpec, ModelSpec]]:
    """An engine serving two stand-in models, "standin-a" and "standin-b", with room for both."""
    (tmp_path / FAMILY).mkdir()
    (tmp_path / FAMILY / BUILT_MARKER).write_text("{}")
    specs = []
    for name in ("standin-a", "standin-b"):
        (tmp_path / FAMILY / name).mkdir()
        (tmp_path / FAMILY / name / "model_index.json").write_text(json.dumps({}))
        source = ComponentSource(pipeline="StandIn", subdir=f"{FAMILY}/{name}")
        specs.append(dataclasses.replace(tiny, name=name, family=FAMILY, tasks={"t2v": source}, turbo=None))
    families.register_family(FAMILY, f"{__name__}:StandInBackend")
    StandInBackend.on_load.clear()
    StandInBackend.log.clear()
    engine = Engine(ModelRegistry(specs), tmp_path, memory_budget_bytes=1 << 20, device="cpu")
    yield engine, specs[0], specs[1]
    StandInBackend.on_load.clear()


def _generate(engine: Engine, spec: ModelSpec) -> None:
    request = GenerationRequest(
        "t2v", "p", width=1, height=1, num_frames=1, fps=1, num_inference_steps=1, guidance_scale=1
    )
    with engine.use(spec, "t2v") as backend:
        backend.generate(request, lambda done, total: None, lambda: False)


def test_a_load_does_not_hold_up_generation_on_a_loaded_model(
    standin: tuple[Engine, ModelSpec, ModelSpec],
) -> None:
    engine, a, b = standin
    engine.backend_for(a, "t2v")
    loading, generated = threading.Event(), threading.Event()
    finished_while_loading: list[bool] = []

    def slow_load() -> None:
        loading.set()
        # The load cannot finish until the other thread has generated on "a": with a lock held across
        # the load, that generation could not even start and this wait would time out.
        finished_while_loading.append(generated.wait(timeout=10))

    StandInBackend.on_load[b.name] = slow_load
    loader = threading.Thread(target=engine.backend_for, args=(b, "t2v"))
    loader.start()
    assert loading.wait(timeout=10)
    _generate(engine, a)
    generated.set()
    loader.join(timeout=10)
    assert finished_while_loading == [True]
    assert engine.loaded_models() == ["standin-b", "standin-a"]  # most recently used first


def test_two_models_never_generate_at_once_on_one_device(standin: tuple[Engine, ModelSpec, ModelSpec]) -> None:
    engine, a, b = standin
    start = threading.Barrier(4)

    def run(spec: ModelSpec) -> None:
        start.wait()
        for _ in range(3):
            _generate(engine, spec)

    threads = [threading.Thread(target=run, args=(spec,)) for spec in (a, b, a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    log = StandInBackend.log
    assert len(log) == 2 * 12
    # Serialised: every start is followed by its own end before anything else starts.
    for (name_start, what_start), (name_end, what_end) in zip(log[::2], log[1::2], strict=True):
        assert (what_start, what_end) == ("start", "end") and name_start == name_end
    assert {name for name, _ in log} == {"standin-a", "standin-b"}
