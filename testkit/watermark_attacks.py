"""Realistic synthetic video, and the re-encodes and crops someone re-posting it would apply: what the
watermark tests (tests/provenance/) and benchmarks (bench/watermark*.py) attack a watermark with.

Re-encodes are libx264 through PyAV at ffmpeg's defaults (preset medium, CRF 23 unless asked), not
Kinema's own encoder.
"""

from __future__ import annotations

import io

import av
import numpy as np
from av.video.stream import VideoStream
from PIL import Image

FPS = 16
FRAMES, HEIGHT, WIDTH = 48, 240, 416  # 3 s at 16 fps


def realistic_clip(frames: int = FRAMES, height: int = HEIGHT, width: int = WIDTH, seed: int = 0) -> np.ndarray:
    """Moving colour gradients + a panning textured layer + light per-frame grain (as bench/encode.py)."""
    rng = np.random.default_rng(seed)
    coarse = rng.normal(0.0, 1.0, (height // 4 + 40, width // 4 + 60, 3)).astype(np.float32)
    texture = np.kron(coarse, np.ones((4, 4, 1), np.float32))
    for axis in (0, 1):  # soften the 4x4 blocks into blobs
        texture = (texture + sum(np.roll(texture, shift, axis) for shift in (1, 2, -1))) / 4
    texture *= 18.0
    y = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    x = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :, None]
    phase = np.array([0.0, 2.1, 4.2], np.float32)
    clip = np.empty((frames, height, width, 3), np.uint8)
    for t in range(frames):
        progress = t / frames
        frame = 128.0 + 80.0 * np.sin(2 * np.pi * (x * 1.3 + y * 0.7 + progress) + phase)
        dy, dx = int(20 * progress), int(50 * progress)
        frame = frame + texture[dy : dy + height, dx : dx + width]
        frame += rng.normal(0.0, 2.0, (height, width, 3)).astype(np.float32)
        clip[t] = np.clip(frame, 0, 255).astype(np.uint8)
    return clip


def x264(frames: np.ndarray, *, crf: int = 23) -> bytes:
    """An MP4 made the way ffmpeg would by default (libx264, preset medium), not with our encoder."""
    _, height, width, _ = frames.shape
    out = io.BytesIO()
    with av.open(out, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=FPS, options={"crf": str(crf), "preset": "medium"})
        assert isinstance(stream, VideoStream)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return out.getvalue()


def decode_rgb(data: bytes) -> np.ndarray:
    with av.open(io.BytesIO(data), mode="r") as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


def half_size(frames: np.ndarray) -> np.ndarray:
    _, height, width, _ = frames.shape
    return np.stack(
        [np.asarray(Image.fromarray(f).resize((width // 2, height // 2), Image.Resampling.BICUBIC)) for f in frames]
    )


def even(frames: np.ndarray) -> np.ndarray:
    """yuv420p needs even sides."""
    return frames[:, : frames.shape[1] // 2 * 2, : frames.shape[2] // 2 * 2]


def crop_centre(frames: np.ndarray) -> np.ndarray:
    """10% off: 5% off each side."""
    _, height, width, _ = frames.shape
    dy, dx = round(height * 0.05), round(width * 0.05)
    return even(frames[:, dy : height - dy, dx : width - dx])


def crop_offset(frames: np.ndarray) -> np.ndarray:
    """10% off the top and the left (one corner), by an offset that is no multiple of the chip or tile."""
    _, height, width, _ = frames.shape
    return even(frames[:, round(height * 0.1) + 1 :, round(width * 0.1) + 3 :])
