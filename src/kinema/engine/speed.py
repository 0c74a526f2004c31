"""Speed levers for diffusers pipelines: the attention backend, block compilation, and the speed presets.

A preset is applied to a loaded pipeline right before a run (under the backend's run lock) and stays until
another preset is asked for, so consecutive jobs with the same preset pay nothing to switch:

- ``exact`` -- the stock computation: no cache hooks, no LoRA. (The attention backend and compiled blocks
  chosen at load time are lossless and stay on for every preset.)
- ``fast`` -- diffusers' First Block Cache (:class:`diffusers.FirstBlockCacheConfig`): when the first
  transformer block's output barely changes between steps, the other blocks' residual is reused.
- ``turbo`` -- a step-distilled LoRA loaded through ``load_lora_weights`` (once) and enabled; the caller
  runs it with few steps and guidance 1.0 (no classifier-free guidance).

The state lives on the transformer module (which pipelines serving several tasks share), not on a backend.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Any

import torch

from kinema.engine.base import Speed
from kinema.engine.registry import TurboSpec

log = logging.getLogger(__name__)

TURBO_ADAPTER = "kinema_turbo"
FAST_CACHE_THRESHOLD = 0.05
"""First Block Cache's relative-change threshold (diffusers' default): higher skips more steps, loses more."""

_STATE = "_kinema_speed"


def current_speed(pipe: Any) -> Speed:
    """The preset the pipeline's transformer is configured for (``exact`` when never configured)."""
    speed: Speed = getattr(pipe.transformer, _STATE, "exact")
    return speed


def experts(pipe: Any) -> list[Any]:
    """The pipeline's denoisers: ``transformer``, plus Wan 2.2 A14B's low-noise expert ``transformer_2``."""
    second = getattr(pipe, "transformer_2", None)
    return [pipe.transformer] if second is None else [pipe.transformer, second]


def cache_hooks_available(transformer: torch.nn.Module) -> bool:
    """True when the installed diffusers has cache hooks (``enable_cache``, First Block Cache)."""
    try:
        from diffusers import FirstBlockCacheConfig  # noqa: F401
    except ImportError:
        return False
    return hasattr(transformer, "enable_cache")


def configure_speed(pipe: Any, speed: Speed, *, turbo: TurboSpec | None = None, lora: Path | None = None) -> None:
    """Put ``pipe`` in preset ``speed``, undoing the previous one. Idempotent.

    ``turbo`` needs ``lora`` (the LoRA file on disk); ``ValueError`` without it. ``fast`` falls back to
    ``exact`` (with a warning) where the installed diffusers has no cache hooks.
    """
    transformer = pipe.transformer
    before = current_speed(pipe)
    if speed == "turbo" and (turbo is None or lora is None):
        raise ValueError("the turbo preset needs the model's distilled LoRA")
    if speed == before:
        return
    if before == "fast":
        for expert in experts(pipe):
            if getattr(expert, "is_cache_enabled", False):
                expert.disable_cache()
    if before == "turbo":
        pipe.disable_lora()
    if speed == "fast":
        if cache_hooks_available(transformer):
            from diffusers import FirstBlockCacheConfig

            for expert in experts(pipe):
                expert.enable_cache(FirstBlockCacheConfig(threshold=FAST_CACHE_THRESHOLD))
        else:
            log.warning("the installed diffusers has no cache hooks: the fast preset runs as exact")
    elif speed == "turbo":
        assert turbo is not None and lora is not None
        loaded = getattr(transformer, "peft_config", None) or {}
        if TURBO_ADAPTER not in loaded:
            pipe.load_lora_weights(str(lora.parent), weight_name=lora.name, adapter_name=TURBO_ADAPTER)
        pipe.enable_lora()
        pipe.set_adapters([TURBO_ADAPTER], [turbo.scale])
    setattr(transformer, _STATE, speed)


def attention_backend(device: torch.device) -> str | None:
    """The fastest lossless attention backend installed for ``device``; None keeps PyTorch's default (SDPA).

    FlashAttention 3, then 2, when their packages are installed; otherwise cuDNN's fused attention through
    SDPA on CUDA. SageAttention is faster still but quantises attention (not lossless): not for ``exact``.
    """
    if device.type != "cuda":
        return None
    if importlib.util.find_spec("flash_attn_interface") is not None:
        return "_flash_3"
    if importlib.util.find_spec("flash_attn") is not None:
        return "flash"
    return "_native_cudnn"


def apply_load_time_levers(pipe: Any, device: torch.device, *, compile_blocks: bool) -> dict[str, Any]:
    """Set the attention backend and compile the repeated blocks of every expert (CUDA only); returns what
    was done, for the log and the benchmark."""
    done: dict[str, Any] = {"attention_backend": "native", "compiled": False}
    backend = attention_backend(device)
    for transformer in experts(pipe):
        if backend is not None and hasattr(transformer, "set_attention_backend"):
            try:
                transformer.set_attention_backend(backend)
                done["attention_backend"] = backend
            except Exception as exc:  # a backend whose kernels do not support this GPU: keep SDPA
                log.warning("attention backend %s unavailable (%s); keeping PyTorch SDPA", backend, exc)
        if compile_blocks and device.type == "cuda" and getattr(transformer, "_repeated_blocks", None):
            transformer.compile_repeated_blocks(fullgraph=True)
            done["compiled"] = True
    return done
