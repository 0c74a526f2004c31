"""Wan architectures as configs written in code, for building randomly initialised models offline.

Two sizes: miniatures (a few hundred thousand parameters, for tests on a CPU) and the full-size
Wan 2.1 T2V 1.3B transformer and VAE (for GPU tests and benchmarks, where the cost of the real
architecture is what is being measured). Full-size configs are those of Wan-AI/Wan2.1-T2V-1.3B-Diffusers.
"""

from __future__ import annotations

from typing import Any

import torch
from diffusers import (
    AutoencoderKLWan,
    UniPCMultistepScheduler,
    WanImageToVideoPipeline,
    WanPipeline,
    WanTransformer3DModel,
    WanVACEPipeline,
    WanVACETransformer3DModel,
)
from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel, UMT5Config, UMT5EncoderModel

from kinema.engine.tiny_tokenizer import build_tiny_tokenizer, tiny_vocabulary

# --- full size: Wan 2.1 T2V 1.3B -------------------------------------------------------------------------

WAN21_T2V_1_3B_TRANSFORMER: dict[str, Any] = {
    "patch_size": (1, 2, 2),
    "num_attention_heads": 12,
    "attention_head_dim": 128,
    "in_channels": 16,
    "out_channels": 16,
    "text_dim": 4096,
    "freq_dim": 256,
    "ffn_dim": 8960,
    "num_layers": 30,
    "cross_attn_norm": True,
    "qk_norm": "rms_norm_across_heads",
    "eps": 1e-6,
    "rope_max_seq_len": 1024,
}

WAN21_VAE: dict[str, Any] = {
    "base_dim": 96,
    "z_dim": 16,
    "dim_mult": [1, 2, 4, 4],
    "num_res_blocks": 2,
    "attn_scales": [],
    "temperal_downsample": [False, True, True],
}

# Wan ships UniPC in flow-matching mode; flow_shift 3.0 is its 480p setting.
WAN_SCHEDULER: dict[str, Any] = {
    "prediction_type": "flow_prediction",
    "use_flow_sigmas": True,
    "flow_shift": 3.0,
    "num_train_timesteps": 1000,
}

# --- miniatures --------------------------------------------------------------------------------------------

TINY_TEXT_DIM = 32
_TINY_HEADS, _TINY_HEAD_DIM = 2, 12
TINY_INNER_DIM = _TINY_HEADS * _TINY_HEAD_DIM

TINY_TRANSFORMER: dict[str, Any] = {
    "patch_size": (1, 2, 2),
    "num_attention_heads": _TINY_HEADS,
    "attention_head_dim": _TINY_HEAD_DIM,
    "in_channels": 16,
    "out_channels": 16,
    "text_dim": TINY_TEXT_DIM,
    "freq_dim": 256,
    "ffn_dim": 32,
    "num_layers": 2,
    "cross_attn_norm": True,
    "qk_norm": "rms_norm_across_heads",
    "eps": 1e-6,
    "rope_max_seq_len": 32,
}

# Wan 2.1 I2V: the noisy latents (16) are concatenated with a first-frame mask (4) and the encoded
# condition video (16); CLIP image features enter the cross-attention through their own key/value
# projections, as in the 14B model (added_kv_proj_dim = the transformer width).
TINY_IMAGE_DIM = 16
TINY_I2V_TRANSFORMER: dict[str, Any] = {
    **TINY_TRANSFORMER,
    "in_channels": 36,
    "image_dim": TINY_IMAGE_DIM,
    "added_kv_proj_dim": TINY_INNER_DIM,
}

# VACE's control input is the VAE latents of the inactive and reactive video (2 x 16 channels) plus the
# mask folded into 8x8 = 64 channels: 96, as in the real model.
TINY_VACE_TRANSFORMER: dict[str, Any] = {**TINY_TRANSFORMER, "vace_layers": [0, 1], "vace_in_channels": 96}

TINY_VAE: dict[str, Any] = {
    "base_dim": 3,
    "z_dim": 16,
    "dim_mult": [1, 1, 1, 1],
    "num_res_blocks": 1,
    "temperal_downsample": [False, True, True],
}

TINY_TEXT_ENCODER: dict[str, Any] = {
    "d_model": TINY_TEXT_DIM,
    "d_kv": 8,
    "d_ff": 64,
    "num_layers": 2,
    "num_heads": 4,
    "relative_attention_num_buckets": 8,
    "relative_attention_max_distance": 32,
}

TINY_IMAGE_ENCODER: dict[str, Any] = {
    "hidden_size": TINY_IMAGE_DIM,
    "intermediate_size": 32,
    "projection_dim": TINY_IMAGE_DIM,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "image_size": 32,
    "patch_size": 8,
}


# Wan 2.2 TI2V: a VAE that patchifies 2x2 before encoding (12 channels in) and compresses 16x spatially
# into 48 latent channels, and a transformer over those 48 channels; image-to-video runs with
# expand_timesteps (per-token timesteps, the first frame's held at 0) and no image encoder.
TINY_TI2V_VAE: dict[str, Any] = {
    "base_dim": 4,
    "decoder_base_dim": 4,
    "z_dim": 48,
    "dim_mult": [1, 1, 1, 1],
    "num_res_blocks": 1,
    "temperal_downsample": [False, True, True],
    "is_residual": True,
    "patch_size": 2,
    "in_channels": 12,
    "out_channels": 12,
    "scale_factor_spatial": 16,
    "scale_factor_temporal": 4,
    "latents_mean": [0.0] * 48,
    "latents_std": [1.0] * 48,
}
TINY_TI2V_TRANSFORMER: dict[str, Any] = {**TINY_TRANSFORMER, "in_channels": 48, "out_channels": 48}


def wan_scheduler() -> UniPCMultistepScheduler:
    """The scheduler Wan ships with."""
    return UniPCMultistepScheduler(**WAN_SCHEDULER)


def small_text_encoder(d_model: int, **overrides: Any) -> UMT5EncoderModel:
    """A UMT5 encoder with the tiny tokenizer's vocabulary and hidden size ``d_model``.

    At full size the text encoder (UMT5-XXL, 5.7B parameters) runs once per clip and is not what a
    benchmark of the denoiser measures, so even the full-size builds use a small one of the right width.
    """
    config = {**TINY_TEXT_ENCODER, "d_model": d_model, **overrides}
    return UMT5EncoderModel(UMT5Config(vocab_size=len(tiny_vocabulary()), **config))


def tiny_pipelines(seed: int = 0) -> dict[str, Any]:
    """Random miniature pipelines, "t2v" (WanPipeline), "i2v" and "vace", sharing text encoder and VAE.

    Deterministic for a given seed: every module is created right after reseeding, in a fixed order.
    """

    def seeded(offset: int) -> None:
        torch.manual_seed(seed + offset)

    tokenizer = build_tiny_tokenizer()
    seeded(0)
    text_encoder = small_text_encoder(TINY_TEXT_DIM).eval()
    seeded(1)
    vae = AutoencoderKLWan(**TINY_VAE).eval()
    seeded(2)
    transformer = WanTransformer3DModel(**TINY_TRANSFORMER).eval()
    seeded(3)
    i2v_transformer = WanTransformer3DModel(**TINY_I2V_TRANSFORMER).eval()
    seeded(4)
    image_encoder = CLIPVisionModel(CLIPVisionConfig(**TINY_IMAGE_ENCODER)).eval()
    size = TINY_IMAGE_ENCODER["image_size"]
    image_processor = CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
    seeded(5)
    vace_transformer = WanVACETransformer3DModel(**TINY_VACE_TRANSFORMER).eval()

    shared = {"tokenizer": tokenizer, "text_encoder": text_encoder, "vae": vae}
    return {
        "t2v": WanPipeline(**shared, scheduler=wan_scheduler(), transformer=transformer),
        "i2v": WanImageToVideoPipeline(
            **shared,
            scheduler=wan_scheduler(),
            image_encoder=image_encoder,
            image_processor=image_processor,
            transformer=i2v_transformer,
        ),
        "vace": WanVACEPipeline(**shared, scheduler=wan_scheduler(), transformer=vace_transformer),
    }


TINY_LORA_RANK = 4
_LORA_TARGETS = ("attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0", "attn2.to_q", "attn2.to_v")


def random_wan_lora(layers: int, inner_dim: int, rank: int, seed: int = 0, std: float = 0.3) -> dict[str, torch.Tensor]:
    """A random LoRA for a Wan transformer, in diffusers' key format, standing in for a step-distilled one.

    It targets the attention projections of every block, as lightx2v's distilled LoRAs do; its up-projections
    are non-zero (a freshly initialised LoRA's are zero), so loading it visibly changes what the model makes.
    """
    generator = torch.Generator().manual_seed(seed + 100)
    lora: dict[str, torch.Tensor] = {}
    for block in range(layers):
        for target in _LORA_TARGETS:
            prefix = f"transformer.blocks.{block}.{target}"
            lora[f"{prefix}.lora_A.weight"] = torch.randn(rank, inner_dim, generator=generator) * std
            lora[f"{prefix}.lora_B.weight"] = torch.randn(inner_dim, rank, generator=generator) * std
    return lora


def tiny_turbo_lora(seed: int = 0) -> dict[str, torch.Tensor]:
    """The miniature's stand-in for a step-distilled LoRA (rank 4, every block of the tiny transformers)."""
    return random_wan_lora(TINY_TRANSFORMER["num_layers"], TINY_INNER_DIM, TINY_LORA_RANK, seed)


def tiny_ti2v_pipeline(seed: int = 0) -> WanPipeline:
    """A random miniature shaped like Wan 2.2 TI2V 5B (one set of weights for t2v and i2v)."""
    torch.manual_seed(seed)
    text_encoder = small_text_encoder(TINY_TEXT_DIM).eval()
    vae = AutoencoderKLWan(**TINY_TI2V_VAE).eval()
    transformer = WanTransformer3DModel(**TINY_TI2V_TRANSFORMER).eval()
    return WanPipeline(
        tokenizer=build_tiny_tokenizer(),
        text_encoder=text_encoder,
        vae=vae,
        scheduler=wan_scheduler(),
        transformer=transformer,
        expand_timesteps=True,
    )


# Wan 2.2 A14B: two experts of the Wan 2.1 14B shape, one for the high-noise steps (``transformer``) and one
# for the low-noise steps (``transformer_2``); the pipeline switches at timestep ``boundary_ratio * 1000``.
# Boundaries are those of the reference configs (Wan-AI/Wan2.2 wan/configs/t2v_A14B.py and i2v_A14B.py). The
# image-to-video experts take the first frame through the latents only (36 channels in) and have no image
# cross-attention: the pipeline has no CLIP image encoder. The VAE is Wan 2.1's.
WAN22_T2V_A14B_BOUNDARY = 0.875
WAN22_I2V_A14B_BOUNDARY = 0.9
TINY_A14B_I2V_TRANSFORMER: dict[str, Any] = {**TINY_TRANSFORMER, "in_channels": 36}


def tiny_a14b_pipelines(seed: int = 0) -> dict[str, Any]:
    """Random miniatures shaped like Wan 2.2 T2V-A14B ("t2v") and I2V-A14B ("i2v"), sharing text encoder and VAE.

    Each pipeline has two differently initialised experts, so which one ran shows in the output; deterministic
    for a given seed.
    """
    torch.manual_seed(seed)
    shared = {
        "tokenizer": build_tiny_tokenizer(),
        "text_encoder": small_text_encoder(TINY_TEXT_DIM).eval(),
        "vae": AutoencoderKLWan(**TINY_VAE).eval(),
    }
    t2v_experts = [WanTransformer3DModel(**TINY_TRANSFORMER).eval() for _ in range(2)]
    i2v_experts = [WanTransformer3DModel(**TINY_A14B_I2V_TRANSFORMER).eval() for _ in range(2)]
    return {
        "t2v": WanPipeline(
            **shared,
            scheduler=wan_scheduler(),
            transformer=t2v_experts[0],
            transformer_2=t2v_experts[1],
            boundary_ratio=WAN22_T2V_A14B_BOUNDARY,
        ),
        "i2v": WanImageToVideoPipeline(
            **shared,
            scheduler=wan_scheduler(),
            transformer=i2v_experts[0],
            transformer_2=i2v_experts[1],
            boundary_ratio=WAN22_I2V_A14B_BOUNDARY,
        ),
    }


def cast_like_from_pretrained(model: torch.nn.Module, dtype: torch.dtype) -> torch.nn.Module:
    """Cast ``model``'s floating-point weights to ``dtype`` except those its class keeps in float32.

    That is what ``from_pretrained(..., dtype=...)`` does: the Wan transformer's time embedding, norms,
    rotary tables and modulation table stay in float32. A plain ``.to(bfloat16)`` would cast those too
    (diffusers warns about it), and benchmarks should run what loading gives.
    """
    keep = tuple(getattr(model, "_keep_in_fp32_modules", None) or ())
    for name, tensor in (*model.named_parameters(), *model.named_buffers()):
        if tensor.is_floating_point() and not any(pattern in name for pattern in keep):
            tensor.data = tensor.data.to(dtype)
    return model


def full_size_wan21_t2v(
    device: str | torch.device = "cuda", dtype: torch.dtype = torch.bfloat16, seed: int = 0
) -> WanPipeline:
    """Wan 2.1 T2V 1.3B at full size with random weights (transformer in ``dtype`` as loading would cast it,
    VAE in float32).

    Modules are created directly on ``device`` (initialising 1.3B parameters on a CPU takes far longer).
    The text encoder is a small stand-in of the right width; see :func:`small_text_encoder`.
    """
    torch.manual_seed(seed)
    with torch.device(device):
        transformer = cast_like_from_pretrained(WanTransformer3DModel(**WAN21_T2V_1_3B_TRANSFORMER), dtype).eval()
        vae = AutoencoderKLWan(**WAN21_VAE).eval()  # float32, as created
        text_encoder = (
            small_text_encoder(WAN21_T2V_1_3B_TRANSFORMER["text_dim"], d_kv=64, num_heads=2, num_layers=1, d_ff=256)
            .to(dtype)
            .eval()
        )
    return WanPipeline(
        tokenizer=build_tiny_tokenizer(),
        text_encoder=text_encoder,
        vae=vae,
        scheduler=wan_scheduler(),
        transformer=transformer,
    )


# --- LTX-Video miniature -----------------------------------------------------------------------------------

# Same compression as the real LTX-Video VAE: patchify 4x4, then three 2x space-time downsamplings, so 32x in
# space and 8x in time (clips of 8k+1 frames), into 8 latent channels (the real one has 128).
TINY_LTX_VAE: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 8,
    "block_out_channels": (8, 8, 8, 8),
    "decoder_block_out_channels": (8, 8, 8, 8),
    "layers_per_block": (1, 1, 1, 1, 1),
    "decoder_layers_per_block": (1, 1, 1, 1, 1),
    "spatio_temporal_scaling": (True, True, True, False),
    "decoder_spatio_temporal_scaling": (True, True, True, False),
    "decoder_inject_noise": (False, False, False, False, False),
    "upsample_residual": (False, False, False, False),
    "upsample_factor": (1, 1, 1, 1),
    "timestep_conditioning": False,
    "patch_size": 4,
    "patch_size_t": 1,
    "encoder_causal": True,
    "decoder_causal": False,
}
TINY_LTX_TRANSFORMER: dict[str, Any] = {
    "in_channels": 8,
    "out_channels": 8,
    "patch_size": 1,
    "patch_size_t": 1,
    "num_attention_heads": 2,
    "attention_head_dim": 8,
    "cross_attention_dim": 16,
    "num_layers": 2,  # First Block Cache (the fast preset) needs a first and a last block
    "caption_channels": TINY_TEXT_DIM,
}


def tiny_ltx_pipeline(seed: int = 0) -> Any:
    """A random miniature LTX-Video pipeline (T5 text encoder, LTX transformer and VAE), deterministic."""
    from diffusers import (
        AutoencoderKLLTXVideo,
        FlowMatchEulerDiscreteScheduler,
        LTXPipeline,
        LTXVideoTransformer3DModel,
    )
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(seed)
    text_encoder = T5EncoderModel(
        T5Config(vocab_size=len(tiny_vocabulary()), **{**TINY_TEXT_ENCODER, "d_model": TINY_TEXT_DIM})
    ).eval()
    vae = AutoencoderKLLTXVideo(**TINY_LTX_VAE).eval()
    transformer = LTXVideoTransformer3DModel(**TINY_LTX_TRANSFORMER).eval()
    return LTXPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=build_tiny_tokenizer(),
        transformer=transformer,
    )
