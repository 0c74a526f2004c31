"""Signal processing for watermark detection: whitening, period (scale) estimation, folding, sync.

All functions work on one float32 luma image: the detector first averages the luma of all the
frames it reads (the pattern is identical in every frame and sits still while the content moves,
so the average keeps it and blurs the content), then works on that single image. Pure numpy and
Pillow.
"""

from __future__ import annotations

import numpy as np
from PIL import Image


def box_mean(image: np.ndarray, radius: int) -> np.ndarray:
    """Mean over a ``(2 radius + 1)``-square window, edges replicated (two cumulative sums)."""
    size = 2 * radius + 1
    padded = np.pad(image.astype(np.float32, copy=False), radius, mode="edge")
    rows = np.cumsum(padded, axis=0, dtype=np.float32)
    rows = np.concatenate([np.zeros((1, rows.shape[1]), np.float32), rows])
    vertical = rows[size:] - rows[:-size]
    cols = np.cumsum(vertical, axis=1, dtype=np.float32)
    cols = np.concatenate([np.zeros((cols.shape[0], 1), np.float32), cols], axis=1)
    return (cols[:, size:] - cols[:, :-size]) / np.float32(size * size)


def resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of a float image (Pillow's, which also low-passes when shrinking)."""
    resized = Image.fromarray(np.ascontiguousarray(image, dtype=np.float32), "F").resize(
        (max(1, width), max(1, height)), Image.Resampling.BILINEAR
    )
    return np.asarray(resized, dtype=np.float32)


def whiten(luma: np.ndarray, *, radius: int = 2, floor: float = 0.05) -> np.ndarray:
    """High-pass ``luma`` and normalise its local amplitude, so busy and flat areas weigh alike.

    The picture's own energy is mostly at low frequencies; subtracting a local mean leaves the
    watermark's band. Dividing by the local mean magnitude (and clipping) keeps a few strong
    edges from dominating every correlation.
    """
    detail = luma - box_mean(luma, radius)
    magnitude = box_mean(np.abs(detail), 2 * radius) + np.float32(floor)
    return np.clip(detail / magnitude, -3.0, 3.0).astype(np.float32)


def autocorrelation(image: np.ndarray) -> np.ndarray:
    """Unbiased, normalised (lag 0 = 1) linear autocorrelation, as a ``(2H, 2W)`` array indexed by lag mod size."""
    height, width = image.shape
    shape = (2 * height, 2 * width)
    raw = np.fft.irfft2(np.abs(np.fft.rfft2(image, s=shape)) ** 2, s=shape)
    # Pixels overlapping at each lag: (H - |dy|) (W - |dx|), lags laid out as the FFT does.
    rows = height - np.abs(np.fft.fftfreq(shape[0], 1.0 / shape[0]))
    cols = width - np.abs(np.fft.fftfreq(shape[1], 1.0 / shape[1]))
    acf = raw / np.maximum(np.outer(rows, cols), 1.0)
    return acf / max(float(acf[0, 0]), 1e-12)


def _sample(acf: np.ndarray, dy: np.ndarray, dx: np.ndarray) -> np.ndarray:
    rows, cols = acf.shape
    y0, x0 = np.floor(dy).astype(np.int64), np.floor(dx).astype(np.int64)
    fy, fx = dy - y0, dx - x0
    return (
        (1 - fy) * (1 - fx) * acf[y0 % rows, x0 % cols]
        + (1 - fy) * fx * acf[y0 % rows, (x0 + 1) % cols]
        + fy * (1 - fx) * acf[(y0 + 1) % rows, x0 % cols]
        + fy * fx * acf[(y0 + 1) % rows, (x0 + 1) % cols]
    )


_ACF_MIN_SIDE = 160  # below twice this short side, the autocorrelation is taken at full resolution
_MIN_OVERLAP = 16  # lags closer than this to the image size average too few pixels to trust


def lattice_score(acf: np.ndarray, height: int, width: int, periods: np.ndarray) -> np.ndarray:
    """How strongly ``acf`` peaks at the lattice points (p, 0), (0, p), (p, p), (p, -p) of each period p.

    A square tiling of period p puts peaks at exactly those lags. Each value is weighted by the
    square root of its overlap (the pixels that lag averages), i.e. scored in units of its own
    noise: long lags, averaged over few pixels, would otherwise throw up chance peaks as high as
    the real ones. Lags that do not fit the image are skipped; a period with none scores -1.
    """
    zero = np.zeros_like(periods)
    fits_x = periods < width - _MIN_OVERLAP
    fits_y = periods < height - _MIN_OVERLAP
    total = np.zeros_like(periods)
    count = np.zeros_like(periods)
    for dy, dx, usable in (
        (zero, periods, fits_x),
        (periods, zero, fits_y),
        (periods, periods, fits_x & fits_y),
        (periods, -periods, fits_x & fits_y),
    ):
        overlap = np.maximum(height - np.abs(dy), 0) * np.maximum(width - np.abs(dx), 0)
        total += np.where(usable, _sample(acf, dy, dx) * np.sqrt(overlap), 0.0)
        count += usable
    return np.where(count > 0, total / np.maximum(count, 1), -1.0)


def remove_grid(image: np.ndarray, period: int) -> np.ndarray:
    """``image`` less its components periodic with ``period`` along each row and along each column.

    Codecs leave faint block edges on their coding grid (every 4, 8 and 16 pixels for H.264),
    and once averaged over frames they form a periodic pattern whose autocorrelation would be
    taken for the watermark's tiling. Per row, the mean of the pixels at each phase
    ``x mod period`` is subtracted; then the same per column.
    """
    out = image.astype(np.float32, copy=True)
    for axis in (1, 0):
        length = out.shape[axis]
        phases = np.zeros((length, period), np.float32)
        phases[np.arange(length), np.arange(length) % period] = 1.0
        counts = np.maximum(phases.sum(axis=0), 1.0)
        if axis == 1:
            out -= ((out @ phases) / counts) @ phases.T
        else:
            out -= phases @ ((phases.T @ out) / counts[:, None])
    return out


def candidate_periods(
    white: np.ndarray, shortest: float, longest: float, *, grid: int | None = None, count: int = 3
) -> list[float]:
    """The ``count`` most likely tile periods (pixels) of the tiled pattern in ``white``, best first.

    Periods are scored by :func:`lattice_score` every half pixel. Multiples of the true period
    score about as well as the period itself (their lattice is a subset of its lattice), so each
    peak is walked down to the smallest sub-multiple that still scores at least half as well.
    ``grid``: the codec's block grid in ``white``'s pixels, removed first (:func:`remove_grid`).
    """
    if grid is not None and grid > 1:
        white = remove_grid(white, grid)
    height, width = white.shape
    longest = min(longest, max(height, width) - _MIN_OVERLAP)
    if longest <= shortest:
        return []
    # Large images: the autocorrelation at half resolution is 4x cheaper and still places the
    # period to within ~1%, which the caller's search around each candidate covers.
    shrink = 2 if min(height, width) >= 2 * _ACF_MIN_SIDE else 1
    if shrink > 1:
        white = resize(white, height // shrink, width // shrink)
        height, width = white.shape
        shortest, longest = shortest / shrink, longest / shrink
    acf = autocorrelation(white)
    periods = np.arange(shortest, longest, 0.5)
    scores = lattice_score(acf, height, width, periods)
    found: list[float] = []
    for index in np.argsort(-scores)[: 20 * count]:
        period, score = float(periods[index]), float(scores[index])
        divisors = np.arange(8, 1, -1, dtype=np.float64)
        fractions = period / divisors
        usable = fractions >= shortest
        if usable.any():
            sub_scores = lattice_score(acf, height, width, fractions[usable])
            strong = np.nonzero(sub_scores >= 0.5 * score)[0]
            if strong.size:
                period = float(fractions[usable][strong[0]])  # the largest divisor that holds up
        period *= shrink
        if all(abs(period - other) > 0.02 * other for other in found):
            found.append(period)
        if len(found) == count:
            break
    return found


def fold(image: np.ndarray, period: int) -> np.ndarray:
    """Average of all ``period``-square tiles of ``image`` (partial tiles at the edges count where present)."""
    height, width = image.shape
    pad_y, pad_x = -height % period, -width % period
    tiles_y, tiles_x = (height + pad_y) // period, (width + pad_x) // period
    total = np.pad(image, ((0, pad_y), (0, pad_x))).reshape(tiles_y, period, tiles_x, period).sum(axis=(0, 2))
    counts = np.zeros((height + pad_y, width + pad_x), np.float32)
    counts[:height, :width] = 1.0
    weight = counts.reshape(tiles_y, period, tiles_x, period).sum(axis=(0, 2))
    return (total / np.maximum(weight, 1.0)).astype(np.float32)


def sync(folded: np.ndarray, template_spectrum: np.ndarray) -> tuple[float, tuple[int, int]]:
    """Cyclic shift of ``folded`` that best matches the pilot, and the peak's z-score over all shifts.

    ``template_spectrum`` is the complex conjugate of the pilot tile's ``rfft2``.
    """
    correlation = np.fft.irfft2(np.fft.rfft2(folded) * template_spectrum, s=folded.shape)
    peak = np.unravel_index(int(np.argmax(correlation)), correlation.shape)
    spread = float(correlation.std())
    z = (float(correlation[peak]) - float(correlation.mean())) / spread if spread > 0 else 0.0
    return z, (int(peak[0]), int(peak[1]))
