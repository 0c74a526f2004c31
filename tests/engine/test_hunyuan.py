"""HunyuanVideo 1.5 through the family registry: its miniature built offline, loaded and run by the engine."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from PIL import Image

from kinema.engine.base import Cancelled, GenerationRequest
from kinema.engine.families import backend_class
from kinema.engine.hunyuan import TINY_HUNYUAN15, HunyuanVideo15Backend, tiny_hunyuan15_spec
from kinema.engine.registry import ModelRegistry, ModelSpec, builtin_registry
from kinema.engine.runtime import Engine


def _never() -> bool:
    return False


def _request(spec: ModelSpec, **overrides: object) -> GenerationRequest:
    fields: dict[str, object] = {
        "task": "t2v",
        "prompt": 'a shop sign that reads "OPEN"',  # quoted text goes to the ByT5 glyph encoder too
        "width": 48,
        "height": 32,
        "num_frames": 9,
        "fps": spec.fps,
        "num_inference_steps": 2,
        "guidance_scale": spec.default_guidance,
        "seed": 5,
    }
    fields.update(overrides)
    return GenerationRequest(**fields)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def hunyuan_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    engine = Engine(ModelRegistry([tiny_hunyuan15_spec()]), tmp_path_factory.mktemp("hy15"), 1 << 30, device="cpu")
    assert engine.ensure_miniatures() == [TINY_HUNYUAN15]  # built offline by the family's registered builder
    assert engine.ensure_miniatures() == []
    yield engine
    engine.unload_all()


def test_hunyuan_family_runs_text_to_video_with_progress_seed_and_guidance(hunyuan_engine: Engine) -> None:
    spec = tiny_hunyuan15_spec()
    assert backend_class("hunyuanvideo15") is HunyuanVideo15Backend
    backend = hunyuan_engine.backend_for(spec, "t2v")
    assert type(backend.pipeline).__name__ == "HunyuanVideo15Pipeline"
    assert backend.speed_settings.cfg_batching is False  # the guider runs both passes itself
    steps: list[tuple[int, int]] = []
    first = backend.generate(_request(spec), lambda s, t: steps.append((s, t)), _never).frames
    assert first.shape == (9, 32, 48, 3) and first.dtype == np.uint8
    assert steps == [(1, 2), (2, 2)]  # one report per denoising step, from the scheduler hook
    assert "step" not in vars(backend.pipeline.scheduler)  # the hook is gone after the run
    assert backend.pipeline.scheduler.config.shift == 5.0
    again = backend.generate(_request(spec), lambda s, t: None, _never).frames
    assert np.array_equal(first, again)  # same seed, same frames
    unguided = backend.generate(_request(spec, guidance_scale=1.0), lambda s, t: None, _never).frames
    assert backend.pipeline.guider.guidance_scale == 1.0  # the request's scale reached the guider
    assert not np.array_equal(first, unguided)


def test_hunyuan_cancels_between_steps_and_checks_geometry(hunyuan_engine: Engine) -> None:
    spec = tiny_hunyuan15_spec()
    backend = hunyuan_engine.backend_for(spec, "t2v")
    steps: list[int] = []
    with pytest.raises(Cancelled):
        backend.generate(_request(spec), lambda s, t: steps.append(s), lambda: len(steps) >= 1)
    assert steps == [1]  # stopped after the first step, never decoded
    assert "step" not in vars(backend.pipeline.scheduler)
    with pytest.raises(ValueError, match="multiples of 4"):
        backend.generate(_request(spec, width=50), lambda s, t: None, _never)
    with pytest.raises(ValueError, match="2k\\+1"):
        backend.generate(_request(spec, num_frames=8), lambda s, t: None, _never)


def test_hunyuan_image_to_video_keeps_the_requested_size_and_refuses_other_buckets(hunyuan_engine: Engine) -> None:
    spec = tiny_hunyuan15_spec()
    backend = hunyuan_engine.backend_for(spec, "i2v")
    assert type(backend.pipeline).__name__ == "HunyuanVideo15ImageToVideoPipeline"
    # A first frame of another shape is fitted to the request's size, which the pipeline then keeps.
    image = Image.new("RGB", (300, 120), (200, 30, 30))
    steps: list[tuple[int, int]] = []
    frames = backend.generate(_request(spec, task="i2v", image=image), lambda s, t: steps.append((s, t)), _never).frames
    assert frames.shape == (9, 32, 48, 3) and steps == [(1, 2), (2, 2)]
    portrait = backend.generate(
        _request(spec, task="i2v", image=image, width=32, height=48), lambda s, t: None, _never
    ).frames
    assert portrait.shape == (9, 48, 32, 3)
    # 64x32 is a multiple of the geometry but not one of the pipeline's buckets: refused, not silently resized.
    with pytest.raises(ValueError, match="nearest training bucket"):
        backend.generate(_request(spec, task="i2v", image=image, width=64, height=32), lambda s, t: None, _never)
    with pytest.raises(ValueError, match="needs an image"):
        backend.generate(_request(spec, task="i2v"), lambda s, t: None, _never)


def test_hunyuan_catalogue_entry_follows_the_reference_settings() -> None:
    spec = builtin_registry().resolve("hunyuanvideo-1.5-t2v-480p")
    assert spec.family == "hunyuanvideo15"
    source = spec.tasks["t2v"]
    assert (source.pipeline, source.repo_id) == (
        "HunyuanVideo15Pipeline",
        "hunyuanvideo-community/HunyuanVideo-1.5-Diffusers-480p_t2v",
    )
    # Tencent's 480p text-to-video settings: guidance 6.0, shift 5.0, 50 steps, 121 frames at 24 fps.
    assert (spec.default_guidance, spec.default_steps, spec.fps) == (6.0, 50, 24)
    assert spec.seconds["5"] == 121 and spec.sizes[spec.default_size] == (848, 480)
    assert spec.flow_shift_for(848, 480) == 5.0 and spec.flow_shift_for(480, 848) == 5.0
    assert all(n % 4 == 1 for n in spec.seconds.values())
    assert all(w % 16 == 0 and h % 16 == 0 for w, h in spec.sizes.values())


def test_hunyuan_image_to_video_entry_lists_the_pipelines_own_buckets() -> None:
    from diffusers.pipelines.hunyuan_video1_5.image_processor import HunyuanVideo15ImageProcessor

    spec = builtin_registry().resolve("hunyuanvideo-1.5-i2v-480p")
    assert spec.tasks["i2v"].repo_id == "hunyuanvideo-community/HunyuanVideo-1.5-Diffusers-480p_i2v"
    # The real 480p checkpoint: 16x VAE, target size 640. Every native size is the bucket its own aspect
    # ratio picks, so the backend's size check passes for everything the catalogue accepts.
    buckets = HunyuanVideo15ImageProcessor(vae_scale_factor=16)
    for w, h in spec.sizes.values():
        assert buckets.calculate_default_height_width(height=h, width=w, target_size=640) == (h, w)
    assert (spec.default_guidance, spec.flow_shift_for(848, 480), spec.flow_shift_for(480, 832)) == (6.0, 5.0, 5.0)
