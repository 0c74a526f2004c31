"""The watermark embed of :mod:`kinema.provenance.watermark`, in torch, for frames still on the accelerator.

Why: on a GPU the model's frames would otherwise cross to the CPU as floats and be marked there (about
1 s of CPU per 480p clip while the GPU idles). Here they are marked where they are and only the marked
``uint8`` frames cross. :func:`embed_tensor` follows :func:`kinema.provenance.watermark.embed` step by step
(same pattern, same per-block amplitude from Pillow's 4x4 box reduce, same RMS cap and its refinement loop,
same rounding), so a frame marked either way differs by at most one level in a few pixels (float32 sums in
another order), and the detector reads both alike. The numpy embed stays the reference and is used for
frames already on the CPU.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import torch
import torch.nn.functional as F

from kinema.provenance import watermark as wm

CHUNK_FRAMES: Final = 16
"""Frames marked at once: bounds the float32 scratch (about 60 MB per 16 frames of 1280x720)."""

_BLOCK: Final = wm._BLOCK
_REFINE_STEPS: Final = 8  # as in watermark._embed_frame


def embed_tensor(frames: torch.Tensor, payload: wm.WatermarkPayload, *, strength: float | None = None) -> torch.Tensor:
    """A watermarked copy of ``frames`` (``uint8`` ``(T, H, W, 3)`` RGB on any device), on the same device."""
    if frames.dtype != torch.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] < 1:
        raise ValueError(f"frames must be uint8 of shape (T, H, W, 3), got {frames.dtype} {tuple(frames.shape)}")
    gain = 1.0 if strength is None else float(strength)
    if not 0.0 < gain <= wm.MAX_STRENGTH:
        raise ValueError(f"strength must be in (0, {wm.MAX_STRENGTH}], got {strength!r}")
    _, height, width, _ = frames.shape
    pattern = torch.from_numpy(wm._full_pattern(payload, height, width)).to(frames.device)  # the numpy embed's
    out = torch.empty_like(frames)
    for start in range(0, frames.shape[0], CHUNK_FRAMES):
        chunk = frames[start : start + CHUNK_FRAMES]
        out[start : start + CHUNK_FRAMES] = _embed_chunk(chunk, pattern, gain)
    return out


def _reduce(frames: torch.Tensor) -> torch.Tensor:
    """Pillow's ``Image.reduce(4)`` of uint8 RGB frames, bit for bit: ``(T, ceil(H/4), ceil(W/4), 3)`` uint8.

    Pillow sums each block (a partial one at the right and bottom edges over the pixels it has) and divides
    by fixed-point multiplication: ``((sum + n // 2) * m) >> 24`` with ``m = trunc(2**32 / (256 n))`` computed
    in float32, which is not always a rounded division for partial blocks of 3 or 6 pixels a side.
    """
    count, height, width, _ = frames.shape
    blocks_y, blocks_x = -(-height // _BLOCK), -(-width // _BLOCK)
    values = frames.to(torch.float32)  # sums of 16 bytes are exact in float32
    if blocks_y * _BLOCK != height or blocks_x * _BLOCK != width:
        values = F.pad(values, (0, 0, 0, blocks_x * _BLOCK - width, 0, blocks_y * _BLOCK - height))
    sums = values.reshape(count, blocks_y, _BLOCK, blocks_x, _BLOCK, 3).sum(dim=(2, 4)).to(torch.int64)
    rows = np.full(blocks_y, _BLOCK)
    cols = np.full(blocks_x, _BLOCK)
    rows[-1] = height - (blocks_y - 1) * _BLOCK
    cols[-1] = width - (blocks_x - 1) * _BLOCK
    n = np.outer(rows, cols)
    multiplier = (np.float32(2.0**32) / (np.float32(256) * n.astype(np.float32))).astype(np.int64)
    amend = torch.from_numpy(n // 2).to(frames.device)[None, :, :, None]
    scaled = (sums + amend) * torch.from_numpy(multiplier).to(frames.device)[None, :, :, None]
    return (scaled >> 24).to(torch.uint8)


def _box_mean(image: torch.Tensor) -> torch.Tensor:
    """Mean over each pixel's 3x3 neighbourhood, edges replicated (``wm_dsp.box_mean(image, 1)``)."""
    padded = F.pad(image[:, None], (1, 1, 1, 1), mode="replicate")
    return F.avg_pool2d(padded, 3, stride=1)[:, 0]


def _amplitude(frames: torch.Tensor, gain: float) -> torch.Tensor:
    """``watermark._amplitude`` for a batch of frames: ``(T, ceil(H/4), ceil(W/4))`` float32."""
    small = _reduce(frames).to(torch.float32)
    luma = torch.from_numpy(np.asarray(wm._LUMA, np.float32)).to(frames.device)
    y = small[..., 0] * luma[0] + small[..., 1] * luma[1] + small[..., 2] * luma[2]
    activity = _box_mean(torch.abs(y - _box_mean(y)))
    return torch.clamp(wm.AMP_FLOOR + wm.AMP_SLOPE * activity, max=wm.AMP_CAP) * float(np.float32(gain))


def _rms(delta: torch.Tensor) -> torch.Tensor:
    """Per-frame RMS as ``watermark._rms`` gets it: the sum of squares (of whole numbers: exact here) in float32,
    divided and rooted in float32; returned as float64 for the comparisons with the cap."""
    whole = delta.to(torch.int32)
    squares = (whole * whole).sum(dim=(1, 2), dtype=torch.int64).to(torch.float32)
    return torch.sqrt(squares / float(delta.shape[1] * delta.shape[2])).to(torch.float64)


def _embed_chunk(frames: torch.Tensor, pattern: torch.Tensor, gain: float) -> torch.Tensor:
    count, height, width, _ = frames.shape
    blocks_y, _, blocks_x, _ = pattern.shape
    amplitude = _amplitude(frames, gain)
    raw = pattern[None] * amplitude[:, :, None, :, None]
    raw = raw.reshape(count, blocks_y * _BLOCK, blocks_x * _BLOCK)[:, :height, :width]
    delta = torch.round(raw)  # half to even, as np.rint
    cap = wm.RMS_CAP * gain
    rms = _rms(delta)
    pending = torch.nonzero(rms > cap).flatten()
    if pending.numel():  # busy frames: scale each one's pattern down to the cap
        factor = cap / rms[pending]
        for _ in range(_REFINE_STEPS):
            trial = torch.round(raw[pending] * factor.to(torch.float32)[:, None, None])
            trial_rms = _rms(trial)
            fits = trial_rms <= cap
            delta[pending[fits]] = trial[fits]
            pending, factor = pending[~fits], (factor * (0.995 * cap / trial_rms))[~fits]
            if not pending.numel():
                break
        else:  # |trunc(x)| <= |x|, so this is within the cap for sure
            rough = raw[pending]
            scale = (cap / _rms_float(rough)).to(torch.float32)
            delta[pending] = torch.trunc(rough * scale[:, None, None])
    # The same change on R, G and B: a pure luma change (BT.709 weights sum to 1).
    marked = frames.to(torch.int16) + delta.to(torch.int16)[..., None]
    return marked.clamp_(0, 255).to(torch.uint8)


def _rms_float(values: torch.Tensor) -> torch.Tensor:
    """Per-frame RMS of non-integer values, in float32 like ``watermark._rms``; float64 out."""
    flat = values.reshape(values.shape[0], -1)
    return torch.sqrt((flat * flat).sum(dim=1) / float(flat.shape[1])).to(torch.float64)
