"""How much memory a set of weights takes: measured on loaded modules, estimated from files on disk."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Iterable
from pathlib import Path

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
