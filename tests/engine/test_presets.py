"""Correctness on real checkpoints and the speed presets, exercised on the tiny-wan miniatures.

What each test pins down: Wan's reference negative prompt stands in for a missing one (encoded once), the
scheduler's flow shift follows the resolution, the VAE tiles only when memory needs it, offload is a GPU
setting, and each speed preset configures the pipeline as documented (cache hook, LoRA, back to stock).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from kinema.engine.base import GenerationRequest
from kinema.engine.families import backend_class
from kinema.engine.footprint import (
    choose_offload,
    needs_vae_tiling,
    vae_decode_bytes,
    wan_transformer_flops,
    wan_video_tokens,
)
from kinema.engine.frames import to_uint8
from kinema.engine.registry import WAN_NEGATIVE_PROMPT, ModelRegistry, ModelSpec
from kinema.engine.runtime import Engine
from kinema.engine.speed import TURBO_ADAPTER, current_speed
from kinema.engine.wan import WanBackend

Make = Callable[..., GenerationRequest]
GIB = 1 << 30


def _never() -> bool:
    return False


def _ignore(step: int, total: int) -> None:
    pass


@pytest.fixture(scope="module")
def backend(registry: ModelRegistry, models_dir: Path, tiny: ModelSpec) -> Iterator[WanBackend]:
    """A t2v backend of its own: these tests change its pipeline's state (presets, scheduler)."""
    engine = Engine(registry, models_dir, memory_budget_bytes=GIB, device="cpu")
    loaded = engine.backend_for(tiny, "t2v")
    assert isinstance(loaded, WanBackend)
    yield loaded
    loaded.unload()


def _frames(backend: WanBackend, request: GenerationRequest) -> np.ndarray:
    return backend.generate(request, _ignore, _never).frames


def test_catalogue_has_reference_settings_per_model(registry: ModelRegistry) -> None:
    t2v = registry.resolve("wan2.1-t2v-1.3b")
    i2v = registry.resolve("wan2.1-i2v-14b-480p")
    ti2v = registry.resolve("wan2.2-ti2v-5b")
    assert (t2v.default_steps, i2v.default_steps, ti2v.default_steps) == (50, 40, 50)
    assert t2v.flow_shift_for(832, 480) == t2v.flow_shift_for(480, 832) == 3.0
    assert ti2v.flow_shift_for(1280, 704) == 5.0
    assert all(s.default_negative_prompt == WAN_NEGATIVE_PROMPT for s in (t2v, i2v, ti2v))
    # The 1.3B needs ~15 GB with its UMT5-XXL text encoder; model offload brings the peak to the encoder.
    assert 14 <= t2v.weights_gb <= 16 and t2v.largest_component_gb < t2v.weights_gb
    assert i2v.weights_gb > 40
    # Only models with a step-distilled LoRA offer turbo.
    assert t2v.speeds() == ["exact", "fast"]
    assert i2v.speeds() == ["exact", "fast", "turbo"]
    assert i2v.turbo is not None and (i2v.turbo.steps, i2v.turbo.guidance) == (4, 1.0)
    assert i2v.turbo.lora.repo_id == "lightx2v/Wan2.1-Distill-Loras"


def test_default_negative_prompt_is_wans_and_encoded_once(backend: WanBackend, make_request: Make) -> None:
    calls: list[int] = []
    encoder = backend.pipeline.text_encoder
    hook = encoder.register_forward_hook(lambda *_: calls.append(1))
    try:
        request = make_request(negative_prompt=None, num_frames=9, num_inference_steps=2)
        first = _frames(backend, request)
        assert len(calls) == 2  # the prompt, and the default negative prompt once
        second = _frames(backend, request)
        assert len(calls) == 3  # the prompt only: the negative embedding is cached
    finally:
        hook.remove()
    np.testing.assert_array_equal(first, second)
    # The same frames as the stock pipeline given Wan's negative prompt in words ...
    pipe = backend.pipeline
    stock = pipe(
        prompt=request.prompt,
        negative_prompt=WAN_NEGATIVE_PROMPT,
        height=64,
        width=96,
        num_frames=9,
        num_inference_steps=2,
        guidance_scale=request.guidance_scale,
        generator=torch.Generator().manual_seed(1234),
        output_type="np",
    ).frames[0]
    np.testing.assert_array_equal(first, to_uint8(stock))
    # ... and not those of an empty negative prompt (what the pipeline does when given none).
    empty = _frames(backend, make_request(negative_prompt="", num_frames=9, num_inference_steps=2))
    assert not np.array_equal(first, empty)


def test_flow_shift_follows_the_resolution(backend: WanBackend, make_request: Make) -> None:
    _frames(backend, make_request(width=256, height=160, num_frames=5, num_inference_steps=1))
    assert backend.pipeline.scheduler.config.flow_shift == 5.0
    _frames(backend, make_request(num_frames=5, num_inference_steps=1))
    assert backend.pipeline.scheduler.config.flow_shift == 3.0


def test_vae_tiles_only_when_memory_needs_it(backend: WanBackend, make_request: Make) -> None:
    # The real Wan 2.1 VAE (base_dim 96) at 480p x 81 frames needs a few GB untiled, 720p about twice that.
    at_480p = vae_decode_bytes(96, 832, 480, 81)
    assert 3 * GIB < at_480p < 6 * GIB
    assert vae_decode_bytes(96, 1280, 720, 81) > 2 * at_480p
    assert not needs_vae_tiling(96, 832, 480, 81, free_bytes=60 * GIB)
    assert needs_vae_tiling(96, 832, 480, 81, free_bytes=4 * GIB)
    pipe = backend.pipeline
    request = make_request(num_frames=9)
    assert WanBackend.set_vae_tiling(pipe, request, free_bytes=GIB) is False
    assert not pipe.vae.use_tiling
    assert WanBackend.set_vae_tiling(pipe, request, free_bytes=1 << 10) is True
    assert pipe.vae.use_tiling
    WanBackend.set_vae_tiling(pipe, request, free_bytes=GIB)


def test_offload_is_chosen_from_memory_and_refused_on_the_cpu(
    registry: ModelRegistry, models_dir: Path, tiny: ModelSpec
) -> None:
    t2v = registry.resolve("wan2.1-t2v-1.3b")
    assert choose_offload(t2v.weights_gb, t2v.largest_component_gb, gpu_gb=80) == "none"
    assert choose_offload(t2v.weights_gb, t2v.largest_component_gb, gpu_gb=16) == "model"
    assert choose_offload(t2v.weights_gb, t2v.largest_component_gb, gpu_gb=8) == "sequential"
    with pytest.raises(ValueError, match="needs a GPU"):
        Engine(registry, models_dir, memory_budget_bytes=GIB, device="cpu", offload="model")
    engine = Engine(registry, models_dir, memory_budget_bytes=GIB, device="cpu")  # "auto" -> none on the CPU
    assert engine.offload_for(t2v) == "none"
    assert engine.compile_blocks is False  # torch.compile of the blocks is a CUDA lever
    with pytest.raises(ValueError, match="only makes sense with a GPU"):
        WanBackend(tiny, "t2v", models_dir / "tiny-wan" / "t2v", engine.placement, offload="sequential")


def test_speed_presets_configure_the_pipeline(backend: WanBackend, make_request: Make) -> None:
    pipe = backend.pipeline
    transformer = pipe.transformer
    base = make_request(num_frames=5, num_inference_steps=2, guidance_scale=1.0)
    exact = _frames(backend, base)
    assert current_speed(pipe) == "exact" and not transformer.is_cache_enabled

    fast = _frames(backend, make_request(num_frames=5, num_inference_steps=4, speed="fast"))
    assert current_speed(pipe) == "fast"
    assert transformer.is_cache_enabled  # diffusers' First Block Cache hook on the transformer
    assert fast.shape == (5, 64, 96, 3)

    turbo = _frames(backend, make_request(num_frames=5, num_inference_steps=2, guidance_scale=1.0, speed="turbo"))
    assert current_speed(pipe) == "turbo"
    assert not transformer.is_cache_enabled  # leaving fast removed the hook
    assert pipe.get_active_adapters() == [TURBO_ADAPTER]  # the distilled LoRA, through load_lora_weights
    assert not np.array_equal(turbo, exact)

    again = _frames(backend, base)
    assert current_speed(pipe) == "exact"
    np.testing.assert_array_equal(again, exact)  # LoRA disabled, no hook: the stock computation again


def test_turbo_needs_a_distilled_lora(registry: ModelRegistry, models_dir: Path, make_request: Make) -> None:
    spec = registry.resolve("tiny-wan")
    placement = Engine(registry, models_dir, memory_budget_bytes=GIB, device="cpu").placement
    no_lora = WanBackend(spec, "t2v", models_dir / "tiny-wan" / "t2v", placement, turbo_lora=None)
    no_lora.load()
    from kinema.engine.base import ModelNotAvailable

    with pytest.raises(ModelNotAvailable, match="kinema pull tiny-wan"):
        no_lora.generate(make_request(num_frames=5, speed="turbo"), _ignore, _never)
    no_lora.unload()


def test_families_map_to_backends(registry: ModelRegistry, models_dir: Path, tiny: ModelSpec) -> None:
    assert backend_class("wan") is WanBackend
    with pytest.raises(
        ValueError, match="no backend for model family .nope.; known families: hunyuanvideo15, ltx, wan"
    ):
        backend_class("nope")
    stray = ModelSpec(
        name="stray",
        family="nope",
        description="x",
        tasks=dict(tiny.tasks),
        fps=8,
        sizes={"96x64": (96, 64)},
        default_size="96x64",
        seconds={"1": 9},
        default_seconds="1",
        default_steps=1,
        default_guidance=1.0,
    )
    engine = Engine(ModelRegistry([stray]), models_dir, memory_budget_bytes=GIB, device="cpu")
    with pytest.raises(ValueError, match="family 'nope'"):
        engine.backend_for(stray, "t2v")


def test_flop_model_matches_the_issue_anchor() -> None:
    # Wan2.1-T2V-1.3B, 480p x 81 frames, 50 steps with CFG: 28.3 PFLOP, ~70% of it self-attention.
    tokens = wan_video_tokens(832, 480, 81)
    assert tokens == 32760
    total = 100 * wan_transformer_flops(tokens)
    assert total == pytest.approx(28.3e15, rel=0.02)
    attention = 100 * 30 * 4 * tokens * tokens * 1536
    assert 0.68 < attention / total < 0.72
