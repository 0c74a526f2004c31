"""Model family -> backend class, and miniature name -> builder.

Adding a family is one module with a backend class plus catalogue entries naming the family; the module is
registered here by a loader (imported only when a model of that family is first loaded, so the catalogue
stays importable without torch).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from kinema.engine.base import CancelFn, GenerationRequest, GenerationResult, ProgressFn, Task
from kinema.engine.device import Placement
from kinema.engine.footprint import OffloadMode
from kinema.engine.registry import TINY_WAN, ModelSpec


class EngineBackend(Protocol):
    """What :class:`kinema.engine.runtime.Engine` needs of a family's backend class and its instances."""

    spec: ModelSpec
    task: Task

    def __init__(
        self,
        spec: ModelSpec,
        task: Task,
        path: Path,
        placement: Placement,
        *,
        share_with: Any = None,
        offload: OffloadMode = "none",
        compile_blocks: bool = False,
        turbo_lora: Path | None = None,
    ) -> None: ...

    @staticmethod
    def weights_key_for(path: Path, placement: Placement) -> str: ...

    @property
    def weights_key(self) -> str: ...

    @property
    def loaded(self) -> bool: ...

    @property
    def busy(self) -> bool: ...

    @property
    def pipeline(self) -> Any: ...

    def load(self) -> None: ...

    def unload(self) -> None: ...

    def memory_bytes(self) -> int: ...

    def estimate_bytes(self) -> int: ...

    def generate(
        self, request: GenerationRequest, progress: ProgressFn, should_cancel: CancelFn
    ) -> GenerationResult: ...


_FAMILIES: dict[str, str] = {
    "wan": "kinema.engine.wan:WanBackend",
    "ltx": "kinema.engine.ltx:LTXBackend",
    "hunyuanvideo15": "kinema.engine.hunyuan:HunyuanVideo15Backend",
}
"""Family -> "module:Class" of its backend."""

_MINIATURES: dict[str, str] = {
    TINY_WAN: "kinema.engine.tiny:build_tiny_models",
    "tiny-ltx": "kinema.engine.tiny:build_tiny_ltx",
    "tiny-wan-a14b": "kinema.engine.tiny:build_tiny_a14b",
    "tiny-hunyuan15": "kinema.engine.hunyuan:build_tiny_hunyuan15",
}
"""Miniature model name -> "module:function" that builds it under a models dir (offline)."""


def register_family(family: str, target: str) -> None:
    """Register ``target`` ("module:Class") as the backend of ``family``."""
    _FAMILIES[family] = target


def register_miniature(name: str, target: str) -> None:
    """Register ``target`` ("module:function(models_dir) -> bool") as the builder of miniature ``name``."""
    _MINIATURES[name] = target


def families() -> list[str]:
    """The families with a backend."""
    return sorted(_FAMILIES)


def _load(target: str) -> Any:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def backend_class(family: str) -> type[EngineBackend]:
    """The backend class of ``family``; ``ValueError`` naming the known families if there is none."""
    target = _FAMILIES.get(family)
    if target is None:
        raise ValueError(f"no backend for model family {family!r}; known families: {', '.join(families())}")
    cls: type[EngineBackend] = _load(target)
    return cls


def miniature_builder(name: str) -> Callable[[Path], bool]:
    """The function that builds miniature ``name``; ``ValueError`` if there is none."""
    target = _MINIATURES.get(name)
    if target is None:
        raise ValueError(f"no builder for miniature {name!r}")
    builder: Callable[[Path], bool] = _load(target)
    return builder
