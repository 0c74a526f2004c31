"""The engine's cache: sharing weights between tasks, LRU eviction within a budget, pins, threads."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kinema.engine.base import GenerationRequest, ModelNotAvailable
from kinema.engine.registry import ModelRegistry, ModelSpec
from kinema.engine.runtime import Engine

Make = Callable[..., GenerationRequest]
GIB = 1 << 30


def _never() -> bool:
    return False


def _ignore(step: int, total: int) -> None:
    pass


@pytest.fixture(scope="module")
def sizes(registry: ModelRegistry, models_dir: Path, tiny: ModelSpec) -> dict[str, int]:
    """Bytes each tiny backend holds once loaded (t2v and v2v are the same weights)."""
    measuring = Engine(registry, models_dir, memory_budget_bytes=GIB, device="cpu")
    return {task: measuring.backend_for(tiny, task).memory_bytes() for task in ("t2v", "i2v", "vace")}


def test_t2v_and_v2v_share_one_copy_of_the_weights(
    registry: ModelRegistry, models_dir: Path, tiny: ModelSpec, sizes: dict[str, int]
) -> None:
    engine = Engine(registry, models_dir, memory_budget_bytes=GIB, device="cpu")
    t2v = engine.backend_for(tiny, "t2v")
    v2v = engine.backend_for(tiny, "v2v")
    assert v2v.pipeline.transformer is t2v.pipeline.transformer
    assert v2v.pipeline.vae is t2v.pipeline.vae
    assert v2v.pipeline.text_encoder is t2v.pipeline.text_encoder
    # schedulers keep per-run state, so each pipeline has its own
    assert v2v.pipeline.scheduler is not t2v.pipeline.scheduler
    assert engine.resident_bytes() == sizes["t2v"] > 0


def test_v2v_loads_on_its_own_from_the_t2v_weights(
    registry: ModelRegistry, models_dir: Path, tiny: ModelSpec, make_request: Make
) -> None:
    engine = Engine(registry, models_dir, memory_budget_bytes=GIB, device="cpu")
    v2v = engine.backend_for(tiny, "v2v")  # nothing to share with: WanVideoToVideoPipeline.from_pretrained
    assert type(v2v.pipeline).__name__ == "WanVideoToVideoPipeline"
    video = [Image.new("RGB", (96, 64), (30, 10 * i, 90)) for i in range(9)]
    assert v2v.generate(make_request("v2v", video=video, num_frames=9), _ignore, _never).frames.shape == (
        9,
        64,
        96,
        3,
    )
    t2v = engine.backend_for(tiny, "t2v")  # and now t2v shares v2v's modules
    assert t2v.pipeline.transformer is v2v.pipeline.transformer


def test_estimate_from_checkpoint_headers_is_close_to_what_loads(
    registry: ModelRegistry, models_dir: Path, tiny: ModelSpec
) -> None:
    engine = Engine(registry, models_dir, memory_budget_bytes=GIB, device="cpu")
    for task in ("t2v", "i2v", "vace"):
        backend = engine.backend_for(tiny, task)
        estimate, actual = backend.estimate_bytes(), backend.memory_bytes()
        # non-persistent buffers (rotary tables) are not in the files, so the estimate is a little lower
        assert 0.8 * actual <= estimate <= actual, (task, estimate, actual)


def test_least_recently_used_is_evicted_first(
    registry: ModelRegistry, models_dir: Path, tiny: ModelSpec, sizes: dict[str, int]
) -> None:
    # room for t2v plus either of the others, never all three
    budget = sizes["t2v"] + max(sizes["i2v"], sizes["vace"]) + 1024
    assert budget < sum(sizes.values())
    engine = Engine(registry, models_dir, memory_budget_bytes=budget, device="cpu")
    t2v = engine.backend_for(tiny, "t2v")
    i2v = engine.backend_for(tiny, "i2v")
    assert engine.backend_for(tiny, "t2v") is t2v  # touch: t2v is now the most recently used
    vace = engine.backend_for(tiny, "vace")
    assert engine.loaded() == [("tiny-wan", "t2v"), ("tiny-wan", "vace")]
    assert not i2v.loaded and t2v.loaded and vace.loaded
    assert engine.resident_bytes() <= budget


def test_the_requested_backend_is_kept_even_alone_over_budget(
    registry: ModelRegistry, models_dir: Path, tiny: ModelSpec, make_request: Make
) -> None:
    engine = Engine(registry, models_dir, memory_budget_bytes=1, device="cpu")
    first = engine.backend_for(tiny, "t2v")
    second = engine.backend_for(tiny, "i2v")
    assert engine.loaded() == [("tiny-wan", "i2v")]
    assert not first.loaded
    with pytest.raises(RuntimeError, match="not loaded"):
        first.generate(make_request(), _ignore, _never)
    assert second.loaded


def test_an_evicted_partner_leaves_the_sharer_working(
    registry: ModelRegistry, models_dir: Path, tiny: ModelSpec, make_request: Make
) -> None:
    engine = Engine(registry, models_dir, memory_budget_bytes=1, device="cpu")
    t2v = engine.backend_for(tiny, "t2v")
    with engine.use(tiny, "v2v") as v2v:
        assert engine.loaded() == [("tiny-wan", "t2v"), ("tiny-wan", "v2v")]  # the partner is never evicted
        engine.backend_for(tiny, "vace")  # t2v goes; v2v is pinned and keeps the shared modules alive
        assert not t2v.loaded
        assert engine.loaded() == [("tiny-wan", "v2v"), ("tiny-wan", "vace")]
        video = [Image.new("RGB", (96, 64), (10 * i, 80, 120)) for i in range(9)]
        result = v2v.generate(make_request("v2v", video=video, num_frames=9), _ignore, _never)
    assert result.frames.shape == (9, 64, 96, 3)


def test_pinned_backends_are_not_evicted(registry: ModelRegistry, models_dir: Path, tiny: ModelSpec) -> None:
    engine = Engine(registry, models_dir, memory_budget_bytes=1, device="cpu")
    with engine.use(tiny, "t2v") as pinned:
        engine.backend_for(tiny, "i2v")
        assert pinned.loaded
        assert engine.loaded() == [("tiny-wan", "t2v"), ("tiny-wan", "i2v")]
    engine.backend_for(tiny, "vace")
    assert engine.loaded() == [("tiny-wan", "vace")]
    assert not pinned.loaded


def test_a_backend_that_is_generating_is_not_evicted(
    registry: ModelRegistry, models_dir: Path, tiny: ModelSpec, make_request: Make
) -> None:
    engine = Engine(registry, models_dir, memory_budget_bytes=1, device="cpu")
    t2v = engine.backend_for(tiny, "t2v")
    evicted_during_run: list[bool] = []

    def load_another_mid_run(done: int, total: int) -> None:
        if done == 1:  # another thread's request arrives while this clip is being made
            engine.backend_for(tiny, "i2v")
            evicted_during_run.append(not t2v.loaded)

    t2v.generate(make_request(num_inference_steps=2), load_another_mid_run, _never)
    assert evicted_during_run == [False]
    engine.backend_for(tiny, "vace")  # once idle, it goes like any other
    assert not t2v.loaded


def test_concurrent_requests_load_once(registry: ModelRegistry, models_dir: Path, tiny: ModelSpec) -> None:
    engine = Engine(registry, models_dir, memory_budget_bytes=GIB, device="cpu")
    start = threading.Barrier(4)

    def fetch(_: int) -> object:
        start.wait()
        return engine.backend_for(tiny, "t2v")

    with ThreadPoolExecutor(4) as pool:
        backends = list(pool.map(fetch, range(4)))
    assert all(b is backends[0] for b in backends)
    assert engine.loaded() == [("tiny-wan", "t2v")]


def test_sharing_backends_generate_correctly_from_two_threads(
    registry: ModelRegistry, models_dir: Path, tiny: ModelSpec, make_request: Make
) -> None:
    engine = Engine(registry, models_dir, memory_budget_bytes=GIB, device="cpu")
    t2v, v2v = engine.backend_for(tiny, "t2v"), engine.backend_for(tiny, "v2v")
    video = [Image.new("RGB", (96, 64), (120, 10 * i, 60)) for i in range(9)]
    jobs = [
        (t2v, make_request(num_frames=9, seed=3)),
        (v2v, make_request("v2v", video=video, num_frames=9, seed=3)),
    ]
    alone = [b.generate(r, _ignore, _never).frames for b, r in jobs]
    with ThreadPoolExecutor(2) as pool:
        together = list(pool.map(lambda job: job[0].generate(job[1], _ignore, _never).frames, jobs))
    for a, b in zip(alone, together, strict=True):
        np.testing.assert_array_equal(a, b)


def test_missing_real_model_says_how_to_pull_it(registry: ModelRegistry, models_dir: Path) -> None:
    engine = Engine(registry, models_dir, memory_budget_bytes=GIB, device="cpu")
    with pytest.raises(ModelNotAvailable) as info:
        engine.backend_for(registry.resolve("sora-2"), "t2v")
    assert "model 'wan2.1-t2v-1.3b' is not on this machine" in str(info.value)
    assert "run `kinema pull wan2.1-t2v-1.3b`" in str(info.value)
    assert engine.loaded() == []


def test_ensure_miniatures_rebuilds_an_incomplete_build_identically(
    registry: ModelRegistry, models_dir: Path, tmp_path: Path
) -> None:
    (tmp_path / "tiny-wan" / "t2v").mkdir(parents=True)  # a build that died half way: no marker
    engine = Engine(registry, tmp_path, memory_budget_bytes=GIB, device="cpu")
    assert engine.ensure_miniatures() == ["tiny-wan"]
    assert engine.ensure_miniatures() == []
    # a fixed seed: the same bytes as the session's build, file for file
    built = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.safetensors"))
    assert len(built) == 11  # t2v 3, i2v 4 (with the image encoder), vace 3, the turbo LoRA
    for rel in built:
        assert (tmp_path / rel).read_bytes() == (models_dir / rel).read_bytes(), rel
