"""Where models run and in which precision."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Placement:
    """A device plus the dtypes the pipeline's components are loaded in."""

    device: torch.device
    dtype: torch.dtype
    """Transformer and text encoder."""
    precise_dtype: torch.dtype
    """VAE and image encoder: Wan decodes noticeably better in float32, and both are small."""

    @property
    def is_cuda(self) -> bool:
        """True when running on an NVIDIA GPU."""
        return self.device.type == "cuda"

    def component_dtypes(self) -> dict[str, torch.dtype]:
        """The per-component ``dtype`` mapping that diffusers' ``from_pretrained`` accepts."""
        return {"default": self.dtype, "vae": self.precise_dtype, "image_encoder": self.precise_dtype}


def select_placement(device: str | None = None) -> Placement:
    """Pick CUDA in bfloat16 (VAE and image encoder in float32) when available, else CPU in float32.

    ``device`` forces a choice ("cpu", "cuda", "cuda:1"); asking for CUDA where there is none raises
    ``RuntimeError`` rather than silently running a video model on the CPU.
    """
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    target = torch.device(device)
    if target.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(f"device {device!r} was requested but CUDA is not available")
        return Placement(target, torch.bfloat16, torch.float32)
    # bf16 matmuls on CPU are slow and poorly supported; fp32 is the only sensible choice there.
    return Placement(target, torch.float32, torch.float32)


def dtype_keyword() -> str:
    """The name of ``from_pretrained``'s dtype argument in the installed diffusers.

    diffusers 0.42 renamed ``torch_dtype`` to ``dtype`` and warns on the old name; older releases
    (the project accepts >=0.35) only know ``torch_dtype``.
    """
    try:
        from diffusers.utils.deprecation_utils import _resolve_dtype  # noqa: F401
    except ImportError:
        return "torch_dtype"
    return "dtype"
