"""An optional visible "AI-generated" label in the corner of every frame."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont


def add_label(frames: np.ndarray, text: str) -> np.ndarray:
    """Frames with ``text`` in white on a dark box in the bottom-right corner, scaled to the frame height."""
    _, h, w, _ = frames.shape
    size = max(8, h // 24)
    font = ImageFont.load_default(size=size)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    left, top, right, bottom = probe.textbbox((0, 0), text, font=font)
    pad = max(2, size // 4)
    box_w, box_h = right - left + 2 * pad, bottom - top + 2 * pad
    x0, y0 = max(0, w - box_w - pad), max(0, h - box_h - pad)
    # Draw once on a small overlay and composite it into every frame: identical pixels each frame.
    overlay = Image.new("RGBA", (box_w, box_h), (0, 0, 0, 150))
    ImageDraw.Draw(overlay).text((pad - left, pad - top), text, font=font, fill=(255, 255, 255, 255))
    rgba = np.asarray(overlay, dtype=np.float32)
    alpha = rgba[..., 3:4] / 255.0
    region = frames[:, y0 : y0 + box_h, x0 : x0 + box_w].astype(np.float32)
    crop_h, crop_w = region.shape[1:3]
    blended = region * (1 - alpha[:crop_h, :crop_w]) + rgba[:crop_h, :crop_w, :3] * alpha[:crop_h, :crop_w]
    out = frames.copy()
    out[:, y0 : y0 + crop_h, x0 : x0 + crop_w] = np.clip(blended + 0.5, 0, 255).astype(np.uint8)
    return out
