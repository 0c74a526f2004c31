"""Quality of the speed levers on the CPU, with the tiny-wan miniature: PSNR of each against ``exact``.

    python bench/speed_quality.py [--steps 20] [--size 256x160] [--frames 17] [--seeds 0,1,2]

Runs the same request and seed through Kinema's Wan backend with: CFG batching (``exact``'s lossless lever),
First Block Cache alone, FP8 linear layers alone (torchao, weight-only float8 on the CPU), and both (the
``fast`` preset), and prints PSNR against ``exact`` without levers, the largest pixel difference, and the
transformer calls each made (a cached step still calls the transformer: the cache skips blocks inside it).
The miniature has random weights, so the figures say how much each lever perturbs a Wan pipeline's
arithmetic, not how a real checkpoint's video looks; ``bench/gpu.py`` measures the same against the stock
pipeline at full size on a GPU. Nothing is downloaded: the miniature is built offline.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB between two uint8 clips (inf when identical)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--size", default="256x160")
    parser.add_argument("--frames", type=int, default=17)
    parser.add_argument("--guidance", type=float, default=5.0)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--models-dir", type=Path, default=None, help="where tiny-wan is (built if missing)")
    args = parser.parse_args(argv)

    import torch

    from kinema.engine.base import GenerationRequest
    from kinema.engine.device import select_placement
    from kinema.engine.registry import TINY_WAN, builtin_registry
    from kinema.engine.speed import fp8_layers, fp8_mode, quantize_fp8
    from kinema.engine.tiny import build_tiny_models
    from kinema.engine.wan import WanBackend

    torch.set_num_threads(1)
    models_dir = args.models_dir or Path(tempfile.mkdtemp(prefix="kinema-speed-quality-"))
    build_tiny_models(models_dir)
    spec = builtin_registry().resolve(TINY_WAN)
    placement = select_placement("cpu")
    path = models_dir / TINY_WAN / "t2v"
    mode = fp8_mode(placement.device)
    if mode is None:
        print("torchao is not installed: FP8 rows are skipped", file=sys.stderr)
    width, height = (int(v) for v in args.size.lower().split("x"))

    def backend(**levers: Any) -> WanBackend:
        b = WanBackend(spec, "t2v", path, placement, **levers)
        b.load()
        return b

    plain = backend(cfg_batching=False, fp8=False)
    batched = backend(cfg_batching=True, fp8=False)
    fp8_fast = backend(cfg_batching=False, fp8=True)
    fp8_only = backend(cfg_batching=False, fp8=False)
    if mode is not None:
        quantize_fp8(fp8_only.pipeline.transformer, mode)  # FP8 without the cache, under the exact preset
    rows: list[tuple[str, WanBackend | None, str]] = [
        ("exact, CFG batched", batched, "exact"),
        ("first-block cache", plain, "fast"),
        ("FP8 linear layers", fp8_only if mode else None, "exact"),
        ("fast (cache + FP8)", fp8_fast if mode else None, "fast"),
    ]
    print(
        f"tiny-wan t2v {width}x{height} x {args.frames} frames, {args.steps} steps, guidance {args.guidance}; "
        f"FP8 mode {mode}; {len(fp8_layers(fp8_only.pipeline.transformer))} linear layers in float8"
    )
    print(f"{'lever':22} {'seed':>4} {'PSNR dB':>8} {'max|diff|':>9} {'calls':>9}")
    for seed in (int(s) for s in args.seeds.split(",")):

        def run(b: WanBackend, speed: str, seed: int = seed) -> tuple[np.ndarray, int]:
            calls: list[int] = []
            handle = b.pipeline.transformer.proj_out.register_forward_hook(lambda *_: calls.append(1))
            request = GenerationRequest(
                task="t2v",
                prompt="a red cat walking on the beach at sunset",
                negative_prompt="blurry",
                width=width,
                height=height,
                num_frames=args.frames,
                fps=spec.fps,
                num_inference_steps=args.steps,
                guidance_scale=args.guidance,
                seed=seed,
                speed=speed,
            )
            try:
                frames = b.generate(request, lambda d, t: None, lambda: False).frames
            finally:
                handle.remove()
            return frames, len(calls)

        reference, forwards = run(plain, "exact")
        print(f"{'exact (reference)':22} {seed:4d} {'inf':>8} {0:9d} {forwards:9d}")
        for name, b, speed in rows:
            if b is None:
                continue
            frames, forwards = run(b, speed)
            diff = int(np.abs(frames.astype(np.int16) - reference.astype(np.int16)).max())
            print(f"{name:22} {seed:4d} {psnr(frames, reference):8.1f} {diff:9d} {forwards:9d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
