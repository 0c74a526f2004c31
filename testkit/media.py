"""Real media files made on the fly for the media tests and the hostile uploads (nothing is checked in)."""

from __future__ import annotations

import io
import struct
import zlib
from fractions import Fraction
from typing import cast

import av
import numpy as np
from av.audio.stream import AudioStream
from av.video.stream import VideoStream
from PIL import Image


def gradient_clip(frames: int = 12, height: int = 96, width: int = 128) -> np.ndarray:
    """A smooth, slowly moving colour gradient: easy to encode, so round-trip error stays small."""
    y = np.linspace(0.0, 1.0, height)[:, None]
    x = np.linspace(0.0, 1.0, width)[None, :]
    clip = np.empty((frames, height, width, 3), np.uint8)
    for t in range(frames):
        shift = t / (4 * frames)
        red = 40 + 170 * ((x + shift) % 1.0) * np.ones_like(y)
        green = 40 + 170 * y * np.ones_like(x)
        blue = 40 + 85 * (x + y)
        clip[t] = np.stack([red, green, blue], axis=-1).astype(np.uint8)
    return clip


def solid_clip(colours: list[tuple[int, int, int]], height: int = 48, width: int = 64) -> np.ndarray:
    """One solid-colour frame per entry of ``colours``."""
    return np.stack([np.full((height, width, 3), colour, np.uint8) for colour in colours])


def encode_with_pyav(
    frames: np.ndarray,
    fps: int,
    *,
    container_format: str,
    codec: str,
    rotation: int = 0,
    video_streams: int = 1,
    with_audio: bool = False,
) -> bytes:
    """Encode with PyAV directly (not our encoder), as a third-party file would be made.

    ``video_streams`` copies of the video (0 for an audio-only file), plus optionally a
    silent AAC track as long as the video.
    """
    _, height, width, _ = frames.shape
    out = io.BytesIO()
    with av.open(out, "w", format=container_format) as container:
        streams = []
        for _ in range(video_streams):
            stream = cast(VideoStream, container.add_stream(codec, rate=fps))
            stream.width, stream.height = width, height
            stream.pix_fmt = "yuv420p" if codec != "ffv1" else "yuv444p"
            if rotation:
                stream.set_display_rotation(rotation)
            streams.append(stream)
        audio = cast(AudioStream, container.add_stream("aac", rate=48_000)) if with_audio else None
        for index, rgb in enumerate(frames):
            for stream in streams:
                frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
                frame.pts = index
                container.mux(stream.encode(frame))
        if audio is not None:
            samples = int(48_000 * len(frames) / fps)
            tone = np.zeros((1, samples), np.float32)
            audio_frame = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
            audio_frame.sample_rate, audio_frame.pts = 48_000, 0
            container.mux(audio.encode(audio_frame))
            container.mux(audio.encode(None))
        for stream in streams:
            container.mux(stream.encode(None))
    return out.getvalue()


def png_bytes(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def image_bytes(image: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


def huge_black_png(width: int, height: int) -> bytes:
    """A valid 1-bit PNG of ``width`` x ``height`` black pixels, built row by row with zlib.

    Pillow would need ``width * height`` bytes to make it; this needs one row. 20000x20000
    compresses to about 50 KB: a real decompression bomb.
    """

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit greyscale
    row = b"\x00" + bytes((width + 7) // 8)  # filter byte + packed pixels
    compressor = zlib.compressobj(9)
    body = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def webp_header_claiming(width: int, height: int) -> bytes:
    """An extended-format (VP8X) WebP header announcing a ``width`` x ``height`` canvas.

    Only the header: a bomb must be refused from it, before any decoder sees the rest.
    """
    vp8x = bytes([0, 0, 0, 0]) + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    body = b"WEBP" + b"VP8X" + struct.pack("<I", len(vp8x)) + vp8x
    return b"RIFF" + struct.pack("<I", len(body)) + body


def top_level_boxes(mp4: bytes) -> list[str]:
    """Types of the top-level ISO-BMFF boxes, in file order."""
    boxes, offset = [], 0
    while offset + 8 <= len(mp4):
        size, kind = struct.unpack(">I4s", mp4[offset : offset + 8])
        if size == 1:  # 64-bit size follows the type
            size = struct.unpack(">Q", mp4[offset + 8 : offset + 16])[0]
        elif size == 0:  # box runs to the end of the file
            size = len(mp4) - offset
        boxes.append(kind.decode("latin-1"))
        offset += size
    return boxes


def repeated_frames_webm(parts: list[tuple[np.ndarray, int]], fps: int = 30) -> bytes:
    """A VP8 WebM showing each RGB image of ``parts`` for its count of frames, made in about a second.

    Each image is encoded once, as a keyframe plus one "nothing changed" frame whose packet is then muxed
    again and again: what a hostile uploader would do to get a tiny file that decodes to a huge clip. The
    stream header gives the first image's size; later images may differ (VP8 keyframes carry their size).
    """
    out = io.BytesIO()
    with av.open(out, "w", format="webm") as container:
        stream = cast(VideoStream, container.add_stream("libvpx", rate=fps))
        height, width = parts[0][0].shape[:2]
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        pts = 0

        def mux(data: bytes, keyframe: bool) -> None:
            nonlocal pts
            packet = av.Packet(data)
            packet.stream, packet.pts, packet.dts, packet.time_base = stream, pts, pts, Fraction(1, fps)
            packet.is_keyframe = keyframe
            container.mux(packet)
            pts += 1

        for rgb, count in parts:
            packets = _vp8_still(rgb, fps)
            mux(packets[0], True)
            for _ in range(count - 1):
                mux(packets[1], False)
    return out.getvalue()


def _vp8_still(rgb: np.ndarray, fps: int) -> list[bytes]:
    """A keyframe of ``rgb`` and a frame that repeats it, as raw VP8 packets."""
    height, width = rgb.shape[:2]
    ctx = cast(av.VideoCodecContext, av.CodecContext.create("libvpx", "w"))
    ctx.width, ctx.height, ctx.pix_fmt = width, height, "yuv420p"
    ctx.time_base, ctx.framerate = Fraction(1, fps), Fraction(fps)
    ctx.options = {"deadline": "realtime", "cpu-used": "8", "auto-alt-ref": "0", "lag-in-frames": "0"}
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24").reformat(format="yuv420p")
    packets: list[bytes] = []
    for pts in range(2):
        frame.pts = pts
        packets += [bytes(p) for p in ctx.encode(frame)]
    packets += [bytes(p) for p in ctx.encode(None)]
    return packets


def size_switch_webm(frames: int = 600, big: tuple[int, int] = (1920, 1080), fps: int = 30) -> bytes:
    """The outside tester's bomb: a WebM whose header and first frame are 16x16, then ``frames`` black frames
    of ``big`` (width, height). About 45 KB for 600 frames of 1080p (3.7 GB as RGB)."""
    width, height = big
    small = np.zeros((16, 16, 3), np.uint8)
    return repeated_frames_webm([(small, 1), (np.zeros((height, width, 3), np.uint8), frames)], fps)
