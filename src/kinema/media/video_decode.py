"""Bounded, allowlisted decoding of user-uploaded videos, and plain decoding of our own MP4s."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Final, NoReturn

import av
import numpy as np
from av.container import InputContainer
from av.video.stream import VideoStream

from kinema.media.errors import MediaError
from kinema.media.sniff import VideoContainer, sniff_video

ALLOWED_CODECS: Final = frozenset({"h264", "hevc", "vp8", "vp9", "av1", "mpeg4"})
"""FFmpeg codec ids (not decoder names: AV1 is decoded by ``libdav1d``) we accept."""

# What PyAV/FFmpeg raise on malformed input. av.FFmpegError covers InvalidDataError etc.;
# several of PyAV's errors also derive from OSError/ValueError.
_DECODE_ERRORS: Final = (av.FFmpegError, OSError, ValueError, EOFError, IndexError, OverflowError)


@dataclass(frozen=True)
class DecodedVideo:
    """Decoded frames, uint8 of shape ``(T, H, W, 3)`` (RGB, displayed orientation), and their rate."""

    frames: np.ndarray
    fps: float


@dataclass(frozen=True)
class _Limits:
    max_pixels: int
    max_frames: int
    max_seconds: float


def decode_video(
    data: bytes,
    *,
    max_bytes: int,
    max_pixels: int,
    max_frames: int,
    max_seconds: float,
    max_total_pixels: int | None = None,
) -> DecodedVideo:
    """Decode an uploaded video's single video stream to RGB frames, or raise ``MediaError``.

    Checks, each before the work it protects:

    1. ``len(data) > max_bytes`` -> ``file_too_large``.
    2. Container by content: MP4/MOV or Matroska/WebM only (HEIF/AVIF stills, images, text...
       -> ``unsupported_media_type``); the demuxer is forced, FFmpeg does not probe.
    3. Exactly one video stream (other streams such as audio are ignored), with codec
       h264, hevc, vp8, vp9, av1 or mpeg4 -> else ``unsupported_media_type``.
    4. ``width * height > max_pixels`` from the stream header, before any frame is decoded,
       and again for every decoded frame -> ``too_many_pixels``.
    5. Length: refused up front if the header already says more than ``max_frames`` frames or
       ``max_seconds``; then enforced while decoding, which stops at the first frame past
       either limit (frame ``max_frames + 1``, or a frame starting ``max_seconds`` or more
       after the first) -> ``video_too_long``. At most ``max_frames`` frames are converted.
       With ``max_total_pixels``, ``max_frames`` is first lowered to what fits in that many decoded
       pixels at the header's frame size: a small, highly compressed 4K clip cannot decode into
       tens of gigabytes of RGB.
    6. Anything FFmpeg cannot parse or decode, or no frames at all -> ``corrupt_media``.

    Display rotation metadata (portrait phone videos) is applied, so frames come out upright.
    ``fps`` is the stream's average frame rate.
    """
    if len(data) > max_bytes:
        raise MediaError(f"The video is larger than the {max_bytes}-byte limit.", "file_too_large")
    demuxer = sniff_video(data)
    if demuxer is None:
        raise MediaError("Only MP4, MOV, WebM and MKV videos are accepted.", "unsupported_media_type")
    limits = _Limits(max_pixels=max_pixels, max_frames=max_frames, max_seconds=max_seconds)
    try:
        with _open(data, demuxer) as container:
            stream = _single_video_stream(container)
            _check_codec(stream)
            width, height = stream.codec_context.width, stream.codec_context.height
            _check_frame_size(width, height, max_pixels)
            if max_total_pixels is not None and width * height > 0:
                fits = max(1, max_total_pixels // (width * height))
                limits = _Limits(max_pixels=max_pixels, max_frames=min(max_frames, fits), max_seconds=max_seconds)
            _check_declared_length(stream, limits)
            frames = _stack(_decoded_frames(container, stream, limits))
            return DecodedVideo(frames=frames, fps=_frame_rate(stream))
    except MediaError:
        raise
    except _DECODE_ERRORS as exc:
        raise MediaError("The video file is corrupt or could not be decoded.", "corrupt_media") from exc


def read_mp4(data: bytes) -> DecodedVideo:
    """Decode an MP4 that Kinema made itself (no limits: the input is trusted).

    For example, to extend a finished clip from its last frame. Raises PyAV's errors as-is,
    and ``MediaError("corrupt_media")`` if the file holds no frames.
    """
    with _open(data, "mov") as container:
        stream = container.streams.video[0]
        frames = _stack(_decoded_frames(container, stream, None))
        return DecodedVideo(frames=frames, fps=_frame_rate(stream))


def _open(data: bytes, demuxer: VideoContainer) -> InputContainer:
    # Only ever from an in-memory file object, never a path or URL: FFmpeg then has no name
    # to resolve, so no file://, http://, pipe: or concat: tricks. Forcing the demuxer means
    # FFmpeg does not probe (an HLS playlist or concat script is never interpreted), and
    # io_open refuses the nested opens a demuxer may attempt on its own (e.g. QuickTime
    # external data references).
    return av.open(io.BytesIO(data), mode="r", format=demuxer, io_open=_refuse_nested_open)


def _refuse_nested_open(url: str, flags: int, options: dict[str, str]) -> NoReturn:
    raise PermissionError(f"refusing to open {url!r} referenced from an uploaded video")


def _single_video_stream(container: InputContainer) -> VideoStream:
    if not container.streams:
        # A damaged index: the demuxer found a container but could make out no stream at all.
        _raise_corrupt()
    streams = container.streams.video
    if len(streams) != 1:
        raise MediaError(
            f"The file must contain exactly one video stream; it has {len(streams)}.",
            "unsupported_media_type",
        )
    return streams[0]


def _check_codec(stream: VideoStream) -> None:
    # codec_context is None when this FFmpeg build has no decoder for the stream's codec.
    context = stream.codec_context
    codec_id = context.codec.canonical_name if context is not None else None
    if codec_id not in ALLOWED_CODECS:
        raise MediaError(
            "Unsupported video codec; accepted: H.264, HEVC, VP8, VP9, AV1, MPEG-4.", "unsupported_media_type"
        )


def _check_frame_size(width: int, height: int, max_pixels: int) -> None:
    if width < 1 or height < 1:
        raise MediaError("The video file is corrupt or could not be decoded.", "corrupt_media")
    if width * height > max_pixels:
        raise MediaError(
            f"The video is {width}x{height}; at most {max_pixels} pixels per frame are accepted.",
            "too_many_pixels",
        )


def _too_long(limits: _Limits) -> MediaError:
    return MediaError(
        f"The video is too long; at most {limits.max_frames} frames and {limits.max_seconds:g} s are accepted.",
        "video_too_long",
    )


def _check_declared_length(stream: VideoStream, limits: _Limits) -> None:
    """Refuse early when the header already says too long (saves decoding up to the limit).

    A shortcut, not the enforcement: headers can lie or be missing (WebM has no per-stream
    count or duration), so the loop in _decoded_frames is what enforces the limits. Lenient
    by one frame, so that a truthful header never refuses what the loop would accept.
    """
    if stream.frames and stream.frames > limits.max_frames:
        raise _too_long(limits)
    rate = stream.average_rate or stream.guessed_rate
    if stream.duration and stream.time_base and rate:
        last_frame_start = stream.duration * stream.time_base - 1 / rate
        if last_frame_start > limits.max_seconds:
            raise _too_long(limits)


def _decoded_frames(container: InputContainer, stream: VideoStream, limits: _Limits | None) -> Iterator[np.ndarray]:
    """Yield upright RGB frames in presentation order; with ``limits``, stop and raise at the first breach."""
    stream.thread_type = "AUTO"  # frame + slice threads; decoding is most of the cost
    first_time: float | None = None
    for count, frame in enumerate(container.decode(stream), start=1):
        if limits is not None:
            if count > limits.max_frames:
                raise _too_long(limits)
            if frame.time is not None:
                first_time = frame.time if first_time is None else min(first_time, frame.time)
                if frame.time - first_time >= limits.max_seconds:
                    raise _too_long(limits)
            # A stream may switch resolution mid-way; the header check above saw only the first.
            _check_frame_size(frame.width, frame.height, limits.max_pixels)
        # threads=1: PyAV's default (auto-threaded swscale) measured 2x slower at 832x480.
        yield _upright(frame.to_ndarray(format="rgb24", threads=1), frame.rotation)


def _upright(rgb: np.ndarray, rotation: int) -> np.ndarray:
    # frame.rotation is the counter-clockwise angle the display matrix applies (e.g. -90 for a
    # portrait iPhone clip); np.rot90 with positive k also turns counter-clockwise. Flips in
    # the matrix are ignored (cameras don't write them).
    quarter_turns = round(rotation / 90) % 4
    return np.rot90(rgb, k=quarter_turns) if quarter_turns else rgb


def _stack(frames: Iterator[np.ndarray]) -> np.ndarray:
    collected = list(frames)
    if not collected:
        _raise_corrupt()
    if any(frame.shape != collected[0].shape for frame in collected):
        raise MediaError("Videos whose resolution changes mid-stream are not supported.", "unsupported_media_type")
    return np.stack(collected)


def _frame_rate(stream: VideoStream) -> float:
    rate: Fraction | None = stream.average_rate or stream.guessed_rate
    if rate is None or rate <= 0:
        _raise_corrupt()
    return float(rate)


def _raise_corrupt() -> NoReturn:
    raise MediaError("The video file is corrupt or could not be decoded.", "corrupt_media")
