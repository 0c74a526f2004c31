"""The speed presets' extra levers on the miniatures: CFG batching (exact), FP8 linear layers (fast), and
Wan 2.2 A14B's turbo with one distilled LoRA per expert.

What each test pins down: batching the two guidance passes gives the same frames with about half the
transformer forwards and is only on in ``exact``; FP8 quantises the blocks' linear layers for ``fast`` and a
later ``exact`` job gets the checkpoint's weights back (same frames as before); the A14B turbo preset loads
and enables a LoRA in both experts. The quality figures are printed (``pytest -s``) for docs/models.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from kinema.engine.base import GenerationRequest
from kinema.engine.hub import lora_path
from kinema.engine.registry import TINY_WAN_A14B, ModelRegistry, ModelSpec, builtin_registry, tiny_a14b_spec
from kinema.engine.runtime import Engine
from kinema.engine.speed import (
    TURBO_ADAPTER,
    cfg_batch_hook,
    configure_speed,
    current_speed,
    fp8_layers,
    fp8_mode,
)
from kinema.engine.wan import WanBackend

Make = Callable[..., GenerationRequest]
GIB = 1 << 30


def _never() -> bool:
    return False


def _ignore(step: int, total: int) -> None:
    pass


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB between two uint8 clips (inf when identical)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def _frames(backend: WanBackend, request: GenerationRequest) -> np.ndarray:
    return backend.generate(request, _ignore, _never).frames


def _backend(engine: Engine, spec: ModelSpec, task: str, **levers: Any) -> WanBackend:
    """A backend of its own (not the engine's cached one), with the levers chosen explicitly."""
    path = engine.models_dir / spec.tasks[task].subdir  # type: ignore[operator]
    lora = lora_path(spec.turbo.lora, engine.models_dir) if spec.turbo is not None else None
    backend = WanBackend(spec, task, path, engine.placement, turbo_lora=lora, **levers)  # type: ignore[arg-type]
    backend.load()
    return backend


class ForwardCounter:
    """Counts transformer forwards by a hook on its output projection (runs once per forward, any batch)."""

    def __init__(self, transformer: torch.nn.Module) -> None:
        self.count = 0
        self.batches: list[int] = []
        self._handle = transformer.proj_out.register_forward_hook(self._seen)

    def _seen(self, module: torch.nn.Module, args: tuple[Any, ...], output: torch.Tensor) -> None:
        self.count += 1
        self.batches.append(int(output.shape[0]))

    def remove(self) -> None:
        self._handle.remove()


@pytest.fixture(scope="module")
def cpu_engine(registry: ModelRegistry, models_dir: Path) -> Engine:
    return Engine(registry, models_dir, memory_budget_bytes=GIB, device="cpu")


@pytest.mark.parametrize("task", ["t2v", "i2v", "vace"])
def test_cfg_batching_is_lossless_with_half_the_forwards(
    cpu_engine: Engine, tiny: ModelSpec, make_request: Make, task: str
) -> None:
    from PIL import Image

    image = Image.new("RGB", (96, 64), (200, 40, 40))
    extra: dict[str, Any] = {"image": image} if task == "i2v" else {}
    if task == "vace":
        extra = {"reference_images": [image]}
    request = make_request(task, num_frames=9, num_inference_steps=4, guidance_scale=5.0, **extra)
    stock = _backend(cpu_engine, tiny, task, cfg_batching=False)
    batched = _backend(cpu_engine, tiny, task, cfg_batching=True)
    try:
        assert stock.speed_settings.cfg_batching is False and batched.speed_settings.cfg_batching is True
        counts = []
        clips = []
        for backend in (stock, batched):
            counter = ForwardCounter(backend.pipeline.transformer)
            try:
                clips.append(_frames(backend, request))
            finally:
                counter.remove()
            counts.append(counter)
        hook = cfg_batch_hook(batched.pipeline.transformer)
        assert hook is not None and cfg_batch_hook(stock.pipeline.transformer) is None
        # 4 steps with guidance: 8 forwards stock; batched, the first step learns the pair (2), then 1 per step.
        assert counts[0].count == 8 and counts[0].batches == [1] * 8
        assert counts[1].count == 5 and counts[1].batches == [1, 1, 2, 2, 2]
        difference = int(np.abs(clips[0].astype(np.int16) - clips[1].astype(np.int16)).max())
        print(f"\nCFG batching {task}: PSNR {psnr(clips[0], clips[1]):.1f} dB, max |diff| {difference}/255")
        assert psnr(clips[0], clips[1]) >= 40 and difference <= 2

        # Without guidance there is no second pass: nothing to batch, the same frames as stock.
        single = make_request(task, num_frames=9, num_inference_steps=3, guidance_scale=1.0, **extra)
        counter = ForwardCounter(batched.pipeline.transformer)
        try:
            plain = _frames(batched, single)
        finally:
            counter.remove()
        assert counter.count == 3
        np.testing.assert_array_equal(plain, _frames(stock, single))
    finally:
        stock.unload()
        batched.unload()


def test_cfg_batching_is_an_exact_only_lever(cpu_engine: Engine, tiny: ModelSpec, make_request: Make) -> None:
    backend = _backend(cpu_engine, tiny, "t2v", cfg_batching=True)
    pipe = backend.pipeline
    try:
        first = _frames(backend, make_request(num_frames=5, num_inference_steps=2))
        assert current_speed(pipe) == "exact" and cfg_batch_hook(pipe.transformer) is not None
        _frames(backend, make_request(num_frames=5, num_inference_steps=2, speed="fast"))
        assert cfg_batch_hook(pipe.transformer) is None and pipe.transformer.is_cache_enabled
        _frames(backend, make_request(num_frames=5, num_inference_steps=2, guidance_scale=1.0, speed="turbo"))
        assert cfg_batch_hook(pipe.transformer) is None
        again = _frames(backend, make_request(num_frames=5, num_inference_steps=2))
        assert cfg_batch_hook(pipe.transformer) is not None
        np.testing.assert_array_equal(first, again)
    finally:
        backend.unload()


def test_cpu_defaults_leave_the_gpu_levers_off(cpu_engine: Engine, tiny: ModelSpec, models_dir: Path) -> None:
    backend = WanBackend(tiny, "t2v", models_dir / "tiny-wan" / "t2v", cpu_engine.placement)
    settings = backend.speed_settings
    assert (settings.cfg_batching, settings.fp8) == (False, False)  # batching and FP8 are GPU levers by default
    assert settings.weights == models_dir / "tiny-wan" / "t2v"
    assert fp8_mode(torch.device("cpu")) == "weight-only"  # torchao is installed; no float8 matmuls on a CPU


def test_fp8_fast_preset_and_exact_weights_come_back(cpu_engine: Engine, tiny: ModelSpec, make_request: Make) -> None:
    from torchao.quantization import Float8Tensor

    backend = _backend(cpu_engine, tiny, "t2v", fp8=True)
    plain = _backend(cpu_engine, tiny, "t2v", fp8=False)
    pipe = backend.pipeline
    request = make_request(num_frames=9, num_inference_steps=4)
    try:
        exact = _frames(backend, request)
        linear = {n: m for n, m in pipe.transformer.named_modules() if isinstance(m, torch.nn.Linear)}
        checkpoint = {n: m.weight.detach().clone() for n, m in linear.items()}

        fast = _frames(backend, make_request(num_frames=9, num_inference_steps=4, speed="fast"))
        quantised = fp8_layers(pipe.transformer)
        assert quantised and all(name.startswith("blocks.") for name in quantised)
        assert all(isinstance(linear[name].weight, Float8Tensor) for name in quantised)
        assert not isinstance(pipe.transformer.proj_out.weight, Float8Tensor)  # outside the blocks: untouched
        cache_only = _frames(plain, make_request(num_frames=9, num_inference_steps=4, speed="fast"))
        print(
            f"\nfast vs exact (tiny-wan, 4 steps): FP8 + first-block cache {psnr(exact, fast):.1f} dB, "
            f"cache alone {psnr(exact, cache_only):.1f} dB"
        )
        assert fast.shape == exact.shape and not np.array_equal(fast, cache_only)  # FP8 changed the numbers

        again = _frames(backend, request)  # back to exact: the checkpoint's weights, read from disk again
        assert fp8_layers(pipe.transformer) == []
        for name, module in pipe.transformer.named_modules():
            if isinstance(module, torch.nn.Linear):
                assert not isinstance(module.weight, Float8Tensor)
                torch.testing.assert_close(module.weight, checkpoint[name], rtol=0, atol=0)
        np.testing.assert_array_equal(again, exact)
    finally:
        backend.unload()
        plain.unload()


def test_fp8_with_a_loaded_lora_restores_the_base_layers(
    cpu_engine: Engine, tiny: ModelSpec, make_request: Make
) -> None:
    backend = _backend(cpu_engine, tiny, "t2v", fp8=True)
    try:
        exact = _frames(backend, make_request(num_frames=5, num_inference_steps=2))
        turbo_request = make_request(num_frames=5, num_inference_steps=2, guidance_scale=1.0, speed="turbo")
        turbo = _frames(backend, turbo_request)
        _frames(backend, make_request(num_frames=5, num_inference_steps=2, speed="fast"))
        assert any(".base_layer" in name for name in fp8_layers(backend.pipeline.transformer))  # LoRA-wrapped
        np.testing.assert_array_equal(_frames(backend, turbo_request), turbo)
        np.testing.assert_array_equal(_frames(backend, make_request(num_frames=5, num_inference_steps=2)), exact)
    finally:
        backend.unload()


# --- Wan 2.2 A14B turbo: one LoRA per expert ------------------------------------------------------------


@pytest.fixture(scope="module")
def a14b() -> ModelSpec:
    return tiny_a14b_spec()


@pytest.fixture(scope="module")
def a14b_engine(a14b: ModelSpec, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    engine = Engine(ModelRegistry([a14b]), tmp_path_factory.mktemp("a14b-turbo"), GIB, device="cpu")
    assert engine.ensure_miniatures() == [TINY_WAN_A14B]
    yield engine


def test_a14b_turbo_enables_a_lora_in_each_expert(a14b_engine: Engine, a14b: ModelSpec) -> None:
    assert a14b.turbo is not None and a14b.turbo.lora_2 is not None and a14b.speeds()[-1] == "turbo"
    backend = a14b_engine.backend_for(a14b, "t2v")
    assert isinstance(backend, WanBackend)
    pipe = backend.pipeline
    fields: dict[str, Any] = {"task": "t2v", "prompt": "a red cat", "width": 96, "height": 64, "num_frames": 5}
    fields.update(fps=a14b.fps, seed=3, num_inference_steps=4)
    exact_request = GenerationRequest(**fields, guidance_scale=a14b.default_guidance)
    turbo_request = GenerationRequest(**fields, guidance_scale=1.0, speed="turbo")
    exact = _frames(backend, exact_request)
    calls: list[str] = []
    handles = [
        expert.register_forward_pre_hook(lambda *_, name=name: calls.append(name))
        for name, expert in (("high", pipe.transformer), ("low", pipe.transformer_2))
    ]
    try:
        turbo = _frames(backend, turbo_request)
    finally:
        for handle in handles:
            handle.remove()
    assert {"high", "low"} <= set(calls)  # both experts ran, each with its adapter
    for expert in (pipe.transformer, pipe.transformer_2):
        assert TURBO_ADAPTER in expert.peft_config
        assert expert.active_adapters() == [TURBO_ADAPTER]
    # Different random LoRAs per expert: the low-noise expert's adapter is not the high-noise one.
    high = dict(pipe.transformer.named_parameters())["blocks.0.attn1.to_q.lora_B.kinema_turbo.weight"]
    low = dict(pipe.transformer_2.named_parameters())["blocks.0.attn1.to_q.lora_B.kinema_turbo.weight"]
    assert not torch.equal(high, low)
    assert turbo.shape == exact.shape and not np.array_equal(turbo, exact)
    np.testing.assert_array_equal(_frames(backend, exact_request), exact)  # adapters off again: stock
    configure_speed(pipe, "exact")


def test_a14b_catalogue_has_turbo_pairs() -> None:
    registry = builtin_registry()
    for name, folder in (
        ("wan2.2-t2v-a14b", "Wan2.2-T2V-A14B-4steps-lora-rank64-Seko-V1.1"),
        ("wan2.2-i2v-a14b", "Wan2.2-I2V-A14B-4steps-lora-rank64-Seko-V1"),
    ):
        spec = registry.resolve(name)
        assert spec.turbo is not None and spec.turbo.lora_2 is not None
        assert spec.turbo.lora.repo_id == spec.turbo.lora_2.repo_id == "lightx2v/Wan2.2-Lightning"
        assert spec.turbo.lora.weight_name == f"{folder}/high_noise_model.safetensors"
        assert spec.turbo.lora_2.weight_name == f"{folder}/low_noise_model.safetensors"
        assert (spec.turbo.steps, spec.turbo.guidance) == (4, 1.0) and "turbo" in spec.speeds()


def test_pull_fetches_and_locks_both_experts_loras(tmp_path: Path) -> None:
    """Against a hub cache laid out as snapshot_download leaves it (HF_HUB_OFFLINE: no network)."""
    import json

    from kinema.engine.hub import HUB_CACHE_DIR, pull, read_lock

    spec = builtin_registry().resolve("wan2.2-t2v-a14b")
    assert spec.turbo is not None and spec.turbo.lora_2 is not None
    commits = {"Wan-AI/Wan2.2-T2V-A14B-Diffusers": "1" * 40, "lightx2v/Wan2.2-Lightning": "2" * 40}
    for repo_id, commit in commits.items():
        repo = tmp_path / HUB_CACHE_DIR / ("models--" + repo_id.replace("/", "--"))
        snapshot = repo / "snapshots" / commit
        snapshot.mkdir(parents=True)
        (snapshot / "model_index.json").write_text(json.dumps({"_class_name": "WanPipeline"}))
        (repo / "refs").mkdir()
        (repo / "refs" / "main").write_text(commit)
    lightning = tmp_path / HUB_CACHE_DIR / "models--lightx2v--Wan2.2-Lightning" / "snapshots" / ("2" * 40)
    for source in spec.turbo.sources():
        (lightning / (source.weight_name or "")).parent.mkdir(parents=True, exist_ok=True)
        (lightning / (source.weight_name or "")).write_bytes(b"lora")
    assert lora_path(spec.turbo.lora_2, tmp_path) is None  # not pulled yet
    pull(spec, tmp_path)
    assert read_lock(tmp_path)["lightx2v/Wan2.2-Lightning"]["revision"] == "2" * 40
    for source in spec.turbo.sources():
        assert lora_path(source, tmp_path) == lightning / (source.weight_name or "")


def test_fp8_failure_falls_back_to_exact_weights(
    cpu_engine: Engine, tiny: ModelSpec, make_request: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A torchao that breaks half-way (stand-in: the real quantize_ on one layer, then an error) must leave the
    fast preset running without FP8 and every weight as the checkpoint has it."""
    import torchao.quantization

    real = torchao.quantization.quantize_

    def breaks_half_way(model: torch.nn.Module, config: Any, filter_fn: Any) -> None:
        first = next(name for name, m in model.named_modules() if filter_fn(m, name))
        real(model, config, filter_fn=lambda _m, fqn: fqn == first)
        raise RuntimeError("kernel not available")

    monkeypatch.setattr(torchao.quantization, "quantize_", breaks_half_way)
    backend = _backend(cpu_engine, tiny, "t2v", fp8=True)
    try:
        exact = _frames(backend, make_request(num_frames=5, num_inference_steps=2))
        fast = _frames(backend, make_request(num_frames=5, num_inference_steps=2, speed="fast"))
        assert current_speed(backend.pipeline) == "fast" and fp8_layers(backend.pipeline.transformer) == []
        plain = _backend(cpu_engine, tiny, "t2v", fp8=False)
        try:
            np.testing.assert_array_equal(
                fast, _frames(plain, make_request(num_frames=5, num_inference_steps=2, speed="fast"))
            )
        finally:
            plain.unload()
        np.testing.assert_array_equal(_frames(backend, make_request(num_frames=5, num_inference_steps=2)), exact)
    finally:
        backend.unload()
