"""encode_mp4: decode the bytes back with PyAV and check what it promises."""

from __future__ import annotations

import io
from fractions import Fraction

import av
import numpy as np
import pytest

from kinema.media.encode import encode_mp4
from testkit.media import gradient_clip, solid_clip, top_level_boxes


def _decode(data: bytes) -> tuple[av.video.stream.VideoStream, np.ndarray, list[float]]:
    with av.open(io.BytesIO(data), mode="r") as container:
        stream = container.streams.video[0]
        frames, times = [], []
        for frame in container.decode(stream):
            frames.append(frame.to_ndarray(format="rgb24"))
            times.append(frame.time)
        return stream, np.stack(frames), times


@pytest.mark.parametrize("preset", ["ultrafast", "veryfast"])  # veryfast adds B-frames
def test_round_trip_keeps_count_size_rate_and_pixels(preset: str) -> None:
    clip = gradient_clip(frames=17, height=96, width=128)
    data = encode_mp4(clip, 16, preset=preset)

    stream, decoded, times = _decode(data)
    assert stream.codec_context.name == "h264"
    assert stream.codec_context.pix_fmt == "yuv420p"
    assert stream.average_rate == Fraction(16)
    assert stream.frames == 17
    assert decoded.shape == clip.shape
    assert times == pytest.approx([i / 16 for i in range(17)])
    error = np.abs(decoded.astype(np.int16) - clip.astype(np.int16))
    assert error.mean() < 2.0


def test_colour_matrix_is_tagged_so_saturated_colours_survive() -> None:
    # A mismatch between the matrix used to encode and the one a decoder assumes (BT.601 vs
    # BT.709) shifts saturated colours by 10+ levels; tagged, they come back within a few.
    colours = [(230, 20, 20), (20, 230, 20), (20, 20, 230), (240, 200, 30)]
    clip = solid_clip(colours)
    stream, decoded, _ = _decode(encode_mp4(clip, 8))
    assert stream.codec_context.colorspace == av.video.reformatter.Colorspace.ITU709
    assert stream.codec_context.color_range == av.video.reformatter.ColorRange.MPEG
    for frame, colour in zip(decoded, colours, strict=True):
        assert np.abs(frame.reshape(-1, 3).mean(axis=0) - colour).max() < 4


def test_moov_precedes_mdat_for_progressive_playback() -> None:
    boxes = top_level_boxes(encode_mp4(gradient_clip(frames=5), 16))
    assert boxes[0] == "ftyp"
    assert "moov" in boxes and "mdat" in boxes
    assert boxes.index("moov") < boxes.index("mdat")


@pytest.mark.parametrize("fps", [1, 8, 24, 30])
def test_frame_rate_is_exact(fps: int) -> None:
    stream, decoded, _ = _decode(encode_mp4(gradient_clip(frames=3, height=32, width=32), fps))
    assert stream.average_rate == Fraction(fps)
    assert len(decoded) == 3


def test_single_frame_clip() -> None:
    stream, decoded, _ = _decode(encode_mp4(gradient_clip(frames=1), 16))
    assert decoded.shape == (1, 96, 128, 3)


def test_odd_dimensions_are_padded_by_replicating_the_edge() -> None:
    clip = gradient_clip(frames=3, height=47, width=63)
    clip[:, :, -1] = (200, 30, 30)  # a distinct last column, to see it replicated
    _, decoded, _ = _decode(encode_mp4(clip, 16))
    assert decoded.shape == (3, 48, 64, 3)
    assert np.abs(decoded[:, :47, :63].astype(int) - clip).mean() < 3.0
    # The new column copies the red last column; the new row copies the last row.
    assert np.abs(decoded[:, :47, 63].astype(int) - (200, 30, 30)).mean() < 12
    assert np.abs(decoded[:, 47, :63].astype(int) - clip[:, 46].astype(int)).mean() < 6


def test_even_dimensions_are_kept_exactly() -> None:
    _, decoded, _ = _decode(encode_mp4(gradient_clip(frames=2, height=50, width=70), 16))
    assert decoded.shape[1:3] == (50, 70)


def test_non_contiguous_frames_are_accepted() -> None:
    clip = gradient_clip(frames=4, height=64, width=96)
    cropped = clip[:, 8:56, 16:80]  # a strided view
    _, decoded, _ = _decode(encode_mp4(cropped, 16))
    assert decoded.shape == (4, 48, 64, 3)
    assert np.abs(decoded.astype(int) - cropped).mean() < 2.5


@pytest.mark.parametrize(
    ("frames", "fps", "kwargs"),
    [
        (np.zeros((2, 16, 16, 3), np.float32), 16, {}),
        (np.zeros((16, 16, 3), np.uint8), 16, {}),
        (np.zeros((2, 16, 16, 4), np.uint8), 16, {}),
        (np.zeros((0, 16, 16, 3), np.uint8), 16, {}),
        (np.zeros((2, 16, 16, 3), np.uint8), 0, {}),
        (np.zeros((2, 16, 16, 3), np.uint8), 16, {"crf": 60}),
        (np.zeros((2, 16, 16, 3), np.uint8), 16, {"preset": "warp"}),
    ],
)
def test_malformed_arguments_are_programming_errors(frames: np.ndarray, fps: int, kwargs: dict) -> None:
    with pytest.raises(ValueError):
        encode_mp4(frames, fps, **kwargs)


def test_preset_changes_the_encoding() -> None:
    clip = gradient_clip(frames=8)
    assert encode_mp4(clip, 16, preset="ultrafast") != encode_mp4(clip, 16, preset="veryfast")
