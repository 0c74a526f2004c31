"""Invisible, robust watermark naming the deployment and the job in every frame of a generated video.

Scheme (``kinema-watermark-v1``), chosen by measurement (``python bench/watermark.py``):

- **Payload**: 16-bit deployment id + 32-bit job tag + CRC-16 = 64 bits, convolutionally coded
  (K=7, rate 1/3, soft-decision Viterbi) into 210 bits. See :mod:`kinema.provenance.wm_ecc`.
- **Pattern**: a 128-pixel tile of 4-pixel +-1 chips -- a quarter known *pilot* chips, the rest
  carrying the coded bits with pseudo-random signs -- smoothed, and repeated over the whole frame,
  in luma only (the same change is added to R, G and B). See :mod:`kinema.provenance.wm_pattern`.
  The same pattern sits in every frame; only its amplitude follows the picture: about 1 level
  in flat areas, up to 6 in busy ones, with every frame's RMS change capped so that PSNR stays
  >= ~39 dB whatever the content.
- **Detection** averages the luma of all frames (the pattern is still; the content moves and
  blurs away), whitens it, finds the tile period from the autocorrelation (tiling puts peaks at
  multiples of the period, whatever the scale, so downscaling is handled without knowing the
  original size), folds the image onto one tile, finds the tile's offset by correlating with the
  pilot (so any crop is handled), reads the soft bits and decodes them. See
  :mod:`kinema.provenance.wm_dsp`.

``found`` is True only when the decoded 48 bits pass their CRC-16 *and* the pilot peak is far
above chance (z >= ``Z_MIN``), so unmarked videos are reported as not found.

Why not a library (measured on the 2-core CPU this runs on, 81 frames of 832x480):
``invisible-watermark``'s dwtDctSvd took 20.8 s to embed (3.4-3.9 frames/s, 0.29 s of CPU per
frame; even the ~15 frames/s a colleague measured would be 5.4 s, over the 2.5 s budget) at
PSNR 35.6 dB, and its majority-vote bit accuracy fell to chance after a half-size downscale (0.48)
or a 10% crop (0.42, 0.58); its rivaGan survives but embeds ~1 frame/s. This scheme embeds the
same clip in ~0.37 s (about the time ``encode_mp4`` takes), at PSNR 39.3 dB on textured content
and 48 dB on smooth content, and reads the exact payload with raw bit accuracy 1.0 after CRF 28,
half-size, 10% centre and corner crops and a 2 s trim (``python bench/watermark.py``).
Detection (``detect_video``, decoding included) takes ~0.25-0.4 s.

Reading is bounded: uploads are decoded by the shared decoders (:func:`kinema.media.images.decode_luma`,
:func:`kinema.media.video_decode.mean_luma`) with their checks (header and real frame sizes, resolution changes,
codecs), and only to luma already reduced to the detector's working size (about 480 px on the short side, at
most ``_DETECT_MAX_SIDE`` on either): no full-size RGB or float copy of a 16.8 MP picture is made.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Final

import numpy as np
from PIL import Image

from kinema.media.frames import check_rgb_frames
from kinema.media.images import decode_luma
from kinema.media.luma import LUMA_709, add_reduced, centre_window, reduced_shape
from kinema.media.video_decode import mean_luma
from kinema.provenance import wm_dsp, wm_ecc, wm_pattern

# --- embedding -------------------------------------------------------------------------------

AMP_FLOOR: Final = 1.0
"""Pattern amplitude (luma levels, per unit of the unit-RMS pattern) in flat areas."""
AMP_SLOPE: Final = 0.4
"""Extra amplitude per luma level of local activity (see ``_amplitude``)."""
AMP_CAP: Final = 6.0
RMS_CAP: Final = 2.8
"""Per-frame cap on the RMS luma change in levels: PSNR >= 20 log10(255 / 2.8) = 39.2 dB at strength 1."""
MAX_STRENGTH: Final = 4.0

_LUMA: Final = LUMA_709  # BT.709, the matrix our MP4s use

# --- detection -------------------------------------------------------------------------------

Z_MIN: Final = 6.0
"""Minimum z-score of the pilot correlation peak for ``found`` (on top of the CRC). Measured:
unmarked videos 3.7-5.1 (mean 4.3 over 35 clips, a checkerboard of exactly the tile's period
included); marked ones after the attacks in the tests 8-15."""
_Z_NOISE: Final = 5.0  # confidence is 0 up to here ...
_Z_SURE: Final = 8.0  # ... and 1 from here
_DET_TILE: Final = 64  # the tile is resampled to this size to be read (chips of 2 px)
_SCALE_RANGE: Final = (0.3, 4.5)  # tile period in the video / TILE that the detector looks for
_COARSE_STEPS: Final = np.linspace(0.985, 1.015, 7)  # around each autocorrelation estimate
_FINE_STEPS: Final = np.linspace(0.997, 1.003, 5)  # around the best coarse scale
_ACF_CANDIDATES: Final = 5  # scales tried from the autocorrelation (single busy frames need a few)
_CODEC_GRID: Final = 16  # H.264 macroblocks; its 4x4 and 8x8 transform grids divide it
_MIN_SIDE: Final = 32
_DETECT_SIDE: Final = 480  # larger inputs are shrunk by an integer factor to about this short side
_MIN_READ_PERIOD: Final = 32.0
"""Shortest tile period looked for in what is read (chips of 1 px there; finer ones are averaged away by the
shrink). Only binds on shrunk inputs (unshrunk, the range starts at 0.3 x 128 = 38 px); without it, a candidate
period of 5 px in a 16.8 MP picture read at 512x512 was folded from a 13x upsampled copy: 186 MB."""
_DETECT_MAX_SIDE: Final = 1920
"""Neither side of what is read exceeds this, after the shrink: a longer side is read in its centre only (the
detector handles crops). Leaves every usual shape whole (16:9 and 21:9 at any size, 4:3, square, portrait) and
bounds the work on a panorama: a 480x34952 PNG (16.8 M pixels of noise) took +640 MB and 40 s to read whole."""
MAX_PIXELS: Final = 4096 * 4096
"""Larger frames are refused by :func:`detect_video` and :func:`detect_image` (``too_many_pixels``)."""
MAX_IMAGE_BYTES: Final = 64 * 1024 * 1024
MAX_VIDEO_BYTES: Final = 1024 * 1024 * 1024
"""Largest video :func:`detect_video` takes (the verify route's upload cap, ``max_upload_bytes``, is lower)."""
MIN_MARK_SIDE: Final = 160
"""Frames with a shorter side under this are too small to carry a mark that can be relied on: the tile is
128 px, and smaller frames hold less than about one and a quarter tiles to average. Measured on the
miniature's output (``python bench/watermark_sizes.py``: 17 frames, 6 seeds): at 96x64 the mark was found
in 3 of 6 files as delivered and 1 of 6 after a CRF 28 re-encode; at 256x160, 6 of 6 and 6 of 6. A miss in
such frames is reported as ``too_small`` (see :attr:`Detection.too_small`), not as a plain "not found"."""


@dataclass(frozen=True)
class WatermarkPayload:
    """What a watermark says: which deployment made the video, and which job (see :func:`job_tag`)."""

    deployment_id: int  # 16 bits
    job_tag: int  # 32 bits derived from the job id

    def __post_init__(self) -> None:
        for name, bits in (("deployment_id", 16), ("job_tag", 32)):
            value = getattr(self, name)
            if not isinstance(value, int | np.integer) or isinstance(value, bool) or not 0 <= value < 1 << bits:
                raise ValueError(f"{name} must be an integer in [0, 2**{bits}), got {value!r}")


@dataclass(frozen=True)
class Detection:
    """Result of looking for a watermark.

    - ``found``: a payload was decoded and passed its CRC, with a pilot peak far above chance.
    - ``payload``: the decoded payload when ``found``, else None.
    - ``confidence``: in [0, 1], from the pilot's correlation peak alone (its z-score mapped
      linearly): 0 up to the level unmarked videos reach (z <= 5), 1 from z = 8. A near miss
      shows as ``found=False`` with a confidence above 0.
    - ``bit_accuracy_hint``: when ``found``, the share of the 210 raw coded bits read correctly
      (agreeing with the re-encoded payload): how much margin the error correction had left.
    - ``frames_used``: how many frames were averaged.
    - ``frame_size``: (width, height) of the frames read, upright; None when not known.
    """

    found: bool
    payload: WatermarkPayload | None
    confidence: float
    bit_accuracy_hint: float | None
    frames_used: int
    frame_size: tuple[int, int] | None = None

    @property
    def too_small(self) -> bool:
        """Not found, in frames too small to carry a mark (short side under ``MIN_MARK_SIDE``).

        Such a miss says nothing about where the file came from: a mark may have been there and not
        survived. A mark that is found in small frames is still reported as found.
        """
        return not self.found and self.frame_size is not None and min(self.frame_size) < MIN_MARK_SIDE


def job_tag(job_id: str) -> int:
    """The 32-bit tag for ``job_id``: the first 4 bytes of SHA-256 of its UTF-8, big-endian.

    To check a video against a job, compare ``detect(...).payload.job_tag == job_tag(job_id)``.
    """
    return int.from_bytes(hashlib.sha256(job_id.encode("utf-8")).digest()[:4], "big")


def embed(frames: np.ndarray, payload: WatermarkPayload, *, strength: float | None = None) -> np.ndarray:
    """Return a watermarked copy of ``frames`` (uint8, ``(T, H, W, 3)`` RGB); same shape and dtype.

    Every frame carries the whole payload. ``strength`` (default 1.0, at most ``MAX_STRENGTH``)
    multiplies every amplitude, the RMS cap included: PSNR changes by -20 log10(strength) dB.
    Frames are processed in parallel threads (numpy and Pillow release the GIL).
    """
    check_rgb_frames(frames)
    gain = 1.0 if strength is None else float(strength)
    if not 0.0 < gain <= MAX_STRENGTH:
        raise ValueError(f"strength must be in (0, {MAX_STRENGTH}], got {strength!r}")
    count, height, width, _ = frames.shape
    pattern = _full_pattern(payload, height, width)
    out = np.empty_like(frames)

    def work(start: int, stop: int) -> None:
        for index in range(start, stop):
            out[index] = _embed_frame(np.ascontiguousarray(frames[index]), pattern, gain)

    workers = max(1, min(count, os.cpu_count() or 1, 4))
    bounds = np.linspace(0, count, workers + 1).astype(int)
    if workers == 1:
        work(0, count)
    else:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kinema-wm") as pool:
            for future in [pool.submit(work, int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]:
                future.result()
    return out


def _payload_bits(payload: WatermarkPayload) -> np.ndarray:
    bits = np.concatenate([wm_ecc.int_to_bits(payload.deployment_id, 16), wm_ecc.int_to_bits(payload.job_tag, 32)])
    return np.concatenate([bits, wm_ecc.crc16(bits)])


def _full_pattern(payload: WatermarkPayload, height: int, width: int) -> np.ndarray:
    """The unit-RMS pattern over a frame rounded up to whole 4-pixel blocks, as ``(H/4, 4, W/4, 4)``.

    The tile's origin is the frame's top-left corner. The 4-pixel-block view lets a per-block
    amplitude multiply it by broadcasting, without upsampling the amplitude first.
    """
    size = wm_pattern.TILE * wm_pattern.pattern_scale(height, width)
    tile = wm_pattern.render(wm_pattern.chip_values(wm_ecc.conv_encode(_payload_bits(payload))), size)
    tile /= np.float32(np.sqrt(np.mean(tile.astype(np.float64) ** 2)))
    blocks_y, blocks_x = -(-height // _BLOCK), -(-width // _BLOCK)
    full = np.tile(tile, (-(-blocks_y * _BLOCK // size), -(-blocks_x * _BLOCK // size)))
    full = full[: blocks_y * _BLOCK, : blocks_x * _BLOCK]
    return np.ascontiguousarray(full).reshape(blocks_y, _BLOCK, blocks_x, _BLOCK)


_BLOCK: Final = 4  # the amplitude is set per 4x4 block (one chip at the base pattern scale)


def _amplitude(frame: np.ndarray, gain: float) -> np.ndarray:
    """Pattern amplitude per 4x4 block, ``(ceil(H/4), ceil(W/4))``: larger where the picture is busy.

    Activity is the local mean of |luma - its 3x3 mean| on the 4x-reduced frame (structure of
    4-12 pixels, the pattern's own scale), in 8-bit levels.
    """
    small = np.asarray(Image.fromarray(frame).reduce(_BLOCK), np.float32) @ _LUMA  # Pillow box-averages
    activity = wm_dsp.box_mean(np.abs(small - wm_dsp.box_mean(small, 1)), 1)
    return np.minimum(AMP_FLOOR + AMP_SLOPE * activity, AMP_CAP) * np.float32(gain)


def _embed_frame(frame: np.ndarray, pattern: np.ndarray, gain: float) -> np.ndarray:
    height, width, _ = frame.shape
    blocks_y, _, blocks_x, _ = pattern.shape
    amplitude = _amplitude(frame, gain)
    raw = (pattern * amplitude[:, None, :, None]).reshape(blocks_y * _BLOCK, blocks_x * _BLOCK)[:height, :width]
    delta = np.rint(raw)
    cap = RMS_CAP * gain
    rms = _rms(delta)
    if rms > cap:  # busy frame: scale the whole frame's pattern down to the cap
        factor = cap / rms
        for _ in range(8):  # rounding makes the RMS only roughly proportional to the factor
            delta = np.rint(raw * np.float32(factor))
            rms = _rms(delta)
            if rms <= cap:
                break
            factor *= 0.995 * cap / rms
        else:  # |trunc(x)| <= |x|, so this is within the cap for sure
            delta = np.trunc(raw * np.float32(cap / _rms(raw)))
    # The same change on R, G and B: a pure luma change (BT.709 weights sum to 1).
    change = np.repeat(delta.astype(np.int16).ravel(), 3).reshape(height, width, 3)
    marked = frame.astype(np.int16)
    marked += change
    np.clip(marked, 0, 255, out=marked)
    return marked.astype(np.uint8)


def _rms(values: np.ndarray) -> float:
    flat = values.ravel()
    return float(np.sqrt(np.dot(flat, flat) / max(1, flat.size)))


# --- detection -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Reading:
    """What the detector worked out from one mean-luma image (the bench also reads ``soft``)."""

    z: float  # pilot peak z-score at the best scale and offset
    scale: float  # tile period in the input / TILE
    soft: np.ndarray | None  # CODED_BITS soft values, > 0 meaning 1
    info: np.ndarray | None  # Viterbi-decoded INFO_BITS bits


_NO_READING: Final = _Reading(0.0, 0.0, None, None)


def detect(frames: np.ndarray) -> Detection:
    """Look for the watermark in ``frames`` (uint8 ``(T, H, W, 3)`` RGB, any size: scaled and cropped are fine)."""
    check_rgb_frames(frames)
    _, height, width, _ = frames.shape
    factor = _shrink(height, width)
    rows, cols = centre_window(height, width, factor, _DETECT_MAX_SIDE)
    luma = np.zeros(reduced_shape(rows.stop - rows.start, cols.stop - cols.start, factor), np.float32)
    for frame in frames:  # reduced while read, in bands of rows: no full-size float copy of a 16 MP frame
        add_reduced(luma, frame[rows, cols], factor)
    luma /= np.float32(len(frames))
    return _detection(_read(luma, height, width, factor), len(frames), (int(width), int(height)))


def detect_video(data: bytes, *, max_frames: int = 120) -> Detection:
    """Decode up to ``max_frames`` frames of an MP4/MOV or Matroska/WebM held in ``data``, and :func:`detect`.

    Decoded by :func:`kinema.media.video_decode.mean_luma`, with that decoder's checks: only the luma plane is
    read (no RGB conversion), reduced to the detector's working size (about ``_DETECT_SIDE`` px on the short
    side) frame by frame, so memory does not grow with the frame size. Display rotation is undone. Raises
    :class:`~kinema.media.errors.MediaError` for data that is not such a video (one video stream, codec
    H.264, HEVC, VP8, VP9, AV1 or MPEG-4) or cannot be decoded, for frames over ``MAX_PIXELS``
    (``too_many_pixels``, checked on every decoded frame), and for a resolution change mid-stream
    (``unsupported_media_type``).
    """
    return _detect_video(data, max_frames)[0]


def _detect_video(data: bytes, max_frames: int) -> tuple[Detection, _Reading]:
    """:func:`detect_video`, and what the detector read (the bench compares it with the truth)."""
    mean = mean_luma(
        data,
        max_bytes=MAX_VIDEO_BYTES,
        max_pixels=MAX_PIXELS,
        max_frames=max_frames,
        factor_for=_shrink,
        max_side=_DETECT_MAX_SIDE,
    )
    reading = _read(mean.luma, mean.height, mean.width, mean.factor)
    return _detection(reading, mean.frames, (mean.width, mean.height)), reading


def detect_image(data: bytes) -> Detection:
    """Look for the watermark in a JPEG, PNG or WebP image (an image output is a one-frame clip).

    With a single frame there is nothing to average, so an image tolerates less than a video
    does (see ``bench/watermark.py``). Decoded by :func:`kinema.media.images.decode_luma` straight to its luma
    at the detector's working size (a JPEG by libjpeg at reduced scale). Raises
    :class:`~kinema.media.errors.MediaError` for data that is not such an image, is corrupt, or is over
    ``MAX_IMAGE_BYTES`` / ``MAX_PIXELS``.
    """
    image = decode_luma(
        data, max_bytes=MAX_IMAGE_BYTES, max_pixels=MAX_PIXELS, factor_for=_shrink, max_side=_DETECT_MAX_SIDE
    )
    return _detection(_read(image.luma, image.height, image.width, image.factor), 1, (image.width, image.height))


def _shrink(height: int, width: int) -> int:
    """The integer factor a ``height`` x ``width`` input is reduced by before it is read (to ~``_DETECT_SIDE``)."""
    return max(1, min(height, width) // _DETECT_SIDE)


def _nothing(frames_used: int, confidence: float, frame_size: tuple[int, int]) -> Detection:
    return Detection(
        found=False,
        payload=None,
        confidence=confidence,
        bit_accuracy_hint=None,
        frames_used=frames_used,
        frame_size=frame_size,
    )


def _detection(reading: _Reading, frames_used: int, frame_size: tuple[int, int]) -> Detection:
    confidence = min(1.0, max(0.0, (reading.z - _Z_NOISE) / (_Z_SURE - _Z_NOISE)))
    if reading.info is None or reading.soft is None:
        return _nothing(frames_used, confidence, frame_size)
    info = reading.info
    payload_bits = info[: wm_pattern.PAYLOAD_BITS]
    crc_ok = np.array_equal(wm_ecc.crc16(payload_bits), info[wm_pattern.PAYLOAD_BITS :])
    if not crc_ok or reading.z < Z_MIN:
        return _nothing(frames_used, confidence, frame_size)
    recoded = wm_ecc.conv_encode(info)
    accuracy = float(np.mean((reading.soft > 0) == (recoded == 1)))
    payload = WatermarkPayload(wm_ecc.bits_to_int(payload_bits[:16]), wm_ecc.bits_to_int(payload_bits[16:]))
    return Detection(True, payload, confidence, accuracy, frames_used, frame_size)


_PILOT_SPECTRUM: Final = np.conj(np.fft.rfft2(wm_pattern.render(wm_pattern.pilot_chip_values(), _DET_TILE)))


def _read(luma: np.ndarray, height: int, width: int, shrink: int) -> _Reading:
    """Find the tile's scale and offset in a mean-luma image, and read the soft bits there.

    ``luma`` is the mean luma of ``height`` x ``width`` frames, box-reduced by ``shrink`` (``_shrink``).
    """
    if min(height, width) < _MIN_SIDE or min(luma.shape) < 1:
        return _NO_READING
    white = wm_dsp.whiten(luma)
    if not np.any(white):
        return _NO_READING
    tile = wm_pattern.TILE
    periods = wm_dsp.candidate_periods(
        white,
        max(tile * _SCALE_RANGE[0] / shrink, _MIN_READ_PERIOD),
        tile * _SCALE_RANGE[1] / shrink,
        grid=_CODEC_GRID // shrink if _CODEC_GRID % shrink == 0 else None,
        count=_ACF_CANDIDATES,
    )
    scales = [p / tile for p in periods]
    # The size the pattern was embedded at, had the input not been rescaled (cropped, or as made):
    # the commonest case, and the autocorrelation of a single busy frame can miss it.
    unscaled = wm_pattern.pattern_scale(height, width) / shrink
    if all(abs(unscaled / scale - 1) > 0.02 for scale in scales):
        scales.append(unscaled)
    best = _NO_READING
    best_fold = best_shift = None
    # Coarse steps around each autocorrelation candidate, then fine steps around the best of them.
    for centres, steps in ((scales, _COARSE_STEPS), (None, _FINE_STEPS)):
        for centre in centres if centres is not None else [best.scale]:
            for step in steps:
                scale = centre * float(step)
                folded = _fold_at(white, scale)
                z, shift = wm_dsp.sync(folded, _PILOT_SPECTRUM)
                if z > best.z:
                    best, best_fold, best_shift = _Reading(z, scale, None, None), folded, shift
    if best_fold is None or best_shift is None:
        return _NO_READING
    soft = _soft_bits(best_fold, best_shift)
    info = wm_ecc.viterbi_decode(soft, wm_pattern.INFO_BITS)
    return _Reading(best.z, best.scale * shrink, soft, info)


def _fold_at(white: np.ndarray, scale: float) -> np.ndarray:
    """Resample ``white`` so that a tile of period ``scale * TILE`` becomes ``_DET_TILE`` pixels, and fold it."""
    factor = _DET_TILE / (wm_pattern.TILE * scale)
    height, width = white.shape
    out_h, out_w = max(1, int(height * factor)), max(1, int(width * factor))
    # box= makes the scale exact (not rounded to whole output pixels) in both directions.
    image = Image.fromarray(white, "F").resize(
        (out_w, out_h), Image.Resampling.BILINEAR, box=(0.0, 0.0, out_w / factor, out_h / factor)
    )
    return wm_dsp.fold(np.asarray(image, np.float32), _DET_TILE)


def _soft_bits(folded: np.ndarray, shift: tuple[int, int]) -> np.ndarray:
    aligned = np.roll(folded, (-shift[0], -shift[1]), axis=(0, 1))
    pixels = _DET_TILE // wm_pattern.GRID
    chips = aligned.reshape(wm_pattern.GRID, pixels, wm_pattern.GRID, pixels).sum(axis=(1, 3)).ravel()
    chips *= wm_pattern.CHIP_SIGNS
    data = ~wm_pattern.IS_PILOT
    return np.bincount(
        wm_pattern.BIT_OF_CHIP[data], weights=chips[data].astype(np.float64), minlength=wm_pattern.CODED_BITS
    )
