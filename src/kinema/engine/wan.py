"""The Wan backend: one task of one Wan model, run through its diffusers pipeline."""

from __future__ import annotations

import gc
import inspect
import logging
import secrets
import threading
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import diffusers
import torch
from diffusers import DiffusionPipeline

from kinema.engine.base import (
    CancelFn,
    Cancelled,
    GenerationRequest,
    GenerationResult,
    ProgressFn,
    Task,
)
from kinema.engine.compat import apply_diffusers_workarounds
from kinema.engine.device import Placement, dtype_keyword
from kinema.engine.footprint import OffloadMode, estimate_checkpoint_bytes, module_bytes, needs_vae_tiling
from kinema.engine.frames import fit_image, fit_video, to_uint8_tensor
from kinema.engine.registry import ModelSpec
from kinema.engine.speed import SpeedSettings, apply_load_time_levers, configure_speed, fp8_mode

log = logging.getLogger(__name__)

# The default negative prompt's text embedding, per loaded text encoder: computed on first use, then reused
# by every run (and every task sharing that encoder) until the weights are unloaded.
_NEGATIVE_EMBEDS: weakref.WeakKeyDictionary[torch.nn.Module, dict[str, torch.Tensor]] = weakref.WeakKeyDictionary()
_NEGATIVE_LOCK = threading.Lock()
WAN_MAX_SEQUENCE_LENGTH = 512
"""Text tokens the Wan pipelines encode a prompt to (their ``__call__`` default)."""


def pipeline_class(name: str) -> type[DiffusionPipeline]:
    """The diffusers pipeline class called ``name`` (e.g. "WanPipeline"); ``ValueError`` if there is none."""
    cls = getattr(diffusers, name, None)
    if not (isinstance(cls, type) and issubclass(cls, DiffusionPipeline)):
        raise ValueError(f"{name!r} is not a diffusers pipeline class")
    return cls


def derive_pipeline(cls: type[DiffusionPipeline], base: DiffusionPipeline) -> DiffusionPipeline:
    """A ``cls`` pipeline that reuses ``base``'s loaded modules (no copy, no extra memory).

    Not ``cls.from_pipe(base)``: in diffusers 0.42 that ends with ``.to(dtype=...)`` (float32 unless told
    otherwise), which would cast the *shared* modules in place -- doubling a bf16 transformer's memory, or
    squashing the float32 VAE to bf16. Config values both pipelines accept (``expand_timesteps`` for
    Wan 2.2 TI2V, ``boundary_ratio``) carry over. The scheduler is a fresh copy because it keeps per-run
    state (the step index) and the two pipelines must not share that.
    """
    params = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    parts: dict[str, Any] = {}
    for name in params:
        if name in base.components:
            parts[name] = base.components[name]
        elif name in base.config and not name.startswith("_"):
            parts[name] = base.config[name]
    scheduler = base.components.get("scheduler")
    if scheduler is not None:
        parts["scheduler"] = type(scheduler).from_config(scheduler.config)
    return cls(**parts)


def check_clip_geometry(request: GenerationRequest, spatial: int, temporal: int) -> None:
    """``ValueError`` unless the request's size is a multiple of ``spatial`` px, its length ``temporal``k+1
    frames, and it has a step: what a family's VAE and patching can make exactly."""
    if request.width % spatial or request.height % spatial:
        raise ValueError(f"width and height must be multiples of {spatial}, got {request.width}x{request.height}")
    if request.num_frames % temporal != 1:
        raise ValueError(f"num_frames must be {temporal}k+1, got {request.num_frames}")
    if request.num_inference_steps < 1:
        raise ValueError("num_inference_steps must be at least 1")


class WanBackend:
    """Serves one task of one Wan model; implements :class:`kinema.engine.base.Backend`.

    Backends for different tasks on the same weights directory (Wan 2.1 text-to-video and video-to-video,
    Wan 2.2 TI2V's text- and image-to-video) pass ``share_with`` so the second one reuses the first one's
    modules instead of loading them again, and the two take turns on them (one generation at a time).
    """

    def __init__(
        self,
        spec: ModelSpec,
        task: Task,
        path: Path,
        placement: Placement,
        *,
        share_with: WanBackend | None = None,
        offload: OffloadMode = "none",
        compile_blocks: bool = False,
        turbo_lora: Path | None = None,
        cfg_batching: bool | None = None,
        fp8: bool | None = None,
    ):
        if task not in spec.tasks:
            raise ValueError(f"model {spec.name!r} has no {task} task")
        self.spec = spec
        self.task: Task = task
        self.path = Path(path)
        self.placement = placement
        self._source = spec.tasks[task]
        if share_with is not None and share_with.weights_key != self.weights_key:
            raise ValueError("share_with must serve the same weights on the same device")
        self._share_with = share_with
        if offload != "none" and not placement.is_cuda:
            raise ValueError(f"CPU offload ({offload}) only makes sense with a GPU; this backend runs on the CPU")
        self.offload: OffloadMode = offload
        self.compile_blocks = compile_blocks
        self.turbo_lora = turbo_lora
        # None: the defaults of :meth:`speed_settings`.
        self._cfg_batching = cfg_batching
        self._fp8 = fp8
        self.levers: dict[str, Any] = {}
        # The lock that serialises generations is shared with the partner: the modules are the same objects,
        # and two runs interleaving on one GPU would only fight over memory.
        self._run_lock = share_with._run_lock if share_with is not None else threading.Lock()
        self._load_lock = threading.Lock()
        self._pipe: DiffusionPipeline | None = None
        self._running = 0
        self._running_lock = threading.Lock()

    @staticmethod
    def weights_key_for(path: Path, placement: Placement) -> str:
        """Identifies a set of loaded modules: backends with equal keys can share them."""
        return f"{Path(path).resolve()}@{placement.device}"

    @property
    def weights_key(self) -> str:
        """This backend's :meth:`weights_key_for`."""
        return self.weights_key_for(self.path, self.placement)

    @property
    def loaded(self) -> bool:
        """True between :meth:`load` and :meth:`unload`."""
        return self._pipe is not None

    @property
    def busy(self) -> bool:
        """True while a generation is running (or waiting for its turn) on this backend."""
        return self._running > 0

    @property
    def pipeline(self) -> DiffusionPipeline:
        """The loaded diffusers pipeline; ``RuntimeError`` when not loaded."""
        pipe = self._pipe
        if pipe is None:
            raise RuntimeError(f"{self.spec.name} {self.task} is not loaded")
        return pipe

    def load(self) -> None:
        """Load the pipeline from the local weights directory onto the device; idempotent, never downloads."""
        with self._load_lock:
            if self._pipe is not None:
                return
            apply_diffusers_workarounds()
            cls = pipeline_class(self._source.pipeline)
            base = self._share_with._pipe if self._share_with is not None else None
            if base is not None:
                pipe = derive_pipeline(cls, base)
            else:
                pipe = cls.from_pretrained(
                    self.path, local_files_only=True, **{dtype_keyword(): self.placement.component_dtypes()}
                )
                if self.offload == "model":
                    # One component on the GPU at a time (text encoder, transformer, VAE; Wan 2.2 A14B's two
                    # experts in turn, swapped at the boundary step): the peak is the largest of them rather
                    # than their sum.
                    pipe.enable_model_cpu_offload(device=self.placement.device)
                elif self.offload == "sequential":
                    pipe.enable_sequential_cpu_offload(device=self.placement.device)
                else:
                    pipe.to(self.placement.device)
                self.levers = apply_load_time_levers(pipe, self.placement.device, compile_blocks=self.compile_blocks)
                log.info("%s %s loaded: offload %s, %s", self.spec.name, self.task, self.offload, self.levers)
            pipe.set_progress_bar_config(disable=True)
            self._pipe = pipe
            # Only needed to find the modules at load time; holding on would keep an evicted partner alive.
            self._share_with = None

    def unload(self) -> None:
        """Drop this backend's reference to the pipeline and release cached device memory.

        Modules still used by a sharing partner (or by a generation running right now) stay alive until
        those let go of them too.
        """
        with self._load_lock:
            self._pipe = None
        gc.collect()
        if self.placement.is_cuda:
            torch.cuda.empty_cache()

    def memory_bytes(self) -> int:
        """Bytes of parameters and buffers held by the loaded pipeline (0 when unloaded)."""
        pipe = self._pipe
        if pipe is None:
            return 0
        return module_bytes(m for m in pipe.components.values() if isinstance(m, torch.nn.Module))

    def estimate_bytes(self) -> int:
        """Bytes the weights will take once loaded, read from the checkpoint headers without loading."""
        dtypes = self.placement.component_dtypes()
        return estimate_checkpoint_bytes(self.path, lambda component: dtypes.get(component, dtypes["default"]))

    def generate(self, request: GenerationRequest, progress: ProgressFn, should_cancel: CancelFn) -> GenerationResult:
        """:meth:`generate_on_device`, with the frames brought to the CPU as a numpy array."""
        frames = self.generate_on_device(request, progress, should_cancel)
        return GenerationResult(frames=frames.cpu().numpy(), fps=request.fps)

    def generate_on_device(
        self, request: GenerationRequest, progress: ProgressFn, should_cancel: CancelFn
    ) -> torch.Tensor:
        """Make one clip of exactly ``(request.num_frames, request.height, request.width, 3)`` uint8 frames, left
        on the pipeline's device (converted from float there), so the worker can label and watermark them there.

        ``progress(step, total)`` is called after every denoising step; ``should_cancel()`` is polled right
        after it, and when it turns true :class:`Cancelled` is raised from inside the denoising loop, so the
        VAE never decodes. The same seed gives the same frames on the same device (noise is drawn on the CPU
        so it does not depend on the GPU model either).
        """
        if request.task != self.task:
            raise ValueError(f"this backend serves {self.task}, not {request.task}")
        pipe = self.pipeline  # a local reference: an eviction mid-run must not pull it away
        self._check_geometry(pipe, request)
        task_inputs = self._task_inputs(request)
        if should_cancel():
            raise Cancelled("cancelled before the first step")

        seed = request.seed if request.seed is not None else secrets.randbits(63)
        generator = torch.Generator(device="cpu").manual_seed(seed)

        def on_step_end(p: DiffusionPipeline, step: int, timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
            # num_timesteps is what the loop really runs: for v2v that is steps * strength, not steps.
            total = int(p.num_timesteps)
            progress(step + 1, total)
            if should_cancel():
                raise Cancelled(f"cancelled after step {step + 1} of {total}")
            return {}

        with self._running_lock:
            self._running += 1
        try:
            with self._run_lock:
                self._configure(pipe, request)
                output = self._call_pipeline(pipe, request, generator, on_step_end, task_inputs)
        finally:
            with self._running_lock:
                self._running -= 1
        # "pt" frames are (batch, frames, channels, height, width) floats in [0, 1] on the pipeline's device.
        frames = to_uint8_tensor(output.frames[0].permute(0, 2, 3, 1))
        expected = (request.num_frames, request.height, request.width, 3)
        if tuple(frames.shape) != expected:
            shape = tuple(frames.shape)
            raise RuntimeError(f"{self._source.pipeline} returned frames of shape {shape}, expected {expected}")
        return frames

    def _call_pipeline(
        self,
        pipe: DiffusionPipeline,
        request: GenerationRequest,
        generator: torch.Generator,
        on_step_end: Callable[[DiffusionPipeline, int, Any, dict[str, Any]], dict[str, Any]],
        task_inputs: dict[str, Any],
    ) -> Any:
        """Run the pipeline once; ``on_step_end(pipe, step, timestep, tensors)`` after every denoising step.
        A family whose pipeline takes its inputs differently overrides this (HunyuanVideo 1.5)."""
        return pipe(
            prompt=request.prompt,
            **self._negative_inputs(pipe, request),
            height=request.height,
            width=request.width,
            num_inference_steps=request.num_inference_steps,
            **self._guidance_inputs(pipe, request),
            generator=generator,
            output_type="pt",
            callback_on_step_end=on_step_end,
            callback_on_step_end_tensor_inputs=[],
            **task_inputs,
        )

    def _configure(self, pipe: DiffusionPipeline, request: GenerationRequest) -> None:
        """Set the pipeline up for ``request``: speed preset, the scheduler's flow shift, VAE tiling."""
        lora = self._turbo_lora(request)
        configure_speed(
            pipe,
            request.speed,
            turbo=self.spec.turbo,
            lora=lora,
            lora_2=self._turbo_lora_2(lora),
            settings=self.speed_settings,
        )
        shift = self.spec.flow_shift_for(request.width, request.height)
        scheduler = pipe.scheduler
        if shift is not None and "flow_shift" in scheduler.config and scheduler.config.flow_shift != shift:
            # A fresh scheduler: its config is frozen, and it keeps no state worth carrying between runs.
            pipe.scheduler = type(scheduler).from_config(scheduler.config, flow_shift=shift)
        if self.placement.is_cuda:
            free, _total = torch.cuda.mem_get_info(self.placement.device)
            self.set_vae_tiling(pipe, request, free)

    @property
    def speed_settings(self) -> SpeedSettings:
        """The presets' optional levers for this backend: the constructor's choices, or by default both on with
        a whole-GPU placement (no offload) -- CFG batching needs activation memory for two samples, FP8 a GPU
        with float8 matmuls (compute capability >= 8.9) and torchao -- and both off on the CPU."""
        whole_gpu = self.placement.is_cuda and self.offload == "none"
        cfg = self._cfg_batching if self._cfg_batching is not None else whole_gpu
        fp8 = self._fp8
        if fp8 is None:
            fp8 = whole_gpu and fp8_mode(self.placement.device) == "dynamic"
        return SpeedSettings(cfg_batching=cfg, fp8=fp8, weights=self.path)

    def _turbo_lora_2(self, lora: Path | None) -> Path | None:
        """The low-noise expert's turbo LoRA: the other file of the same snapshot as ``lora`` (Wan 2.2 A14B)."""
        turbo = self.spec.turbo
        if lora is None or turbo is None or turbo.lora_2 is None:
            return None
        root = lora.parents[len(Path(turbo.lora.weight_name or "").parts) - 1]
        second = root / (turbo.lora_2.weight_name or "")
        if not second.is_file():
            from kinema.engine.base import ModelNotAvailable
            from kinema.engine.hub import pull_hint

            raise ModelNotAvailable(
                f"the low-noise turbo LoRA of model {self.spec.name!r} is not on this machine: "
                f"run `{pull_hint(self.spec)}`"
            )
        return second

    def _turbo_lora(self, request: GenerationRequest) -> Path | None:
        if request.speed != "turbo":
            return None
        if self.spec.turbo is None:
            raise ValueError(f"model {self.spec.name!r} has no turbo preset")
        if self.turbo_lora is None:
            from kinema.engine.base import ModelNotAvailable
            from kinema.engine.hub import pull_hint

            raise ModelNotAvailable(
                f"the turbo LoRA of model {self.spec.name!r} is not on this machine: run `{pull_hint(self.spec)}`"
            )
        return self.turbo_lora

    @staticmethod
    def set_vae_tiling(pipe: DiffusionPipeline, request: GenerationRequest, free_bytes: int) -> bool:
        """Tile the VAE decode only when an untiled one would not fit in ``free_bytes``; returns whether it tiles.

        Untiled is faster and exact; tiles bound the decoder's peak memory at the cost of some time and of
        faint seams where tiles blend.
        """
        base_dim = int(pipe.vae.config.get("decoder_base_dim") or pipe.vae.config.base_dim)
        tile = needs_vae_tiling(base_dim, request.width, request.height, request.num_frames, free_bytes)
        if tile:
            pipe.vae.enable_tiling()
        else:
            pipe.vae.disable_tiling()
        return tile

    def _guidance_inputs(self, pipe: DiffusionPipeline, request: GenerationRequest) -> dict[str, Any]:
        """``guidance_scale``, and for a two-expert pipeline (Wan 2.2 A14B) ``guidance_scale_2``, the low-noise
        expert's (:meth:`ModelSpec.guidance_2_for`); the pipeline refuses the latter without a boundary."""
        inputs: dict[str, Any] = {"guidance_scale": request.guidance_scale}
        if getattr(pipe, "transformer_2", None) is not None and pipe.config.get("boundary_ratio") is not None:
            second = self.spec.guidance_2_for(request.guidance_scale)
            if second is not None:
                inputs["guidance_scale_2"] = second
        return inputs

    def _negative_inputs(self, pipe: DiffusionPipeline, request: GenerationRequest) -> dict[str, Any]:
        """The request's negative prompt, or the model's default one as a cached embedding.

        Without classifier-free guidance (guidance <= 1, the turbo preset) the pipeline ignores it.
        """
        default = self.spec.default_negative_prompt
        if request.negative_prompt is not None or not default or request.guidance_scale <= 1.0:
            return {"negative_prompt": request.negative_prompt}
        return {"negative_prompt_embeds": self.default_negative_embeds(pipe, default)}

    @staticmethod
    def default_negative_embeds(pipe: DiffusionPipeline, text: str) -> torch.Tensor:
        """The embedding of ``text`` by ``pipe``'s text encoder, computed once per loaded encoder."""
        encoder = pipe.text_encoder
        with _NEGATIVE_LOCK:
            cached = _NEGATIVE_EMBEDS.setdefault(encoder, {})
            if text not in cached:
                # As the pipeline itself would encode it: without autograd (which picks other kernels, and
                # would keep a graph alive), 512 tokens, in the text encoder's dtype.
                with torch.no_grad():
                    embeds, _ = pipe.encode_prompt(
                        prompt=text,
                        do_classifier_free_guidance=False,
                        max_sequence_length=WAN_MAX_SEQUENCE_LENGTH,
                        device=pipe._execution_device,
                    )
                cached[text] = embeds
            return cached[text]

    @staticmethod
    def _check_geometry(pipe: DiffusionPipeline, request: GenerationRequest) -> None:
        # Pipelines silently round sizes and lengths they cannot do; a caller would then get a clip that is
        # not what it asked for. The registry only hands out valid values, so this guards direct callers.
        vae = pipe.vae.config
        patch = pipe.transformer.config.patch_size
        multiple = vae.scale_factor_spatial * patch[1]
        check_clip_geometry(request, multiple, vae.scale_factor_temporal)

    def _task_inputs(self, request: GenerationRequest) -> dict[str, Any]:
        w, h, n = request.width, request.height, request.num_frames
        if self.task == "t2v":
            return {"num_frames": n}
        if self.task == "i2v":
            if request.image is None:
                raise ValueError("i2v needs an image (the first frame)")
            return {"num_frames": n, "image": fit_image(request.image, w, h)}
        if self.task == "v2v":
            if not request.video:
                raise ValueError("v2v needs a source video")
            if not 0.0 <= request.strength <= 1.0:
                raise ValueError(f"strength must be within [0, 1], got {request.strength}")
            # The pipeline runs int(steps * strength) steps and fails outright on zero; run at least one.
            strength = min(1.0, max(request.strength, (1.0 + 1e-6) / request.num_inference_steps))
            # The output has as many frames as the source, so the source is conformed to the request.
            return {"video": fit_video(request.video, n, w, h), "strength": strength}
        if self.task == "vace":
            if not request.reference_images and not request.video:
                raise ValueError("vace needs reference images (or a control video)")
            inputs: dict[str, Any] = {"num_frames": n}
            if request.reference_images:
                # The pipeline letterboxes references onto the canvas itself, keeping their proportions.
                inputs["reference_images"] = [img.convert("RGB") for img in request.reference_images]
            if request.video:
                inputs["video"] = fit_video(request.video, n, w, h)
            return inputs
        raise ValueError(f"unknown task {self.task!r}")
