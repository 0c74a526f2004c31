"""Conforming input images and clips to a model's native geometry, and pipeline output to uint8 frames."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image, ImageOps


def fit_image(image: Image.Image, width: int, height: int) -> Image.Image:
    """``image`` as RGB of exactly ``width`` x ``height``: scaled to cover, then centre-cropped.

    Pipelines resize inputs to the target size without keeping the aspect ratio; cropping instead of
    stretching keeps people and objects in proportion. Lanczos, because inputs (photos, source clips) are
    mostly scaled down, where it keeps detail without aliasing. The one fitting used for every model input:
    the worker fits a job's inputs with it, and a backend's own call is then a no-op.
    """
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    if rgb.size == (width, height):
        return rgb
    return ImageOps.fit(rgb, (width, height), method=Image.Resampling.LANCZOS, centering=(0.5, 0.5))


def fit_video(frames: Sequence[Image.Image], num_frames: int, width: int, height: int) -> list[Image.Image]:
    """Exactly ``num_frames`` frames of ``width`` x ``height``.

    Keeps the first ``num_frames`` source frames (so motion keeps its speed) and, for a shorter source,
    holds the last frame. Raises ``ValueError`` for an empty clip.
    """
    if not frames:
        raise ValueError("the source video has no frames")
    chosen = list(frames[:num_frames])
    chosen += [chosen[-1]] * (num_frames - len(chosen))
    return [fit_image(frame, width, height) for frame in chosen]


def to_uint8(frames: np.ndarray) -> np.ndarray:
    """Float frames in [0, 1] (as diffusers' ``output_type="np"`` returns them) as ``uint8`` in [0, 255]."""
    return (np.clip(frames, 0.0, 1.0) * 255.0).round().astype(np.uint8)


def to_uint8_tensor(frames: torch.Tensor) -> torch.Tensor:
    """:func:`to_uint8` on the frames' own device (the same values): float ``[0, 1]`` -> ``uint8`` ``[0, 255]``.

    A pipeline's ``output_type="pt"`` frames stay on the GPU, so they are converted (and marked) there and a
    quarter of the bytes cross to the CPU.
    """
    return (frames.to(torch.float32).clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)
