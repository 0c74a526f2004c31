"""Encode generated RGB frames to a web-playable H.264 MP4, entirely in memory."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Final

import av
import numpy as np
from av.video.reformatter import ColorPrimaries, ColorRange, Colorspace, ColorTrc

from kinema.media.frames import check_rgb_frames

DEFAULT_PRESET: Final = "ultrafast"
"""x264 preset used when the caller does not pick one.

Chosen by measurement (``python bench/encode.py``) against the goal of encoding 81 frames of
832x480 in <= 0.5 s on a 2-core box: ultrafast takes ~0.33 s with both cores free and
~0.4-0.58 s with one core taken by other work (2.35 MB); superfast ~0.55-0.85 s (2.2 MB);
veryfast ~1.0-1.3 s (1.25 MB). Only ultrafast meets the goal, at about twice veryfast's file
size for the same CRF. Pass ``preset="veryfast"`` where size matters more than latency.
"""

X264_PRESETS: Final = (
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
    "placebo",
)

_AVIO_FLAG_READ: Final = 1


def encode_mp4(frames: np.ndarray, fps: int, *, crf: int = 20, preset: str = DEFAULT_PRESET) -> bytes:
    """Encode ``frames`` (uint8, shape ``(T, H, W, 3)``, RGB) as an H.264 MP4 and return its bytes.

    Promises:

    - H.264 (libx264), ``yuv420p``, BT.709 limited range, tagged as such in the stream, so
      browsers and players convert back to RGB with the matrix we used.
    - Exactly ``T`` frames at a constant ``fps`` (the stream's ``average_rate`` reads back as
      ``fps``), frame ``i`` shown at ``i / fps`` seconds.
    - ``moov`` before ``mdat`` (``+faststart``): playback can start before the download ends.
    - Even ``H`` and ``W`` are kept exactly. yuv420p cannot represent an odd width or height,
      so an odd dimension is padded by one pixel, replicating the last column/row (the output
      is then ``H + 1`` and/or ``W + 1``). Padding rather than refusing: a finished
      generation should never be lost at the last step over a one-pixel edge.
    - Nothing touches the disk.

    Raises ``ValueError`` for malformed ``frames``, ``fps``, ``crf`` or ``preset``; these
    are programming errors, not user input, hence not ``MediaError``.
    """
    _check_args(frames, fps, crf, preset)
    frames = _even_sized(frames)
    _, height, width, _ = frames.shape
    with Mp4Writer(width, height, fps, crf=crf, preset=preset) as writer:
        for frame in _converted(frames):
            writer.write_yuv(frame)
        return writer.finish()


class Mp4Writer:
    """:func:`encode_mp4` one frame at a time: the same file, byte for byte, without the whole clip in memory.

    ``with Mp4Writer(width, height, fps) as w: w.write(rgb) ...; data = w.finish()``. An odd ``width`` or
    ``height`` is padded by one edge-replicated pixel, as :func:`encode_mp4` pads it. Leaving the block without
    ``finish`` discards what was written. Memory: the encoded bytes so far and x264's own (the ``ultrafast``
    preset has no look-ahead).
    """

    def __init__(self, width: int, height: int, fps: int, *, crf: int = 20, preset: str = DEFAULT_PRESET) -> None:
        _check_args(np.zeros((1, 1, 1, 3), np.uint8), fps, crf, preset)
        if width < 1 or height < 1:
            raise ValueError(f"width and height must be >= 1, got {width}x{height}")
        self.width, self.height = width, height
        self._buffer = io.BytesIO()
        self._container = av.open(
            self._buffer,
            "w",
            format="mp4",
            container_options={"movflags": "+faststart"},
            io_open=_faststart_reader(self._buffer),
        )
        stream = self._container.add_stream("libx264", rate=fps, options={"crf": str(crf), "preset": preset})
        stream.width = width + width % 2
        stream.height = height + height % 2
        stream.pix_fmt = "yuv420p"
        codec = stream.codec_context
        codec.colorspace = Colorspace.ITU709
        codec.color_primaries = ColorPrimaries.BT709
        codec.color_trc = ColorTrc.BT709
        codec.color_range = ColorRange.MPEG
        self._stream = stream
        self._count = 0
        self._done = False

    @property
    def frames(self) -> int:
        """Frames written so far."""
        return self._count

    def write(self, rgb: np.ndarray) -> None:
        """Append one uint8 ``(height, width, 3)`` RGB frame."""
        if rgb.dtype != np.uint8 or rgb.shape != (self.height, self.width, 3):
            expected = (self.height, self.width, 3)
            raise ValueError(f"a frame must be uint8 of shape {expected}, got {rgb.dtype} {rgb.shape}")
        self.write_yuv(_to_yuv420p(_even_sized(rgb[None])[0]))

    def write_yuv(self, frame: av.VideoFrame) -> None:
        """Append one frame already converted by ``_to_yuv420p`` (even-sized)."""
        frame.pts = self._count
        self._container.mux(self._stream.encode(frame))
        self._count += 1

    def finish(self) -> bytes:
        """Flush the encoder, close the file and return its bytes."""
        self._container.mux(self._stream.encode(None))
        self._container.close()
        self._done = True
        return self._buffer.getvalue()

    def __enter__(self) -> Mp4Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._done:
            self._done = True
            self._container.close()


def _check_args(frames: np.ndarray, fps: int, crf: int, preset: str) -> None:
    check_rgb_frames(frames)
    # bool is an int subclass; fps=True is certainly a bug.
    if not isinstance(fps, int | np.integer) or isinstance(fps, bool) or fps < 1:
        raise ValueError(f"fps must be a positive integer, got {fps!r}")
    if not isinstance(crf, int | np.integer) or not 0 <= crf <= 51:
        raise ValueError(f"crf must be an integer in [0, 51], got {crf!r}")
    if preset not in X264_PRESETS:
        raise ValueError(f"preset must be one of {X264_PRESETS}, got {preset!r}")


def _even_sized(frames: np.ndarray) -> np.ndarray:
    """Pad an odd height/width by one edge-replicated row/column; even sizes pass through as-is."""
    _, height, width, _ = frames.shape
    pad_rows, pad_cols = height % 2, width % 2
    if not (pad_rows or pad_cols):
        return frames
    return np.pad(frames, ((0, 0), (0, pad_rows), (0, pad_cols), (0, 0)), mode="edge")


def _converted(frames: np.ndarray) -> Iterator[av.VideoFrame]:
    """Yield ``frames`` as yuv420p, converting frame ``i + 1`` while the caller encodes frame ``i``.

    swscale and x264 both release the GIL, so with a second core free the colour conversion
    (about a third of the work at ultrafast) overlaps the encode: ~0.34 s instead of ~0.42 s
    for 81 frames at 832x480. One frame of look-ahead keeps memory flat.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="kinema-yuv") as pool:
        pending = pool.submit(_to_yuv420p, frames[0])
        for index in range(len(frames)):
            frame = pending.result()
            if index + 1 < len(frames):
                pending = pool.submit(_to_yuv420p, frames[index + 1])
            yield frame


def _to_yuv420p(rgb: np.ndarray) -> av.VideoFrame:
    # from_numpy_buffer wraps the array without copying it (needs C order). threads=1: for
    # frames this small, swscale's default auto-threading measured ~30% slower than one thread.
    # The BT.709 matrix and limited range must match the tags set on the codec context above.
    source = av.VideoFrame.from_numpy_buffer(np.ascontiguousarray(rgb), format="rgb24")
    return source.reformat(
        format="yuv420p",
        dst_colorspace=Colorspace.ITU709,
        dst_color_range=ColorRange.MPEG,
        threads=1,
    )


def _faststart_reader(buffer: io.BytesIO) -> Callable[[str, int, dict[str, str]], io.BytesIO]:
    """An ``io_open`` hook that lets the mp4 muxer re-read what it wrote to ``buffer``.

    With ``+faststart`` the muxer moves ``moov`` to the front at close, and to do so it
    re-opens its output *by URL* for reading. Writing to a Python file object, that URL is
    ``"<none>"`` and the close fails with FileNotFoundError. The muxer flushes before
    re-opening and only reads bytes already written, so a snapshot of the buffer is exactly
    what it needs. Anything other than that one read-only open is refused.
    """

    def io_open(url: str, flags: int, options: dict[str, str]) -> io.BytesIO:
        if flags != _AVIO_FLAG_READ:
            raise PermissionError(f"mp4 muxer asked to open {url!r} with flags {flags}")
        return io.BytesIO(buffer.getvalue())

    return io_open
