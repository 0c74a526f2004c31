"""The on-device media steps (torch, run here on the CPU) against their numpy references: the watermark, the
visible label and the float -> uint8 conversion give the same frames, and the torch-marked MP4 is detected."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kinema.engine.frames import to_uint8, to_uint8_tensor
from kinema.media.device import add_label_tensor
from kinema.media.encode import encode_mp4
from kinema.media.label import add_label
from kinema.provenance.watermark import WatermarkPayload, detect_video, embed, job_tag
from kinema.provenance.wm_torch import CHUNK_FRAMES, _reduce, embed_tensor
from testkit.watermark_attacks import FPS, realistic_clip, x264

PAYLOAD = WatermarkPayload(deployment_id=0x1234, job_tag=job_tag("video_wm_torch"))


def _compare(frames: np.ndarray, *, strength: float | None = None) -> np.ndarray:
    """Both embeds of ``frames``; asserts they agree to one level in a rare pixel, returns the torch one."""
    reference = embed(frames, PAYLOAD, strength=strength)
    marked = embed_tensor(torch.from_numpy(frames), PAYLOAD, strength=strength).numpy()
    assert marked.shape == reference.shape and marked.dtype == np.uint8
    diff = np.abs(marked.astype(np.int16) - reference)
    assert diff.max() <= 1
    assert np.mean(diff > 0) < 1e-4  # float32 sums in another order flip a rounding now and then, no more
    assert not np.array_equal(marked, frames)  # it did mark
    return marked


@pytest.mark.parametrize(("height", "width"), [(160, 256), (67, 101), (480, 832)])
def test_torch_embed_matches_numpy_on_noise(height: int, width: int) -> None:
    # Noise is as busy as it gets: every frame goes through the RMS cap and its refinement loop.
    frames = np.random.default_rng(height).integers(0, 256, (CHUNK_FRAMES + 3, height, width, 3), dtype=np.uint8)
    _compare(frames)


def test_torch_embed_matches_numpy_on_real_frames_and_strengths() -> None:
    clip = realistic_clip(frames=20, height=240, width=416, seed=3)
    _compare(clip)
    _compare(clip, strength=2.5)
    flat = np.full((4, 96, 128, 3), (30, 140, 250), np.uint8)  # flat: the amplitude floor, and clipping at 255
    _compare(flat)


def test_reduce_is_pillows_bit_for_bit_with_partial_blocks() -> None:
    from PIL import Image

    frames = np.random.default_rng(5).integers(0, 256, (2, 67, 101, 3), dtype=np.uint8)
    expected = np.stack([np.asarray(Image.fromarray(f).reduce(4)) for f in frames])
    np.testing.assert_array_equal(_reduce(torch.from_numpy(frames)).numpy(), expected)


def test_payload_is_read_back_from_a_torch_marked_mp4() -> None:
    clip = realistic_clip(frames=32, seed=1)
    marked = embed_tensor(torch.from_numpy(clip), PAYLOAD).numpy()
    for data in (encode_mp4(marked, FPS), x264(marked, crf=28)):
        found = detect_video(data)
        assert found.found and found.payload == PAYLOAD
    assert not detect_video(encode_mp4(clip, FPS)).found


def test_torch_embed_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="uint8"):
        embed_tensor(torch.zeros((2, 32, 32, 3), dtype=torch.float32), PAYLOAD)
    with pytest.raises(ValueError, match="uint8"):
        embed_tensor(torch.zeros((32, 32, 3), dtype=torch.uint8), PAYLOAD)
    with pytest.raises(ValueError, match="strength"):
        embed_tensor(torch.zeros((1, 32, 32, 3), dtype=torch.uint8), PAYLOAD, strength=9.0)


def test_label_on_the_device_draws_the_same_pixels() -> None:
    clip = realistic_clip(frames=3, height=160, width=256, seed=2)
    labelled = add_label_tensor(torch.from_numpy(clip), "AI-generated").numpy()
    np.testing.assert_array_equal(labelled, add_label(clip, "AI-generated"))
    assert not np.array_equal(labelled, clip)


def test_uint8_conversion_on_the_device_is_the_same() -> None:
    values = np.random.default_rng(0).normal(0.5, 0.6, (3, 16, 24, 3)).astype(np.float32)
    values[0, 0, :5, 0] = [-0.5, 0.0, 0.5 / 255, 1.0, 1.5]  # clipping, and a tie rounded to even
    np.testing.assert_array_equal(to_uint8_tensor(torch.from_numpy(values)).numpy(), to_uint8(values))
    halves = torch.from_numpy(values).to(torch.bfloat16)  # a pipeline may hand back its own dtype
    np.testing.assert_array_equal(to_uint8_tensor(halves).numpy(), to_uint8(halves.to(torch.float32).numpy()))
