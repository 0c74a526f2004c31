"""The LTX-Video family through the family registry: its miniature built offline, loaded and run by the engine."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from PIL import Image

from kinema.engine.base import GenerationRequest
from kinema.engine.families import backend_class
from kinema.engine.ltx import LTX_NEGATIVE_PROMPT, TINY_LTX, LTXBackend, tiny_ltx_spec
from kinema.engine.registry import ModelRegistry, ModelSpec
from kinema.engine.runtime import Engine


def _never() -> bool:
    return False


def _ignore(step: int, total: int) -> None:
    pass


def _request(spec: ModelSpec, **overrides: object) -> GenerationRequest:
    fields: dict[str, object] = {
        "task": "t2v",
        "prompt": "a red kite over the sea",
        "width": 96,
        "height": 64,
        "num_frames": 9,
        "fps": spec.fps,
        "num_inference_steps": 2,
        "guidance_scale": spec.default_guidance,
        "seed": 3,
    }
    fields.update(overrides)
    return GenerationRequest(**fields)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def ltx_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    engine = Engine(ModelRegistry([tiny_ltx_spec()]), tmp_path_factory.mktemp("ltx"), 1 << 30, device="cpu")
    assert engine.ensure_miniatures() == [TINY_LTX]  # built offline by the family's registered builder
    assert engine.ensure_miniatures() == []
    yield engine
    engine.unload_all()


def test_ltx_family_runs_text_and_image_to_video_on_shared_weights(ltx_engine: Engine) -> None:
    spec = tiny_ltx_spec()
    assert backend_class("ltx") is LTXBackend
    t2v = ltx_engine.backend_for(spec, "t2v")
    assert isinstance(t2v, LTXBackend) and type(t2v.pipeline).__name__ == "LTXPipeline"
    frames = t2v.generate(_request(spec, negative_prompt=None), _ignore, _never).frames
    assert frames.shape == (9, 64, 96, 3)
    i2v = ltx_engine.backend_for(spec, "i2v")
    assert i2v.pipeline.transformer is t2v.pipeline.transformer  # one copy of the weights for both tasks
    image = Image.new("RGB", (96, 64), (200, 30, 30))
    steps: list[tuple[int, int]] = []
    out = i2v.generate(_request(spec, task="i2v", image=image), lambda d, t: steps.append((d, t)), _never)
    assert out.frames.shape == (9, 64, 96, 3)
    assert steps == [(1, 2), (2, 2)]


def test_ltx_geometry_and_presets(ltx_engine: Engine) -> None:
    spec = tiny_ltx_spec()
    assert spec.default_negative_prompt == LTX_NEGATIVE_PROMPT
    backend = ltx_engine.backend_for(spec, "t2v")
    with pytest.raises(ValueError, match="8k\\+1"):
        backend.generate(_request(spec, num_frames=5), _ignore, _never)
    with pytest.raises(ValueError, match="multiples of 32"):
        backend.generate(_request(spec, width=80), _ignore, _never)
    # The presets are the engine's, not Wan's: the cache hook attaches to LTX's transformer too.
    backend.generate(_request(spec, speed="fast"), _ignore, _never)
    assert backend.pipeline.transformer.is_cache_enabled
    backend.generate(_request(spec), _ignore, _never)
    assert not backend.pipeline.transformer.is_cache_enabled
    with pytest.raises(ValueError, match="8k\\+1 frames"):
        ModelSpec(**{**_spec_fields(spec), "seconds": {"1": 9, "2": 16}})


def _spec_fields(spec: ModelSpec) -> dict[str, object]:
    return {
        "name": spec.name,
        "family": spec.family,
        "description": spec.description,
        "tasks": dict(spec.tasks),
        "fps": spec.fps,
        "sizes": dict(spec.sizes),
        "default_size": spec.default_size,
        "seconds": dict(spec.seconds),
        "default_seconds": spec.default_seconds,
        "default_steps": spec.default_steps,
        "default_guidance": spec.default_guidance,
    }
