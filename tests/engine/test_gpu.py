"""The full-size Wan 2.1 T2V 1.3B architecture (random weights, nothing downloaded) on a CUDA GPU."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.gpu


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_full_size_wan21_t2v_at_832x480_81_frames(tmp_path: Path) -> None:
    from kinema.engine.architectures import full_size_wan21_t2v
    from kinema.engine.base import GenerationRequest
    from kinema.engine.device import select_placement
    from kinema.engine.registry import builtin_registry
    from kinema.engine.wan import WanBackend

    # Saved and loaded back, so the backend's real path runs: from_pretrained with per-component dtypes.
    weights = tmp_path / "wan21-t2v-1.3b-random"
    full_size_wan21_t2v("cuda", torch.bfloat16).save_pretrained(weights)
    torch.cuda.empty_cache()

    spec = builtin_registry().resolve("wan2.1-t2v-1.3b")
    backend = WanBackend(spec, "t2v", weights, select_placement("cuda"))
    backend.load()
    pipe = backend.pipeline
    assert pipe.transformer.dtype == torch.bfloat16
    assert pipe.vae.dtype == torch.float32
    assert sum(p.numel() for p in pipe.transformer.parameters()) == pytest.approx(1.42e9, rel=0.05)

    steps: list[tuple[int, int]] = []
    request = GenerationRequest(
        task="t2v",
        prompt="a cat walking on the beach at sunset",
        width=832,
        height=480,
        num_frames=81,
        fps=spec.fps,
        num_inference_steps=3,
        guidance_scale=5.0,
        seed=0,
    )
    torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    result = backend.generate(request, lambda done, total: steps.append((done, total)), lambda: False)
    elapsed = time.perf_counter() - started
    peak = torch.cuda.max_memory_allocated() / 2**30
    print(f"\nfull-size Wan2.1 T2V 1.3B, 832x480x81, 3 steps with CFG: {elapsed:.1f} s, peak {peak:.1f} GiB")

    assert result.frames.shape == (81, 480, 832, 3)
    assert result.frames.dtype == np.uint8
    assert steps == [(1, 3), (2, 3), (3, 3)]
    # With tens of GB free the decode runs untiled (tiling is only for when memory needs it).
    assert not pipe.vae.use_tiling
    assert peak < 40  # bf16 weights and an fp32 VAE decode leave most of an 80 GB card free
    backend.unload()
