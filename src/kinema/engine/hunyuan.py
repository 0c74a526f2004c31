"""The HunyuanVideo 1.5 backend: Tencent's 8.3B DiT through diffusers' ``HunyuanVideo15Pipeline``.

Loading, weight sharing, offload, the run lock, cancellation and the output conversion are the Wan backend's.
HunyuanVideo 1.5 differs in how its pipeline is driven:

- guidance is a *guider* component (``ClassifierFreeGuidance``), not a call argument: each run gets a copy
  with the request's scale (``guider.new``), so the checkpoint's own guider stays as loaded;
- the pipeline has no step callback: progress and cancellation hook the scheduler's ``step`` for the run
  (called once per denoising step, after the guider combined its predictions);
- the scheduler's shift is called ``shift`` (flow-matching Euler), 5.0 at 480p in Tencent's reference settings;
- its VAE compresses space 16x and time 4x (4k+1 frames); two text encoders (Qwen2.5-VL for the prompt,
  ByT5 for quoted text to render as glyphs), so the default-negative-prompt cache of Wan does not apply.

Registered in :mod:`kinema.engine.families` as family ``hunyuanvideo15``. Image-to-video
(``HunyuanVideo15ImageToVideoPipeline``, a SigLIP image encoder besides) takes no size: it picks the training
bucket nearest the image's aspect ratio around the checkpoint's ``target_size``. The backend fits the image
to the request's size first, and refuses a size that is not its own bucket (so the catalogue lists only
those), rather than return another size than asked.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from diffusers import DiffusionPipeline

from kinema.engine.base import GenerationRequest
from kinema.engine.frames import fit_image
from kinema.engine.registry import ComponentSource, ModelSpec
from kinema.engine.speed import SpeedSettings
from kinema.engine.wan import WanBackend, check_clip_geometry

FAMILY = "hunyuanvideo15"
TINY_HUNYUAN15 = "tiny-hunyuan15"
TINY_HUNYUAN15_BUILD_VERSION = 2

CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
"""Qwen's chat format (ChatML), which the pipeline applies to the prompt and its system message."""


def tiny_hunyuan15_spec() -> ModelSpec:
    """The HunyuanVideo 1.5 miniature: random weights, text- and image-to-video, built offline (not served).

    48x32 and 32x48 are the image-to-video buckets of its ``target_size`` (40), as 848x480 and 480x832 are the
    real 480p checkpoint's (640)."""
    return ModelSpec(
        name=TINY_HUNYUAN15,
        family=FAMILY,
        description="Miniature HunyuanVideo 1.5 with random weights, built locally; makes no meaningful video.",
        tasks={
            "t2v": ComponentSource("HunyuanVideo15Pipeline", subdir=f"{TINY_HUNYUAN15}/t2v"),
            "i2v": ComponentSource("HunyuanVideo15ImageToVideoPipeline", subdir=f"{TINY_HUNYUAN15}/i2v"),
        },
        fps=8,
        sizes={"48x32": (48, 32), "32x48": (32, 48)},
        default_size="48x32",
        seconds={"1": 9},
        default_seconds="1",
        default_steps=2,
        default_guidance=6.0,
        miniature=True,
        flow_shift={"48x32": 5.0, "32x48": 5.0},
    )


def _tiny_qwen_tokenizer() -> Any:
    """A byte-level BPE tokenizer in Qwen2's format with no merges: every byte is a token. Built in code."""
    from tokenizers import Tokenizer, decoders, pre_tokenizers
    from tokenizers.models import BPE
    from transformers import Qwen2TokenizerFast

    vocab = {ch: i for i, ch in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    tok = Tokenizer(BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
    return Qwen2TokenizerFast(
        tokenizer_object=tok,
        pad_token="<|endoftext|>",
        eos_token="<|im_end|>",
        unk_token=None,
        chat_template=CHAT_TEMPLATE,
        model_max_length=4096,
    )


def tiny_hunyuan15_pipeline(seed: int = 0, task: str = "t2v") -> Any:
    """A random miniature ``HunyuanVideo15Pipeline`` (Qwen2.5-VL text model, ByT5, DiT, VAE), or with
    ``task="i2v"`` the ``HunyuanVideo15ImageToVideoPipeline`` (plus a SigLIP image encoder); deterministic."""
    from diffusers import (
        AutoencoderKLHunyuanVideo15,
        FlowMatchEulerDiscreteScheduler,
        HunyuanVideo15ImageToVideoPipeline,
        HunyuanVideo15Pipeline,
        HunyuanVideo15Transformer3DModel,
    )
    from diffusers.guiders import ClassifierFreeGuidance
    from transformers import (
        ByT5Tokenizer,
        Qwen2_5_VLTextConfig,
        Qwen2_5_VLTextModel,
        SiglipImageProcessor,
        SiglipVisionConfig,
        SiglipVisionModel,
        T5Config,
        T5EncoderModel,
    )

    tokenizer = _tiny_qwen_tokenizer()
    torch.manual_seed(seed)
    transformer = HunyuanVideo15Transformer3DModel(
        in_channels=9,  # latents, the (empty) first-frame condition and its mask: 4 + 4 + 1
        out_channels=4,
        num_attention_heads=2,
        attention_head_dim=8,
        num_layers=1,
        num_refiner_layers=1,
        mlp_ratio=2.0,
        patch_size=1,
        patch_size_t=1,
        text_embed_dim=16,
        text_embed_2_dim=32,
        image_embed_dim=12,
        rope_axes_dim=(2, 2, 4),
        target_size=40,  # the image-to-video bucket size: 48x32 and 32x48 are buckets of 40
        task_type=task,
    )
    vae = AutoencoderKLHunyuanVideo15(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        block_out_channels=(16, 16),
        layers_per_block=1,
        spatial_compression_ratio=4,
        temporal_compression_ratio=2,
        downsample_match_channel=False,
        upsample_match_channel=False,
    )
    qwen_config: dict[str, Any] = {
        "hidden_size": 16,
        "intermediate_size": 16,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 2,
        "vocab_size": len(tokenizer),
        # Qwen2.5-VL's multimodal rotary sections (time, height, width), scaled down to the head size.
        "rope_scaling": {"mrope_section": [1, 1, 2], "rope_type": "default", "type": "default"},
        "rope_theta": 1e6,
        "bos_token_id": tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        "eos_token_id": tokenizer.convert_tokens_to_ids("<|im_end|>"),
    }
    qwen = Qwen2_5_VLTextConfig(**qwen_config)
    byt5 = T5Config(vocab_size=384, d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4)
    parts: dict[str, Any] = {
        "text_encoder": Qwen2_5_VLTextModel(qwen).eval(),
        "tokenizer": tokenizer,
        "transformer": transformer.eval(),
        "vae": vae.eval(),
        "scheduler": FlowMatchEulerDiscreteScheduler(shift=5.0),
        "text_encoder_2": T5EncoderModel(byt5).eval(),
        "tokenizer_2": ByT5Tokenizer(),
        "guider": ClassifierFreeGuidance(guidance_scale=6.0),
    }
    if task == "t2v":
        return HunyuanVideo15Pipeline(**parts)
    # SigLIP as the real one (patch 14), on a 28 px image: 4 image tokens of width image_embed_dim.
    siglip = SiglipVisionConfig(
        hidden_size=12, intermediate_size=16, num_hidden_layers=1, num_attention_heads=2, image_size=28, patch_size=14
    )
    return HunyuanVideo15ImageToVideoPipeline(
        **parts,
        image_encoder=SiglipVisionModel(siglip).eval(),
        feature_extractor=SiglipImageProcessor(size={"height": 28, "width": 28}),
    )


def build_tiny_hunyuan15(models_dir: Path, *, seed: int = 0) -> bool:
    """Build ``tiny-hunyuan15`` under ``models_dir/tiny-hunyuan15/{t2v,i2v}`` unless it is there; offline, seeded."""
    from kinema.engine.tiny import README, _build_miniature

    def save(staging: Path) -> None:
        for task in ("t2v", "i2v"):
            tiny_hunyuan15_pipeline(seed, task).save_pretrained(staging / task, safe_serialization=True)

    readme = README.replace("tiny-wan", TINY_HUNYUAN15).replace("Wan", "HunyuanVideo 1.5")
    return _build_miniature(models_dir, TINY_HUNYUAN15, TINY_HUNYUAN15_BUILD_VERSION, seed, readme, save)


class HunyuanVideo15Backend(WanBackend):
    """Serves text- or image-to-video of one HunyuanVideo 1.5 model."""

    @staticmethod
    def _check_geometry(pipe: DiffusionPipeline, request: GenerationRequest) -> None:
        spatial = int(pipe.vae_scale_factor_spatial) * int(pipe.transformer.config.patch_size)
        temporal = int(pipe.vae_scale_factor_temporal)
        check_clip_geometry(request, spatial, temporal)
        if getattr(pipe, "image_encoder", None) is not None:
            height, width = pipe.video_processor.calculate_default_height_width(
                height=request.height, width=request.width, target_size=pipe.target_size
            )
            if (width, height) != (request.width, request.height):
                raise ValueError(
                    f"image-to-video makes {request.width}x{request.height} as {width}x{height} (its nearest "
                    f"training bucket); ask for {width}x{height}"
                )

    def _task_inputs(self, request: GenerationRequest) -> dict[str, Any]:
        if self.task == "t2v":
            return {"num_frames": request.num_frames}
        if self.task == "i2v":
            if request.image is None:
                raise ValueError("i2v needs an image (the first frame)")
            # Already the request's size (a bucket: _check_geometry), so the pipeline's own resize keeps it.
            return {"num_frames": request.num_frames, "image": fit_image(request.image, request.width, request.height)}
        raise ValueError(f"HunyuanVideo 1.5 has no {self.task} task here")

    @property
    def speed_settings(self) -> SpeedSettings:
        """No CFG batching: the guider runs the conditional and unconditional passes itself. FP8 as for Wan."""
        settings = super().speed_settings
        return SpeedSettings(cfg_batching=False, fp8=settings.fp8, weights=settings.weights)

    def _configure(self, pipe: DiffusionPipeline, request: GenerationRequest) -> None:
        """Wan's configuration (preset, VAE tiling), then the scheduler's ``shift`` for the size."""
        super()._configure(pipe, request)
        shift = self.spec.flow_shift_for(request.width, request.height)
        scheduler = pipe.scheduler
        if shift is not None and scheduler.config.get("shift") != shift:
            pipe.scheduler = type(scheduler).from_config(scheduler.config, shift=shift)

    def _call_pipeline(
        self,
        pipe: DiffusionPipeline,
        request: GenerationRequest,
        generator: torch.Generator,
        on_step_end: Callable[[DiffusionPipeline, int, Any, dict[str, Any]], dict[str, Any]],
        task_inputs: dict[str, Any],
    ) -> Any:
        """One run: the guider at the request's scale, the step callback on the scheduler's ``step``."""
        guider = pipe.guider
        if guider.guidance_scale != request.guidance_scale:
            # A copy for this pipeline; the next run with another scale replaces it again.
            pipe.guider = guider.new(guidance_scale=request.guidance_scale)
        scheduler = pipe.scheduler
        step = scheduler.step
        done = 0

        def step_and_report(*args: Any, **kwargs: Any) -> Any:
            nonlocal done
            out = step(*args, **kwargs)
            on_step_end(pipe, done, None, {})  # raises Cancelled before the next step (and the decode)
            done += 1
            return out

        # Image-to-video takes its size from the image (fitted to the request's by _task_inputs).
        size = {} if "image" in task_inputs else {"height": request.height, "width": request.width}
        scheduler.step = step_and_report  # an instance attribute, for this run only
        try:
            return pipe(
                prompt=request.prompt,
                negative_prompt=request.negative_prompt,
                num_inference_steps=request.num_inference_steps,
                generator=generator,
                output_type="pt",
                **size,
                **task_inputs,
            )
        finally:
            del scheduler.step
