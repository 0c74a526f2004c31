"""Luma reduced while it is read: what the watermark reader needs from a picture, without its full-size copy.

The watermark detector (:mod:`kinema.provenance.watermark`) works on the mean luma of a clip, shrunk by an
integer factor to about 480 px on its short side. Reading a 16 MP picture as a float image first and shrinking
it afterwards takes 64 MB per float copy; :func:`add_reduced` instead converts a band of rows at a time and
box-averages it by the factor at once, so the full-size float image never exists.
"""

from __future__ import annotations

from typing import Final

import numpy as np

LUMA_709: Final = np.array([0.2126, 0.7152, 0.0722], np.float32)
"""BT.709 luma weights (the matrix Kinema's MP4s use). They sum to 1, so a change added equally to R, G and B
(the watermark) is read back whole."""

_BAND_PIXELS: Final = 1 << 20
"""Pixels converted to float at a time (4 MB of float32, 12 MB for an RGB band)."""


def reduced_shape(height: int, width: int, factor: int) -> tuple[int, int]:
    """The shape of a ``height`` x ``width`` picture box-reduced by ``factor`` (the remainder rows and columns
    on the bottom and right are dropped, so every output pixel is the mean of exactly ``factor``**2)."""
    if factor < 1:
        raise ValueError(f"factor must be >= 1, got {factor!r}")
    return height // factor, width // factor


def centre_window(height: int, width: int, factor: int, max_side: int | None) -> tuple[slice, slice]:
    """The rows and columns of a ``height`` x ``width`` picture to reduce by ``factor`` so that neither side of
    the result exceeds ``max_side``: the whole picture (less the remainder) or, for a longer side, its centre.

    A bound on the reader's work whatever the picture's shape: a 480x34952 panorama is 16.8 M pixels, like
    4096x4096, but not reducible by much along its short side.
    """
    out_h, out_w = reduced_shape(height, width, factor)
    if max_side is not None:
        out_h, out_w = min(out_h, max_side), min(out_w, max_side)
    top = (height // factor - out_h) // 2 * factor
    left = (width // factor - out_w) // 2 * factor
    return slice(top, top + out_h * factor), slice(left, left + out_w * factor)


def add_reduced(out: np.ndarray, picture: np.ndarray, factor: int) -> None:
    """Add the luma of ``picture`` box-reduced by ``factor`` into ``out`` (float32, ``reduced_shape`` of it).

    ``picture`` is uint8 or float: ``(H, W)`` luma (a Y plane, a greyscale image) or ``(H, W, 3)`` RGB, whose
    luma is taken with :data:`LUMA_709`. It is read in bands of rows; with ``factor`` 1 this is exactly
    ``out += luma`` in float32.
    """
    height, width = reduced_shape(picture.shape[0], picture.shape[1], factor)
    if out.shape != (height, width) or out.dtype != np.float32:
        raise ValueError(f"out must be float32 of shape {(height, width)}, got {out.dtype} {out.shape}")
    if height == 0 or width == 0:
        return
    rows = max(1, _BAND_PIXELS // (width * factor * factor)) * factor  # whole output rows per band
    for top in range(0, height * factor, rows):
        band = picture[top : min(top + rows, height * factor), : width * factor]
        values = band.astype(np.float32) @ LUMA_709 if band.ndim == 3 else band.astype(np.float32)
        count = values.shape[0] // factor
        if factor == 1:
            out[top : top + count] += values
        else:
            out[top // factor : top // factor + count] += values.reshape(count, factor, width, factor).mean(axis=(1, 3))
