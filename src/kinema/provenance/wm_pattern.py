"""The watermark's spatial pattern: a keyed, tiled spread-spectrum "chip" pattern in luma.

One tile is ``GRID x GRID`` chips of ``CHIP x CHIP`` pixels (``TILE`` pixels square at the
embedding resolution); the frame is covered by copies of the same tile. A chip carries +1 or -1:

- a quarter of the chips are the *pilot*: a fixed pseudo-random +-1 pattern the detector knows,
  used to find where the tile grid lies after cropping (and to confirm the scale);
- the others carry the coded payload: every coded bit is spread over 3-4 chips scattered across
  the tile, each multiplied by its own pseudo-random sign.

Everything is derived from SHAKE-256 of a fixed label, not from numpy's generators, so the layout
can never change under a numpy upgrade (a changed layout would blind the detector to every video
marked before). The label is public: this is a provenance mark anyone running Kinema can read, not
a secret.
"""

from __future__ import annotations

import hashlib
from typing import Final

import numpy as np

from kinema.provenance import wm_ecc

SCHEME_LABEL: Final = b"kinema-watermark-v1"
TILE: Final = 128
"""Tile side in pixels at the embedding resolution (scaled up for frames >= 960 px, see ``pattern_scale``)."""
CHIP: Final = 4
GRID: Final = TILE // CHIP
PILOT_FRACTION: Final = 0.25
SMOOTH_PASSES: Final = 2
"""[1, 2, 1] smoothing passes at the embedding resolution: rounds the chips' square edges off
(less visible, and energy a codec or a downscale would remove anyway is not spent)."""

PAYLOAD_BITS: Final = 48  # 16-bit deployment id + 32-bit job tag
INFO_BITS: Final = PAYLOAD_BITS + 16  # + CRC-16
CODED_BITS: Final = wm_ecc.coded_length(INFO_BITS)  # 210


def _keyed_bytes(purpose: str, count: int) -> bytes:
    return hashlib.shake_256(SCHEME_LABEL + b"/" + purpose.encode()).digest(count)


def _layout() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    chips = GRID * GRID
    signs = np.unpackbits(np.frombuffer(_keyed_bytes("chip-signs", chips // 8), np.uint8)).astype(np.float32) * 2 - 1
    order = np.argsort(np.frombuffer(_keyed_bytes("chip-order", 4 * chips), np.dtype(">u4")), kind="stable")
    pilots = round(chips * PILOT_FRACTION)
    is_pilot = np.zeros(chips, bool)
    is_pilot[order[:pilots]] = True
    bit_of_chip = np.full(chips, -1, np.int64)
    bit_of_chip[order[pilots:]] = np.arange(chips - pilots) % CODED_BITS
    return signs, is_pilot, bit_of_chip


CHIP_SIGNS, IS_PILOT, BIT_OF_CHIP = _layout()
"""Per chip (row-major over the ``GRID x GRID`` tile): its pseudo-random sign, whether it is a
pilot chip, and which coded bit it carries (-1 for pilots)."""


def smooth_cyclic(tile: np.ndarray, passes: int) -> np.ndarray:
    """``passes`` separable [1, 2, 1] / 4 smoothings, wrapping around (the tile is periodic)."""
    for _ in range(passes):
        for axis in (0, 1):
            tile = (np.roll(tile, 1, axis) + 2 * tile + np.roll(tile, -1, axis)) / 4
    return tile


def render(chip_values: np.ndarray, size: int) -> np.ndarray:
    """A ``size x size`` tile (``size`` a multiple of ``GRID``) from ``GRID * GRID`` chip values."""
    pixels = size // GRID
    tile = np.kron(chip_values.reshape(GRID, GRID).astype(np.float32), np.ones((pixels, pixels), np.float32))
    return smooth_cyclic(tile, max(1, SMOOTH_PASSES * pixels // CHIP)).astype(np.float32)


def chip_values(coded: np.ndarray) -> np.ndarray:
    """The +-1 value of every chip for the coded bits ``coded`` (``CODED_BITS`` zeros and ones)."""
    data = 2.0 * np.asarray(coded, np.float32)[np.maximum(BIT_OF_CHIP, 0)] - 1.0
    return np.where(IS_PILOT, 1.0, data).astype(np.float32) * CHIP_SIGNS


def pilot_chip_values() -> np.ndarray:
    """Chip values with the data chips zeroed: what the detector correlates against to synchronise."""
    return np.where(IS_PILOT, CHIP_SIGNS, 0.0).astype(np.float32)


def pattern_scale(height: int, width: int) -> int:
    """Integer magnification of the pattern for large frames: 1 below 960 px on the short side, 2 up to 1439...

    Keeps the chips a similar fraction of the picture at any output size, so that a 1080p video
    scaled down to 480p still carries chips of ~4 pixels.
    """
    return max(1, min(height, width) // 480)
