"""Speed levers for diffusers pipelines: the attention backend, block compilation, and the speed presets.

A preset is applied to a loaded pipeline right before a run (under the backend's run lock) and stays until
another preset is asked for, so consecutive jobs with the same preset pay nothing to switch:

- ``exact`` -- the stock computation: no cache hooks, no LoRA, exact weights. With CFG batching on
  (:class:`SpeedSettings`), the conditional and unconditional passes of a step run as one batch of two:
  the same arithmetic, one transformer forward instead of two. (The attention backend and compiled blocks
  chosen at load time are lossless and stay on for every preset.)
- ``fast`` -- diffusers' First Block Cache (:class:`diffusers.FirstBlockCacheConfig`): when the first
  transformer block's output barely changes between steps, the other blocks' residual is reused. With FP8
  on (:class:`SpeedSettings`), the transformer blocks' linear layers also run in float8 (torchao).
- ``turbo`` -- a step-distilled LoRA loaded through ``load_lora_weights`` (once) and enabled; the caller
  runs it with few steps and guidance 1.0 (no classifier-free guidance). Wan 2.2 A14B gets one LoRA per
  expert (``transformer`` and ``transformer_2``).

FP8 changes the weights in place, which is one-way: leaving ``fast`` puts the exact weights back by reading
the quantised layers' tensors again from the checkpoint on disk (only those, through safetensors), so a
later ``exact`` job computes with the checkpoint's weights. That costs a read of the transformer's linear
weights each time a loaded model switches from ``fast`` to another preset, and nothing in steady state.

The state lives on the transformer module (which pipelines serving several tasks share), not on a backend.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from diffusers.hooks import HookRegistry, ModelHook

from kinema.engine.base import Speed
from kinema.engine.registry import TurboSpec

log = logging.getLogger(__name__)

TURBO_ADAPTER = "kinema_turbo"
FAST_CACHE_THRESHOLD = 0.05
"""First Block Cache's relative-change threshold (diffusers' default): higher skips more steps, loses more."""
CFG_BATCH_HOOK = "kinema_cfg_batch"
"""Name of the CFG batching hook in a transformer's diffusers hook registry."""

_STATE = "_kinema_speed"
_FP8_STATE = "_kinema_fp8"
_EXPERT_NAMES = ("transformer", "transformer_2")

Fp8Mode = Literal["dynamic", "weight-only"]


@dataclass(frozen=True)
class SpeedSettings:
    """How a loaded model applies the presets' optional levers; chosen per backend at load time.

    ``cfg_batching``: run ``exact``'s two guidance passes as one batch (lossless; needs activation memory for
    two). ``fp8``: quantise the transformer blocks' linear layers for ``fast`` (needs torchao, and ``weights``,
    the pipeline's directory, to restore exact weights from when leaving ``fast``).
    """

    cfg_batching: bool = False
    fp8: bool = False
    weights: Path | None = None


def current_speed(pipe: Any) -> Speed:
    """The preset the pipeline's transformer is configured for (``exact`` when never configured)."""
    speed: Speed = getattr(pipe.transformer, _STATE, "exact")
    return speed


def experts(pipe: Any) -> list[Any]:
    """The pipeline's denoisers: ``transformer``, plus Wan 2.2 A14B's low-noise expert ``transformer_2``."""
    second = getattr(pipe, "transformer_2", None)
    return [pipe.transformer] if second is None else [pipe.transformer, second]


def _named_experts(pipe: Any) -> Iterator[tuple[str, Any]]:
    for name in _EXPERT_NAMES:
        module = getattr(pipe, name, None)
        if module is not None:
            yield name, module


def cache_hooks_available(transformer: torch.nn.Module) -> bool:
    """True when the installed diffusers has cache hooks (``enable_cache``, First Block Cache)."""
    try:
        from diffusers import FirstBlockCacheConfig  # noqa: F401
    except ImportError:
        return False
    return hasattr(transformer, "enable_cache")


def configure_speed(
    pipe: Any,
    speed: Speed,
    *,
    turbo: TurboSpec | None = None,
    lora: Path | None = None,
    lora_2: Path | None = None,
    settings: SpeedSettings | None = None,
) -> None:
    """Put ``pipe`` in preset ``speed``, undoing the previous one. Idempotent.

    ``turbo`` needs ``lora`` (the LoRA file on disk), and for a spec with a second expert's LoRA
    (``turbo.lora_2``) also ``lora_2``; ``ValueError`` without them. ``fast`` falls back to ``exact`` (with a
    warning) where the installed diffusers has no cache hooks; its FP8 layers are skipped (with a warning)
    where torchao is missing.
    """
    settings = settings or SpeedSettings()
    transformer = pipe.transformer
    before = current_speed(pipe)
    if speed == "turbo" and (turbo is None or lora is None):
        raise ValueError("the turbo preset needs the model's distilled LoRA")
    if speed == "turbo" and turbo is not None and turbo.lora_2 is not None and lora_2 is None:
        raise ValueError("the turbo preset of this model needs a distilled LoRA for each expert")
    # CFG batching is an exact-only lever; it is set on every call so a changed setting takes effect at once.
    set_cfg_batching(pipe, speed == "exact" and settings.cfg_batching)
    if speed == before:
        return
    if before == "fast":
        for expert in experts(pipe):
            if getattr(expert, "is_cache_enabled", False):
                expert.disable_cache()
        restore_exact_weights(pipe, settings.weights)
    if before == "turbo":
        pipe.disable_lora()
    if speed == "fast":
        if cache_hooks_available(transformer):
            from diffusers import FirstBlockCacheConfig

            for expert in experts(pipe):
                expert.enable_cache(FirstBlockCacheConfig(threshold=FAST_CACHE_THRESHOLD))
        else:
            log.warning("the installed diffusers has no cache hooks: the fast preset runs without them")
        if settings.fp8:
            mode = fp8_mode(_device_of(transformer))
            if mode is None:
                log.warning("torchao is not installed: the fast preset runs without FP8 linear layers")
            elif settings.weights is None:
                log.warning("no checkpoint directory to restore exact weights from: FP8 linear layers skipped")
            else:
                try:
                    for name, expert in _named_experts(pipe):
                        count = quantize_fp8(expert, mode)
                        log.info("fast preset: %d linear layers of %s in float8 (%s)", count, name, mode)
                except Exception:  # a torchao that does not fit this torch or GPU: run fast without FP8
                    log.exception("FP8 quantisation failed; the fast preset runs without FP8 linear layers")
                    restore_exact_weights(pipe, settings.weights)
    elif speed == "turbo":
        assert turbo is not None and lora is not None
        loaded = getattr(transformer, "peft_config", None) or {}
        if TURBO_ADAPTER not in loaded:
            pipe.load_lora_weights(str(lora.parent), weight_name=lora.name, adapter_name=TURBO_ADAPTER)
        second = getattr(pipe, "transformer_2", None)
        second_loaded = getattr(second, "peft_config", None) or {}
        if lora_2 is not None and second is not None and TURBO_ADAPTER not in second_loaded:
            # Wan 2.2 A14B: the low-noise expert's own distilled LoRA (diffusers >= 0.35).
            pipe.load_lora_weights(
                str(lora_2.parent), weight_name=lora_2.name, adapter_name=TURBO_ADAPTER, load_into_transformer_2=True
            )
        pipe.enable_lora()
        pipe.set_adapters([TURBO_ADAPTER], [turbo.scale])
    setattr(transformer, _STATE, speed)


# --- CFG batching -----------------------------------------------------------------------------------------

_BATCHED_INPUTS: tuple[str, ...] = ("hidden_states", "timestep", "encoder_hidden_states")
_BATCHED_INPUTS += ("encoder_hidden_states_image", "control_hidden_states")
_SHARED_INPUTS = ("attention_kwargs", "return_dict", "control_hidden_states_scale")
"""Inputs passed as they are to the batched call (not per sample: a VACE scale is one value per layer)."""


def _same_call(a: dict[str, Any], b: dict[str, Any], *, but: str) -> bool:
    """True when two calls' inputs are the very same objects, except ``but``."""
    return a.keys() == b.keys() and all(a[k] is b[k] for k in a if k != but)


class CfgBatchHook(ModelHook):
    """A diffusers model hook that runs a guidance step's conditional and unconditional passes as one batch.

    diffusers' Wan pipelines call the transformer twice per step with the same latents and timestep objects,
    first with the prompt's embedding, then with the negative one. The hook learns that pair on the first
    step of a run (both calls run normally), then on every later conditional call runs both as a batch of
    two, returns the conditional half, and hands out the stored unconditional half when the matching call
    (same latents, timestep and negative embedding, by identity) comes next. Any call it does not recognise
    runs normally, so a pipeline that calls differently gets the stock behaviour, only without the saving.
    """

    _is_stateful = False

    def __init__(self) -> None:
        super().__init__()
        self.forwards = 0
        """Transformer forwards run through this hook (batched ones count once)."""
        self._last: dict[str, Any] | None = None
        self._pair: tuple[torch.Tensor, torch.Tensor] | None = None
        self._stored: tuple[dict[str, Any], Any] | None = None

    def reset_state(self, module: torch.nn.Module) -> torch.nn.Module:
        self.forget()
        return module

    def forget(self) -> None:
        """Drop the learned pair and anything stored (a new run, or the hook going away)."""
        self._last = self._pair = self._stored = None

    def _run(self, kwargs: dict[str, Any], args: tuple[Any, ...] = ()) -> Any:
        self.forwards += 1
        reference: Any = self.fn_ref  # set by HookRegistry.register_hook
        return reference.original_forward(*args, **kwargs)

    def new_forward(self, module: torch.nn.Module, *args: Any, **kwargs: Any) -> Any:
        if args:  # the pipelines pass everything by keyword; anything else runs as it is
            self.forget()
            return self._run(kwargs, args)
        stored, self._stored = self._stored, None
        if stored is not None and _same_call(stored[0], kwargs, but=""):
            return stored[1]
        text = kwargs.get("encoder_hidden_states")
        pair = self._pair
        if pair is not None and text is pair[0] and self._batchable(kwargs):
            return self._batched(kwargs, pair[1])
        last, self._last = self._last, kwargs
        if last is not None and _same_call(last, kwargs, but="encoder_hidden_states") and text is not None:
            first = last.get("encoder_hidden_states")
            if isinstance(first, torch.Tensor) and first is not text and first.shape == text.shape:
                self._pair = (first, text)
        return self._run(kwargs)

    @staticmethod
    def _batchable(kwargs: dict[str, Any]) -> bool:
        known = set(_BATCHED_INPUTS) | set(_SHARED_INPUTS)
        return all(k in known or v is None for k, v in kwargs.items()) and isinstance(
            kwargs.get("hidden_states"), torch.Tensor
        )

    def _batched(self, kwargs: dict[str, Any], negative: torch.Tensor) -> Any:
        batch = dict(kwargs)
        for name in _BATCHED_INPUTS:
            value = kwargs.get(name)
            if isinstance(value, torch.Tensor):
                second = negative if name == "encoder_hidden_states" else value
                batch[name] = torch.cat([value, second])
        size = kwargs["hidden_states"].shape[0]
        output = self._run(batch)
        sample = output[0] if isinstance(output, tuple) else output.sample
        cond, uncond = sample[:size], sample[size:]

        def wrap(part: torch.Tensor) -> Any:
            return (part, *output[1:]) if isinstance(output, tuple) else type(output)(sample=part)

        self._stored = ({**kwargs, "encoder_hidden_states": negative}, wrap(uncond))
        return wrap(cond)


def cfg_batch_hook(transformer: torch.nn.Module) -> CfgBatchHook | None:
    """The transformer's CFG batching hook, when it has one."""
    registry = getattr(transformer, "_diffusers_hook", None)
    hook = registry.get_hook(CFG_BATCH_HOOK) if registry is not None else None
    return hook if isinstance(hook, CfgBatchHook) else None


def set_cfg_batching(pipe: Any, enabled: bool) -> None:
    """Add (or remove) the CFG batching hook on every expert; idempotent."""
    for expert in experts(pipe):
        hook = cfg_batch_hook(expert)
        if enabled and hook is None:
            HookRegistry.check_if_exists_or_initialize(expert).register_hook(CfgBatchHook(), CFG_BATCH_HOOK)
        elif hook is not None:
            hook.forget()  # a stale pair from an earlier run must not outlive it
            if not enabled:
                expert._diffusers_hook.remove_hook(CFG_BATCH_HOOK, recurse=False)


# --- FP8 linear layers (torchao) --------------------------------------------------------------------------


def _device_of(module: torch.nn.Module) -> torch.device:
    return next(module.parameters()).device


def fp8_mode(device: torch.device) -> Fp8Mode | None:
    """How FP8 linear layers run on ``device``: None without torchao.

    ``dynamic`` (activations and weights in float8, float8 matmuls) on CUDA GPUs of compute capability 8.9 or
    newer (Ada, Hopper, Blackwell); ``weight-only`` (float8 storage, matmuls in the compute dtype) elsewhere,
    which saves memory but not time: it exists to measure the quality loss on machines without such a GPU.
    """
    if importlib.util.find_spec("torchao") is None:
        return None
    if device.type == "cuda" and torch.cuda.get_device_capability(device) >= (8, 9):
        return "dynamic"
    return "weight-only"


def _fp8_candidate(module: torch.nn.Module, fqn: str, mode: Fp8Mode) -> bool:
    """The transformer blocks' linear layers (not the embedders or the output projection, which are small and
    sensitive), never a LoRA's own layers, and for float8 matmuls only the shapes they accept (multiples of 16)."""
    return (
        isinstance(module, torch.nn.Linear)
        and fqn.split(".", 1)[0].endswith("blocks")  # Wan's blocks, LTX's transformer_blocks
        and "lora_" not in fqn
        and (mode == "weight-only" or (module.in_features % 16 == 0 and module.out_features % 16 == 0))
    )


def quantize_fp8(transformer: torch.nn.Module, mode: Fp8Mode) -> int:
    """Quantise ``transformer``'s block linear layers to float8 in place; returns how many (0 if already)."""
    if getattr(transformer, _FP8_STATE, None):
        return 0
    from torchao.quantization import (
        Float8DynamicActivationFloat8WeightConfig,
        Float8WeightOnlyConfig,
        PerRow,
        quantize_,
    )

    names = [fqn for fqn, m in transformer.named_modules() if _fp8_candidate(m, fqn, mode)]
    originals = {fqn: transformer.get_submodule(fqn).weight.dtype for fqn in names}
    config: Any = (
        Float8DynamicActivationFloat8WeightConfig(granularity=PerRow())
        if mode == "dynamic"
        else Float8WeightOnlyConfig()
    )
    wanted = set(names)
    # Recorded first: if quantize_ fails half-way, restore_exact_weights still puts every layer back.
    setattr(transformer, _FP8_STATE, originals)
    quantize_(transformer, config, filter_fn=lambda _m, fqn: fqn in wanted)
    return len(names)


def fp8_layers(transformer: torch.nn.Module) -> list[str]:
    """Names of ``transformer``'s linear layers currently in float8."""
    return list(getattr(transformer, _FP8_STATE, None) or {})


def restore_exact_weights(pipe: Any, weights: Path | None) -> None:
    """Put the checkpoint's weights back into every expert's float8 layers (read from ``weights``).

    Only the quantised layers' weight tensors are read (safetensors, lazily). A LoRA wrapper's ``base_layer``
    maps to the checkpoint's plain name.
    """
    for name, expert in _named_experts(pipe):
        originals: dict[str, torch.dtype] = getattr(expert, _FP8_STATE, None) or {}
        if not originals:
            continue
        if weights is None:
            raise RuntimeError(f"{name} has float8 layers and no checkpoint to restore its exact weights from")
        from safetensors import safe_open

        wanted = {fqn.replace(".base_layer", "") + ".weight": fqn for fqn in originals}
        restored = 0
        for file in sorted((Path(weights) / name).glob("*.safetensors")):
            with safe_open(str(file), framework="pt") as reader:
                for key in set(reader.keys()) & wanted.keys():
                    fqn = wanted[key]
                    layer = expert.get_submodule(fqn)
                    tensor = reader.get_tensor(key).to(device=layer.weight.device, dtype=originals[fqn])
                    layer.weight = torch.nn.Parameter(tensor, requires_grad=False)
                    restored += 1
        if restored != len(originals):
            raise RuntimeError(f"restored {restored} of {len(originals)} float8 layers of {name} from {weights}")
        setattr(expert, _FP8_STATE, None)
        log.info("restored the exact weights of %d linear layers of %s", restored, name)


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
