"""Media steps on frames still on the accelerator, drawing the same pixels as their numpy counterparts.

Why: a GPU's frames are labelled and watermarked where they are (see :mod:`kinema.provenance.wm_torch`), so only
the finished ``uint8`` frames cross to the CPU for encoding.
"""

from __future__ import annotations

import torch

from kinema.media.label import label_overlay


def add_label_tensor(frames: torch.Tensor, text: str) -> torch.Tensor:
    """:func:`kinema.media.label.add_label` for ``uint8`` ``(T, H, W, 3)`` frames on any device (same pixels)."""
    _, height, width, _ = frames.shape
    x0, y0, rgba_np = label_overlay(height, width, text)
    rgba = torch.from_numpy(rgba_np).to(frames.device)
    crop_h, crop_w = rgba.shape[:2]
    alpha = rgba[..., 3:4] / 255.0
    region = frames[:, y0 : y0 + crop_h, x0 : x0 + crop_w].to(torch.float32)
    blended = region * (1 - alpha) + rgba[..., :3] * alpha
    out = frames.clone()
    out[:, y0 : y0 + crop_h, x0 : x0 + crop_w] = (blended + 0.5).clamp_(0, 255).to(torch.uint8)
    return out
