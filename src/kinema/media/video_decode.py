"""Bounded, allowlisted decoding of user-uploaded videos, and plain decoding of our own MP4s."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from fractions import Fraction
from typing import Final, NoReturn

import av
import numpy as np
from av.container import InputContainer
from av.video.stream import VideoStream

from kinema.media.errors import MediaError
from kinema.media.luma import add_reduced, centre_window, reduced_shape
from kinema.media.sniff import VideoContainer, sniff_video

ALLOWED_CODECS: Final = frozenset({"h264", "hevc", "vp8", "vp9", "av1", "mpeg4"})
"""FFmpeg codec ids (not decoder names: AV1 is decoded by ``libdav1d``) we accept."""

UPLOAD_DECODE_THREADS: Final = 4
"""FFmpeg decoding threads for one uploaded video (our own MP4s get one per core)."""

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
    max_total_pixels: int | None = None
    max_side: int | None = None


def decode_video(
    data: bytes,
    *,
    max_bytes: int,
    max_pixels: int,
    max_frames: int,
    max_seconds: float,
    max_total_pixels: int | None = None,
    max_side: int | None = None,
) -> DecodedVideo:
    """Decode an uploaded video's single video stream to RGB frames, or raise ``MediaError``.

    Checks, each before the work it protects:

    1. ``len(data) > max_bytes`` -> ``file_too_large``.
    2. Container by content: MP4/MOV or Matroska/WebM only (HEIF/AVIF stills, images, text...
       -> ``unsupported_media_type``); the demuxer is forced, FFmpeg does not probe.
    3. Exactly one video stream (other streams such as audio are ignored), with codec
       h264, hevc, vp8, vp9, av1 or mpeg4 -> else ``unsupported_media_type``.
    4. ``width * height > max_pixels`` from the stream header, before any frame is decoded,
       and again from the real size of every decoded frame -> ``too_many_pixels``. A frame whose
       real size differs from the first frame's is refused as it arrives (``unsupported_media_type``):
       a header cannot announce 16x16 and then deliver 1080p.
    5. Length: refused up front if the header already says more than ``max_frames`` frames or
       ``max_seconds``; then enforced while decoding, which stops at the first frame past
       either limit (frame ``max_frames + 1``, or a frame starting ``max_seconds`` or more
       after the first) -> ``video_too_long``, naming the limit that was hit.
    6. With ``max_total_pixels``, a running budget of the pixels handed over (real frame size, after
       ``max_side``): the frame that would exceed it stops decoding -> ``video_too_long``, saying how
       many frames fit at this size. Frames are written into one buffer as they come, never more
       than the budget allows, so a small, highly compressed clip cannot decode into gigabytes.
    7. Anything FFmpeg cannot parse or decode, or no frames at all -> ``corrupt_media``.

    With ``max_side``, every frame is scaled down (aspect kept, area averaging) by FFmpeg's scaler
    as it is converted to RGB, so that neither side exceeds ``max_side``: the full-size RGB frame
    never exists. Display rotation metadata (portrait phone videos) is applied, so frames come out
    upright. ``fps`` is the stream's average frame rate.
    """
    if len(data) > max_bytes:
        raise MediaError(f"The video is larger than the {max_bytes}-byte limit.", "file_too_large")
    demuxer = sniff_video(data)
    if demuxer is None:
        raise MediaError("Only MP4, MOV, WebM and MKV videos are accepted.", "unsupported_media_type")
    limits = _Limits(max_pixels, max_frames, max_seconds, max_total_pixels, max_side)
    try:
        with _open(data, demuxer) as container:
            stream = _single_video_stream(container)
            _check_codec(stream)
            width, height = stream.codec_context.width, stream.codec_context.height
            _check_frame_size(width, height, max_pixels)
            _check_declared_length(stream, limits, _output_size(width, height, max_side))
            times: list[float] = []
            decoded = _decoded_frames(container, stream, limits, times)
            frames = _stack(decoded) if max_total_pixels is None else _collect(decoded, limits, _frame_rate(stream))
            return DecodedVideo(frames=frames, fps=_measured_rate(stream, times))
    except MediaError:
        raise
    except _DECODE_ERRORS as exc:
        raise MediaError("The video file is corrupt or could not be decoded.", "corrupt_media") from exc


@dataclass(frozen=True)
class MeanLuma:
    """The mean luma of a clip's first frames, box-reduced by ``factor`` while decoding (:func:`mean_luma`)."""

    luma: np.ndarray
    """float32 ``(height // factor, width // factor)``, upright (display rotation undone)."""
    width: int
    """Full frame width, upright."""
    height: int
    """Full frame height, upright."""
    factor: int
    frames: int
    """How many frames were averaged."""


def mean_luma(
    data: bytes,
    *,
    max_bytes: int,
    max_pixels: int,
    max_frames: int,
    factor_for: Callable[[int, int], int],
    max_side: int | None = None,
    threads: int = 2,
) -> MeanLuma:
    """Average the luma of the first ``max_frames`` frames of an uploaded video, reduced while decoding.

    For the watermark reader. The same checks as :func:`decode_video` (bytes, container by content, one video
    stream of an allowed codec, ``max_pixels`` from the header and from every decoded frame's real size; a
    resolution change mid-stream is refused with ``unsupported_media_type``; corrupt -> ``corrupt_media``),
    except length: decoding simply stops after ``max_frames``. Only the luma (Y) plane of each frame is read,
    in place; it is box-reduced by ``factor_for(height, width)`` (of the first frame) a band of rows at a time
    into one float32 accumulator, so memory is the accumulator, the decoder's own frames (``threads`` of them
    in flight) and a band, whatever the frame size. With ``max_side``, only the centre of a longer side is
    read, so that neither side of ``luma`` exceeds it (:func:`kinema.media.luma.centre_window`).
    """
    if max_frames < 1:
        raise ValueError(f"max_frames must be >= 1, got {max_frames!r}")
    if len(data) > max_bytes:
        raise MediaError(f"The video is larger than the {max_bytes}-byte limit.", "file_too_large")
    demuxer = sniff_video(data)
    if demuxer is None:
        raise MediaError("Only MP4, MOV, WebM and MKV videos are accepted.", "unsupported_media_type")
    try:
        with _open(data, demuxer) as container:
            stream = _single_video_stream(container)
            _check_codec(stream)
            _check_frame_size(stream.codec_context.width, stream.codec_context.height, max_pixels)
            stream.thread_type = "AUTO"
            stream.thread_count = max(1, threads)
            total: np.ndarray | None = None
            first: tuple[int, int] | None = None
            factor = 1
            turned = False
            used = 0
            for frame in container.decode(stream):
                _check_frame_size(frame.width, frame.height, max_pixels)
                if first is None:
                    first = (frame.width, frame.height)
                    factor = max(1, int(factor_for(frame.height, frame.width)))
                    turned = round(frame.rotation / 90) % 2 == 1
                elif (frame.width, frame.height) != first:
                    _raise_size_change()
                reduced = _reduced_luma_plane(frame, factor, max_side)
                if total is None:
                    total = reduced
                else:
                    total += reduced
                used += 1
                if used >= max_frames:
                    break
    except MediaError:
        raise
    except _DECODE_ERRORS as exc:
        raise MediaError("The video file is corrupt or could not be decoded.", "corrupt_media") from exc
    if total is None or first is None:
        _raise_corrupt()
    total /= np.float32(used)
    width, height = first
    if turned:  # shown turned a quarter: the sides swap
        width, height = height, width
    return MeanLuma(total, width, height, factor, used)


_PLANAR_8BIT: Final = frozenset({"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "nv12", "gray"})


def _reduced_luma_plane(frame: av.VideoFrame, factor: int, max_side: int | None) -> np.ndarray:
    """The frame's luma box-reduced by ``factor``, upright, as a new float32 array.

    8-bit formats are read straight from the decoder's Y plane (no copy, no colour conversion); others are
    converted to 8-bit grey first.
    """
    if frame.format.name in _PLANAR_8BIT:
        plane = frame.planes[0]
        lines = np.frombuffer(memoryview(plane), np.uint8).reshape(-1, plane.line_size)
        luma: np.ndarray = lines[: frame.height, : frame.width]
    else:
        luma = frame.to_ndarray(format="gray", threads=1)
    rows, cols = centre_window(frame.height, frame.width, factor, max_side)
    window = luma[rows, cols]  # a view
    out = np.zeros(reduced_shape(window.shape[0], window.shape[1], factor), np.float32)
    add_reduced(out, window, factor)
    quarter_turns = round(frame.rotation / 90) % 4
    return np.ascontiguousarray(np.rot90(out, k=quarter_turns)) if quarter_turns else out


@dataclass(frozen=True)
class FrameStream:
    """A clip being decoded: its frame rate, and its frames (uint8 ``(H, W, 3)`` RGB, upright) one at a time."""

    fps: float
    frames: Iterator[np.ndarray]


@contextmanager
def stream_video(
    data: bytes,
    *,
    max_bytes: int,
    max_pixels: int,
    max_frames: int,
    max_seconds: float,
    max_total_pixels: int | None = None,
    max_side: int | None = None,
) -> Iterator[FrameStream]:
    """:func:`decode_video`, one frame at a time: the same checks and errors, but no frame is kept.

    The header is checked on entry; each frame is checked as it is decoded, and a breach raises
    ``MediaError`` from the iteration (``corrupt_media`` for what FFmpeg cannot decode). Memory is the frame
    being handed over and the decoder's own, whatever the clip's length. A clip with no frame yields none:
    the caller refuses it.
    """
    if len(data) > max_bytes:
        raise MediaError(f"The video is larger than the {max_bytes}-byte limit.", "file_too_large")
    demuxer = sniff_video(data)
    if demuxer is None:
        raise MediaError("Only MP4, MOV, WebM and MKV videos are accepted.", "unsupported_media_type")
    limits = _Limits(max_pixels, max_frames, max_seconds, max_total_pixels, max_side)
    with ExitStack() as stack:
        try:
            container = stack.enter_context(_open(data, demuxer))
            stream = _single_video_stream(container)
            _check_codec(stream)
            width, height = stream.codec_context.width, stream.codec_context.height
            _check_frame_size(width, height, max_pixels)
            _check_declared_length(stream, limits, _output_size(width, height, max_side))
            fps = _frame_rate(stream)
        except MediaError:
            raise
        except _DECODE_ERRORS as exc:
            raise MediaError("The video file is corrupt or could not be decoded.", "corrupt_media") from exc
        yield FrameStream(fps, _as_media_errors(_decoded_frames(container, stream, limits)))


@contextmanager
def stream_mp4(data: bytes) -> Iterator[FrameStream]:
    """:func:`read_mp4`, one frame at a time (an MP4 Kinema made itself: no limits)."""
    with _open(data, "mov") as container:
        stream = container.streams.video[0]
        yield FrameStream(_frame_rate(stream), _decoded_frames(container, stream, None))


@dataclass(frozen=True)
class Mp4Probe:
    """An MP4 of ours, as decoded: its frames' size, how many, and their rate."""

    width: int
    height: int
    frames: int
    fps: float


def probe_mp4(data: bytes) -> Mp4Probe:
    """Decode an MP4 Kinema made itself without converting or keeping any frame: its real frame count (not
    the header's), size and rate. Raises ``MediaError("corrupt_media")`` if it holds no frames."""
    with _open(data, "mov") as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        count = width = height = 0
        for frame in container.decode(stream):
            count += 1
            width, height = frame.width, frame.height
        if count == 0:
            _raise_corrupt()
        return Mp4Probe(width, height, count, _frame_rate(stream))


def _as_media_errors(frames: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    """``frames``, with what FFmpeg raises while decoding them turned into ``MediaError("corrupt_media")``."""
    try:
        yield from frames
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


def _too_many_frames(limits: _Limits) -> MediaError:
    return MediaError(
        f"The video is too long: it has more than {limits.max_frames} frames, the most accepted.", "video_too_long"
    )


def _too_many_seconds(limits: _Limits) -> MediaError:
    return MediaError(
        f"The video is too long: it lasts more than {limits.max_seconds:g} s, the longest accepted.", "video_too_long"
    )


def _over_budget(budget: int, size: tuple[int, int], fps: float) -> MediaError:
    width, height = size
    fits = budget // (width * height)
    return MediaError(
        f"The video is too long for its frame size: at {width}x{height}, at most {fits} frames "
        f"({fits / fps:.1f} s at {fps:g} fps) fit in the {budget}-pixel decoding budget. "
        "Send a shorter clip.",
        "video_too_long",
    )


def _output_size(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    """The size a ``width`` x ``height`` frame is handed over at: scaled down to fit ``max_side``, aspect kept."""
    longest = max(width, height)
    if max_side is None or longest <= max_side:
        return width, height
    return max(1, round(width * max_side / longest)), max(1, round(height * max_side / longest))


def _check_declared_length(stream: VideoStream, limits: _Limits, size: tuple[int, int]) -> None:
    """Refuse early when the header already says too long (saves decoding up to the limit).

    A shortcut, not the enforcement: headers can lie or be missing (WebM has no per-stream
    count or duration), so the loop in _decoded_frames is what enforces the limits. Lenient
    by one frame, so that a truthful header never refuses what the loop would accept.
    """
    if stream.frames and stream.frames > limits.max_frames:
        raise _too_many_frames(limits)
    rate = stream.average_rate or stream.guessed_rate
    if stream.duration and stream.time_base and rate:
        last_frame_start = stream.duration * stream.time_base - 1 / rate
        if last_frame_start > limits.max_seconds:
            raise _too_many_seconds(limits)
    budget = limits.max_total_pixels
    if budget is not None and stream.frames and rate and stream.frames * size[0] * size[1] > budget:
        raise _over_budget(budget, size, float(rate))


def _decoded_frames(
    container: InputContainer, stream: VideoStream, limits: _Limits | None, times: list[float] | None = None
) -> Iterator[np.ndarray]:
    """Yield upright RGB frames in presentation order; with ``limits``, stop and raise at the first breach.
    With ``times``, each yielded frame's presentation time (seconds) is appended to it.

    Each frame's real size is checked as it is decoded, before it is converted: against the
    per-frame cap, and against the first frame's size (a change is refused at once).
    """
    stream.thread_type = "AUTO"  # frame + slice threads; decoding is most of the cost
    if limits is not None:
        # Each frame thread holds frames of its own (12 MB each at 4K): FFmpeg's default, one per core,
        # would make an upload's memory grow with the machine.
        stream.thread_count = UPLOAD_DECODE_THREADS
    first_time: float | None = None
    first_size: tuple[int, int] | None = None
    handed_over = 0  # pixels of the frames yielded so far, at the size they are yielded
    for count, frame in enumerate(container.decode(stream), start=1):
        size = (frame.width, frame.height)
        if limits is not None:
            if count > limits.max_frames:
                raise _too_many_frames(limits)
            if frame.time is not None:
                first_time = frame.time if first_time is None else min(first_time, frame.time)
                if frame.time - first_time >= limits.max_seconds:
                    raise _too_many_seconds(limits)
            # A stream may switch resolution mid-way; the header check above saw only the first.
            _check_frame_size(frame.width, frame.height, limits.max_pixels)
        if first_size is None:
            first_size = size
        elif size != first_size:
            _raise_size_change()
        out_width, out_height = _output_size(*size, limits.max_side if limits is not None else None)
        handed_over += out_width * out_height
        if limits is not None and limits.max_total_pixels is not None and handed_over > limits.max_total_pixels:
            raise _over_budget(limits.max_total_pixels, (out_width, out_height), _frame_rate(stream))
        if (out_width, out_height) == size:
            # threads=1: PyAV's default (auto-threaded swscale) measured 2x slower at 832x480.
            rgb = frame.to_ndarray(format="rgb24", threads=1)
        else:  # scaled by swscale while converting: the full-size RGB frame is never made
            rgb = frame.to_ndarray(format="rgb24", width=out_width, height=out_height, interpolation="AREA", threads=1)
        if times is not None and frame.time is not None:
            times.append(frame.time)
        yield _upright(rgb, frame.rotation)


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
    return np.stack(collected)


def _collect(frames: Iterator[np.ndarray], limits: _Limits, fps: float) -> np.ndarray:
    """The frames in one ``(T, H, W, 3)`` array, filled as they are decoded, within the pixel budget.

    The array is sized from the first frame for as many frames as the budget allows (address space
    only: untouched pages are never resident, so memory follows the frames actually decoded), and
    there is no second copy (``np.stack`` over a list would hold every frame twice at its peak).
    """
    first = next(frames, None)
    if first is None:
        _raise_corrupt()
    height, width = first.shape[:2]
    capacity = limits.max_frames
    budget = limits.max_total_pixels
    if budget is not None:
        capacity = min(capacity, budget // (width * height))
        if capacity < 1:
            raise _over_budget(budget, (width, height), fps)
    buffer = np.empty((capacity, height, width, 3), np.uint8)
    buffer[0] = first
    count = 1
    for frame in frames:
        if count == capacity:  # _decoded_frames refuses first, before converting; this is a backstop
            raise _over_budget(budget, (width, height), fps) if budget is not None else _too_many_frames(limits)
        buffer[count] = frame
        count += 1
    return buffer[:count]


def _raise_size_change() -> NoReturn:
    raise MediaError("Videos whose resolution changes mid-stream are not supported.", "unsupported_media_type")


def _frame_rate(stream: VideoStream) -> float:
    rate: Fraction | None = stream.average_rate or stream.guessed_rate
    if rate is None or rate <= 0:
        _raise_corrupt()
    return float(rate)


def _measured_rate(stream: VideoStream, times: list[float]) -> float:
    """The frame rate the frames' timestamps show, where the header's rate is missing or implausible.

    A browser's MediaRecorder writes WebM with no frame rate and a 1 ms time base, so FFmpeg guesses
    1000 fps; a variable-rate phone clip may declare a rate its frames do not keep. The header's rate
    is kept when it agrees with the timestamps within 25 %, or when there are too few to tell.
    """
    declared = stream.average_rate or stream.guessed_rate
    span = max(times) - min(times) if len(times) >= 2 else 0.0
    if span <= 0:
        return _frame_rate(stream)
    measured = (len(times) - 1) / span
    if declared is None or declared <= 0 or not 0.8 <= float(declared) / measured <= 1.25:
        return measured
    return float(declared)


def _raise_corrupt() -> NoReturn:
    raise MediaError("The video file is corrupt or could not be decoded.", "corrupt_media")
