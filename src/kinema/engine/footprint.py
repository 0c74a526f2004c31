"""How much memory a set of weights takes: measured on loaded modules, estimated from files on disk."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Literal

import torch

# safetensors dtype tags of floating-point tensors: these are cast to the load dtype, the rest keep theirs.
_FLOAT_TAGS = {"F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2"}
_TAG_BYTES = {
    "F64": 8,
    "F32": 4,
    "F16": 2,
    "BF16": 2,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
    "I64": 8,
    "I32": 4,
    "I16": 2,
    "I8": 1,
    "U8": 1,
    "BOOL": 1,
}
_WEIGHT_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt")


def module_bytes(modules: Iterable[torch.nn.Module]) -> int:
    """Bytes held by the parameters and buffers of ``modules``, each storage counted once.

    Counting storages rather than tensors means components shared between pipelines (or tied weights)
    are not counted twice.
    """
    seen: set[tuple[str, int]] = set()
    total = 0
    for module in modules:
        for tensor in (*module.parameters(), *module.buffers()):
            storage = tensor.untyped_storage()
            key = (str(tensor.device), storage.data_ptr())
            if tensor.device.type == "meta" or key in seen:
                continue
            seen.add(key)
            total += storage.nbytes()
    return total


def safetensors_tensors(path: Path) -> dict[str, tuple[str, int]]:
    """Tensor name -> (dtype tag, element count), read from a ``.safetensors`` header without loading it."""
    with path.open("rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
    out: dict[str, tuple[str, int]] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        count = 1
        for dim in info["shape"]:
            count *= int(dim)
        out[name] = (info["dtype"], count)
    return out


def estimate_checkpoint_bytes(root: Path, dtype_for: Callable[[str], torch.dtype]) -> int:
    """Bytes a diffusers checkpoint directory will take once loaded.

    ``dtype_for(component)`` is the dtype floating-point weights of that component (a subdirectory such
    as "transformer" or "vae") are loaded in. Weights in formats other than safetensors are counted by
    file size. Activations are not included.
    """
    total = 0
    for file in sorted(root.rglob("*")):
        if not file.is_file():
            continue
        component = file.relative_to(root).parts[0]
        if file.suffix == ".safetensors":
            itemsize = dtype_for(component).itemsize
            for tag, count in safetensors_tensors(file).values():
                total += count * (itemsize if tag in _FLOAT_TAGS else _TAG_BYTES.get(tag, 4))
        elif file.suffix in _WEIGHT_SUFFIXES:
            total += file.stat().st_size
    return total


# --- what a run needs beyond the weights ------------------------------------------------------------------

OffloadMode = Literal["none", "model", "sequential"]

_GIB = 1 << 30
ACTIVATION_HEADROOM_GB = 4.0
"""Room left for the transformer's activations and the CUDA context when choosing an offload mode."""


def choose_offload(weights_gb: float, largest_component_gb: float, gpu_gb: float) -> OffloadMode:
    """The least intrusive CPU offload that fits weights into ``gpu_gb`` of GPU memory.

    ``none`` when all weights plus headroom fit; ``model`` (one component on the GPU at a time: the peak is
    the largest one) when that fits; ``sequential`` (layer by layer, slowest) otherwise.
    """
    if weights_gb + ACTIVATION_HEADROOM_GB <= gpu_gb:
        return "none"
    if largest_component_gb + ACTIVATION_HEADROOM_GB <= gpu_gb:
        return "model"
    return "sequential"


def vae_decode_bytes(base_dim: int, width: int, height: int, num_frames: int, temporal_chunk: int = 4) -> int:
    """Peak bytes of decoding a Wan-VAE clip in one piece (untiled), in float32.

    The decoder runs causally over latent frames, so at full resolution it holds about ``temporal_chunk``
    frames of ``base_dim`` channels at once, in roughly eight live buffers (input, normalised, convolved,
    residual, the causal cache); plus the decoded clip itself. A deliberately generous estimate: tiling
    costs some time, running out of memory costs the job.
    """
    working = 8 * temporal_chunk * width * height * base_dim * 4
    output = num_frames * width * height * 3 * 4
    return working + output


def needs_vae_tiling(base_dim: int, width: int, height: int, num_frames: int, free_bytes: int) -> bool:
    """True when an untiled decode would not fit in ``free_bytes`` (keeping 10% spare)."""
    return vae_decode_bytes(base_dim, width, height, num_frames) > 0.9 * free_bytes


def gib(n_bytes: int) -> float:
    """Bytes as GiB."""
    return n_bytes / _GIB


def wan_transformer_flops(
    video_tokens: int, text_tokens: int = 512, dim: int = 1536, ffn_dim: int = 8960, layers: int = 30
) -> float:
    """Floating-point operations of one Wan transformer forward (multiply-add = 2), the benchmark's FLOP model.

    Per block: self-attention projections (q, k, v, out) 8·L·d², its scores and weighted sum 4·L²·d,
    cross-attention query/out projections 4·L·d² plus key/value projections of the text 4·T·d² and its
    scores 4·L·T·d, and the feed-forward 4·L·d·f. Defaults are Wan 2.1 T2V 1.3B's; at 480p x 81 frames
    (32,760 tokens) 50 steps with CFG come to 28.3 PFLOP, ~70% of it self-attention.
    """
    L, T, d, f = video_tokens, text_tokens, dim, ffn_dim  # noqa: N806
    per_block = 12 * L * d * d + 4 * T * d * d + 4 * L * L * d + 4 * L * T * d + 4 * L * d * f
    return float(per_block * layers)


def wan_video_tokens(width: int, height: int, num_frames: int, spatial: int = 16, temporal: int = 4) -> int:
    """Transformer tokens of a clip: VAE compression (8x, 4x) times the 1x2x2 patch."""
    return ((num_frames - 1) // temporal + 1) * (height // spatial) * (width // spatial)
