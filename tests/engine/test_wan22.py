"""Wan 2.2 TI2V's shape of model: text- and image-to-video on one set of weights, shared in memory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kinema.engine.architectures import tiny_ti2v_pipeline
from kinema.engine.base import GenerationRequest
from kinema.engine.device import select_placement
from kinema.engine.registry import ModelRegistry
from kinema.engine.wan import WanBackend


@pytest.fixture(scope="module")
def ti2v_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ti2v") / "wan22-ti2v-tiny"
    tiny_ti2v_pipeline().save_pretrained(path)
    return path


def test_ti2v_image_to_video_shares_the_text_to_video_weights(registry: ModelRegistry, ti2v_dir: Path) -> None:
    # the catalogue's wan2.2-ti2v-5b entry, pointed at a miniature of the same shape
    spec = registry.resolve("wan2.2-ti2v-5b")
    placement = select_placement("cpu")
    t2v = WanBackend(spec, "t2v", ti2v_dir, placement)
    t2v.load()
    i2v = WanBackend(spec, "i2v", ti2v_dir, placement, share_with=t2v)
    i2v.load()
    assert type(i2v.pipeline).__name__ == "WanImageToVideoPipeline"
    assert i2v.pipeline.transformer is t2v.pipeline.transformer
    # the per-token-timestep switch lives in the pipeline config and must come along, or i2v would
    # silently run the Wan 2.1 conditioning path the 5B transformer was not trained for
    assert i2v.pipeline.config.expand_timesteps is True
    assert i2v.pipeline.image_encoder is None

    def request(task: str, **extra: object) -> GenerationRequest:
        return GenerationRequest(
            task=task,  # type: ignore[arg-type]
            prompt="a red cat",
            width=96,  # multiples of 32: 16x VAE, 2x patches
            height=64,
            num_frames=9,
            fps=spec.fps,
            num_inference_steps=2,
            guidance_scale=5.0,
            seed=5,
            **extra,  # type: ignore[arg-type]
        )

    steps: list[int] = []
    red = i2v.generate(
        request("i2v", image=Image.new("RGB", (96, 64), (230, 20, 20))),
        lambda d, t: steps.append(d),
        lambda: False,
    ).frames
    blue = i2v.generate(
        request("i2v", image=Image.new("RGB", (96, 64), (20, 20, 230))), lambda d, t: None, lambda: False
    ).frames
    text = t2v.generate(request("t2v"), lambda d, t: None, lambda: False).frames
    assert red.shape == blue.shape == text.shape == (9, 64, 96, 3)
    assert steps == [1, 2]
    assert not np.array_equal(red, blue)


def test_ti2v_sizes_must_be_multiples_of_32(registry: ModelRegistry, ti2v_dir: Path) -> None:
    spec = registry.resolve("wan2.2-ti2v-5b")
    backend = WanBackend(spec, "t2v", ti2v_dir, select_placement("cpu"))
    backend.load()
    bad = GenerationRequest(
        task="t2v",
        prompt="x",
        width=80,
        height=64,
        num_frames=9,
        fps=24,
        num_inference_steps=1,
        guidance_scale=1.0,
    )
    with pytest.raises(ValueError, match="multiples of 32"):
        backend.generate(bad, lambda d, t: None, lambda: False)
