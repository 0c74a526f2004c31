"""A watermark that is not found in frames too small to carry one is reported as such, not as absent."""

from __future__ import annotations

import numpy as np
import pytest

from kinema.media.encode import encode_mp4
from kinema.provenance.watermark import MIN_MARK_SIDE, WatermarkPayload, detect, detect_video, embed

PAYLOAD = WatermarkPayload(deployment_id=0x1234, job_tag=0xCAFEF00D)


def noise(height: int, width: int, frames: int = 9, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (frames, height, width, 3), dtype=np.uint8)


@pytest.mark.parametrize(("height", "width"), [(64, 96), (96, 64), (MIN_MARK_SIDE - 16, 256)])
def test_unmarked_small_frames_are_too_small(height: int, width: int) -> None:
    found = detect_video(encode_mp4(noise(height, width), 8))
    assert not found.found and found.too_small and found.frame_size == (width, height)


@pytest.mark.parametrize(("height", "width"), [(MIN_MARK_SIDE, 256), (480, 832)])
def test_unmarked_large_frames_are_not_found(height: int, width: int) -> None:
    found = detect(noise(height, width, frames=3))
    assert not found.found and not found.too_small and found.frame_size == (width, height)


def test_a_mark_found_in_small_frames_is_found_not_too_small() -> None:
    marked = embed(np.full((9, 64, 96, 3), 120, np.uint8), PAYLOAD)  # flat frames: nothing to hide the mark
    found = detect(marked)
    assert found.found and found.payload == PAYLOAD and not found.too_small


def test_the_miniature_default_size_carries_a_mark_through_delivery() -> None:
    marked = embed(noise(160, 256, frames=17, seed=3), PAYLOAD)
    found = detect_video(encode_mp4(marked, 8))
    assert found.found and found.payload == PAYLOAD
