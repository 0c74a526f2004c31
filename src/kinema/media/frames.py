"""Validation of the in-memory clip format shared by the encoders: uint8 ``(T, H, W, 3)`` RGB."""

from __future__ import annotations

import numpy as np


def check_rgb_frames(frames: np.ndarray) -> None:
    """Raise ``ValueError`` unless ``frames`` is a non-empty uint8 array of shape ``(T, H, W, 3)``.

    A malformed array here is a bug in our own pipeline, not user input, hence ``ValueError``
    and not ``MediaError``.
    """
    if not isinstance(frames, np.ndarray) or frames.dtype != np.uint8:
        raise ValueError("frames must be a uint8 numpy array")
    if frames.ndim != 4 or frames.shape[3] != 3 or min(frames.shape[:3]) < 1:
        raise ValueError(f"frames must have shape (T, H, W, 3) with T, H, W >= 1, got {frames.shape}")
