"""Test photographs of faces and clips assembled from them.

The photographs live outside the repository, at ``../shared/testdata/faces`` from the project root (see its
README.md); ``KINEMA_TEST_FACES`` points elsewhere. Tests that need them are skipped, with that reason, without.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def faces_dir() -> Path:
    """Where the test photographs are (they may be missing)."""
    override = os.environ.get("KINEMA_TEST_FACES")
    return Path(override) if override else PROJECT_ROOT.parent / "shared" / "testdata" / "faces"


@cache
def _photo(name: str) -> np.ndarray:
    with Image.open(faces_dir() / f"{name}.jpg") as im:
        arr = np.asarray(im.convert("RGB"))
    arr.setflags(write=False)
    return arr


def photo(name: str) -> np.ndarray:
    """A test photograph by stem (``obama_1``), RGB ``uint8``."""
    return _photo(name)


def scaled(image: np.ndarray, factor: float) -> np.ndarray:
    """``image`` resized by ``factor`` (bilinear)."""
    im = Image.fromarray(image)
    size = (max(1, round(im.width * factor)), max(1, round(im.height * factor)))
    return np.asarray(im.resize(size, Image.Resampling.BILINEAR))


def blurred(image: np.ndarray, radius: float) -> np.ndarray:
    """``image`` with a Gaussian blur of ``radius`` px."""
    return np.asarray(Image.fromarray(image).filter(ImageFilter.GaussianBlur(radius)))


def zoomed_shifted(image: np.ndarray, zoom: float, dx: int, dy: int) -> np.ndarray:
    """``image`` enlarged by ``zoom`` and shifted by ``(dx, dy)`` px, cut back to its own size."""
    im = Image.fromarray(image)
    width, height = im.size
    big = im.resize((round(width * zoom), round(height * zoom)), Image.Resampling.BILINEAR)
    left = (big.width - width) // 2 - dx
    top = (big.height - height) // 2 - dy
    return np.asarray(big.crop((left, top, left + width, top + height)))


def clip(images: list[np.ndarray], repeat: int = 3, fill: int = 128) -> np.ndarray:
    """A ``(T, H, W, 3)`` clip showing each image ``repeat`` times in order, each centred on a canvas of the
    largest height and width (padded with grey ``fill``)."""
    height = max(im.shape[0] for im in images)
    width = max(im.shape[1] for im in images)
    frames = []
    for im in images:
        canvas = np.full((height, width, 3), fill, dtype=np.uint8)
        top, left = (height - im.shape[0]) // 2, (width - im.shape[1]) // 2
        canvas[top : top + im.shape[0], left : left + im.shape[1]] = im
        frames.extend([canvas] * repeat)
    return np.stack(frames)
