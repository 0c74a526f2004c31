"""The LTX-Video backend: Lightricks' small, fast DiT through diffusers' ``LTXPipeline`` family.

Everything but the pipeline inputs is shared with the Wan backend (loading, sharing weights between tasks,
offload, speed presets, cancellation). LTX differs in its geometry (VAE 32x in space, 8x in time: 8k+1
frames), in taking the frame rate as an input (its rotary embedding is scaled by it), and in the
scheduler (flow-matching Euler with its own resolution-dependent shift, so no per-size flow shift here).

Registered in :mod:`kinema.engine.families` as family ``ltx``. Only the miniature ``tiny-ltx``
(:func:`tiny_ltx_spec`) is defined yet; a real catalogue entry is left until the checkpoint layout and
licence of a diffusers-format LTX-Video repository can be checked (docs/models.md).
"""

from __future__ import annotations

from typing import Any

from diffusers import DiffusionPipeline

from kinema.engine.base import GenerationRequest
from kinema.engine.footprint import needs_vae_tiling
from kinema.engine.frames import fit_image
from kinema.engine.registry import ComponentSource, ModelSpec, _sizes
from kinema.engine.wan import WanBackend, check_clip_geometry

TINY_LTX = "tiny-ltx"
LTX_NEGATIVE_PROMPT = "worst quality, inconsistent motion, blurry, jittery, distorted"
"""The negative prompt of LTX-Video's own examples."""


def tiny_ltx_spec() -> ModelSpec:
    """The LTX miniature: random weights, text- and image-to-video from one directory, built offline."""
    return ModelSpec(
        name=TINY_LTX,
        family="ltx",
        description="Miniature LTX-Video with random weights, built locally; makes no meaningful video.",
        tasks={
            "t2v": ComponentSource("LTXPipeline", subdir=f"{TINY_LTX}/t2v"),
            "i2v": ComponentSource("LTXImageToVideoPipeline", subdir=f"{TINY_LTX}/t2v"),
        },
        fps=8,
        sizes={**_sizes((256, 160)), "96x64": (96, 64), "64x96": (64, 96)},
        default_size="256x160",
        seconds={"1": 9, "2": 17},
        default_seconds="1",
        default_steps=4,
        default_guidance=3.0,
        miniature=True,
        default_negative_prompt=LTX_NEGATIVE_PROMPT,
    )


class LTXBackend(WanBackend):
    """Serves one task of one LTX-Video model."""

    @staticmethod
    def _check_geometry(pipe: DiffusionPipeline, request: GenerationRequest) -> None:
        spatial = int(pipe.vae_spatial_compression_ratio)
        temporal = int(pipe.vae_temporal_compression_ratio)
        check_clip_geometry(request, spatial, temporal)

    def _task_inputs(self, request: GenerationRequest) -> dict[str, Any]:
        inputs: dict[str, Any] = {"num_frames": request.num_frames, "frame_rate": request.fps}
        if self.task == "t2v":
            return inputs
        if self.task == "i2v":
            if request.image is None:
                raise ValueError("i2v needs an image (the first frame)")
            return {**inputs, "image": fit_image(request.image, request.width, request.height)}
        raise ValueError(f"LTX has no {self.task} task here")

    def _negative_inputs(self, pipe: DiffusionPipeline, request: GenerationRequest) -> dict[str, Any]:
        # LTX needs an attention mask with precomputed embeddings; the default negative prompt goes in as text.
        if request.negative_prompt is None and self.spec.default_negative_prompt and request.guidance_scale > 1.0:
            return {"negative_prompt": self.spec.default_negative_prompt}
        return {"negative_prompt": request.negative_prompt}

    @staticmethod
    def set_vae_tiling(pipe: DiffusionPipeline, request: GenerationRequest, free_bytes: int) -> bool:
        """As for Wan, with the LTX decoder's widest full-resolution stage as the channel count."""
        channels = int(min(pipe.vae.config.decoder_block_out_channels))
        tile = needs_vae_tiling(channels, request.width, request.height, request.num_frames, free_bytes)
        if tile:
            pipe.vae.enable_tiling()
        else:
            pipe.vae.disable_tiling()
        return tile
