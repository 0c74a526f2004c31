"""Work-arounds for known problems in the pinned third-party libraries, each applied once and explained."""

from __future__ import annotations

import importlib
import threading
import types

_lock = threading.Lock()
_applied = False

# diffusers 0.42.1's image-to-video, video-to-video and VACE Wan pipelines call ``ftfy.fix_text`` on every
# prompt but import ftfy only when it is installed, so without it they fail with "NameError: name 'ftfy' is
# not defined". WanPipeline guards the call and simply skips the clean-up when ftfy is missing; this gives
# the others the same behaviour. With ftfy installed, nothing is changed.
_FTFY_MODULES = (
    "diffusers.pipelines.wan.pipeline_wan_i2v",
    "diffusers.pipelines.wan.pipeline_wan_video2video",
    "diffusers.pipelines.wan.pipeline_wan_vace",
)


def _fix_text_unchanged(text: str) -> str:
    return text


def apply_diffusers_workarounds() -> None:
    """Make every Wan pipeline usable without the optional ``ftfy`` package (idempotent)."""
    global _applied
    with _lock:
        if _applied:
            return
        try:
            import ftfy  # noqa: F401
        except ImportError:
            stand_in = types.SimpleNamespace(fix_text=_fix_text_unchanged)
            for name in _FTFY_MODULES:
                try:
                    module = importlib.import_module(name)
                except ImportError:
                    continue
                if not hasattr(module, "ftfy"):
                    module.ftfy = stand_in  # type: ignore[attr-defined]
        _applied = True
