"""An optional visible "AI-generated" label in the corner of every frame."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont


def label_overlay(height: int, width: int, text: str) -> tuple[int, int, np.ndarray]:
    """Where the label goes in a ``height`` x ``width`` frame and what it is: ``(x0, y0, rgba)``, the overlay
    as float32 RGBA already cropped to the frame. Shared by :func:`add_label` and the on-device label
    (:func:`kinema.media.device.add_label_tensor`), so both draw the same pixels."""
    size = max(8, height // 24)
    font = ImageFont.load_default(size=size)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    left, top, right, bottom = (int(v) for v in probe.textbbox((0, 0), text, font=font))  # whole pixels here
    pad = max(2, size // 4)
    box_w, box_h = right - left + 2 * pad, bottom - top + 2 * pad
    x0, y0 = max(0, width - box_w - pad), max(0, height - box_h - pad)
    # Drawn once on a small overlay and composited into every frame: identical pixels each frame.
    overlay = Image.new("RGBA", (box_w, box_h), (0, 0, 0, 150))
    ImageDraw.Draw(overlay).text((pad - left, pad - top), text, font=font, fill=(255, 255, 255, 255))
    rgba = np.asarray(overlay, dtype=np.float32)
    return x0, y0, rgba[: height - y0, : width - x0]


def add_label(frames: np.ndarray, text: str) -> np.ndarray:
    """Frames with ``text`` in white on a dark box in the bottom-right corner, scaled to the frame height."""
    _, h, w, _ = frames.shape
    x0, y0, rgba = label_overlay(h, w, text)
    crop_h, crop_w = rgba.shape[:2]
    alpha = rgba[..., 3:4] / 255.0
    region = frames[:, y0 : y0 + crop_h, x0 : x0 + crop_w].astype(np.float32)
    blended = region * (1 - alpha) + rgba[..., :3] * alpha
    out = frames.copy()
    out[:, y0 : y0 + crop_h, x0 : x0 + crop_w] = np.clip(blended + 0.5, 0, 255).astype(np.uint8)
    return out
