"""GPU benchmark of Kinema's Wan backend per speed preset, against the stock diffusers pipeline, in one run.

    python bench/gpu.py [--steps 12] [--frames 81] [--sizes 832x480,1280x720] [--curve] [--skip-stock]

Needs CUDA: without it, it says so and exits with status 2 (there is nothing to measure on a CPU).

Weights: the full-size Wan 2.1 T2V 1.3B transformer and VAE with random weights, built from the real
configs (kinema.engine.architectures) and saved to a temporary folder, then loaded through Kinema's own
backend (``WanBackend``: from_pretrained with per-component dtypes, attention backend, compiled blocks,
speed presets) -- nothing is downloaded, and speed and memory do not depend on the weights' values. The
text encoder is a small stand-in of the right width (the real UMT5-XXL runs once per clip). ``turbo`` uses a
random rank-64 LoRA on every block, as lightx2v's distilled LoRAs are, at its 4 steps without guidance.

For each size and each of stock / exact / exact-1x / fast / fast-bf16 / turbo (``exact-1x``: exact with the two
guidance passes as two calls, i.e. without CFG batching; ``fast-bf16``: fast without FP8 layers) it prints:
seconds per denoising step (median of >= 10 steps after a warm-up job that also runs the VAE), effective
TFLOP/s against the FLOP model (:func:`kinema.engine.footprint.wan_transformer_flops`), peak GPU memory,
end-to-end seconds per job (text encoding, denoising, VAE decode, uint8 frames and the MP4 encode), the denoise
time projected to the model's reference 50 steps, the ratio to stock, and PSNR against stock on the same seed.
``--curve`` adds denoise time against tokens from 240p to 720p (exact preset).
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

PRESETS = ("exact", "fast", "turbo")
VARIANTS = (("exact", "exact"), ("exact-1x", "exact"), ("fast", "fast"), ("fast-bf16", "fast"), ("turbo", "turbo"))
"""(row, preset): ``exact-1x`` is exact without CFG batching, ``fast-bf16`` is fast without FP8 layers."""
CURVE_SIZES = ("416x240", "640x368", "832x480", "1024x576", "1280x720")


def _size(text: str) -> tuple[int, int]:
    w, h = text.lower().split("x")
    return int(w), int(h)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB between two uint8 clips (inf when identical)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12, help="steps per job for stock/exact/fast (>= 11)")
    parser.add_argument("--frames", type=int, default=81)
    parser.add_argument("--sizes", default="832x480,1280x720")
    parser.add_argument("--guidance", type=float, default=5.0)
    parser.add_argument("--curve", action="store_true", help="denoise time against tokens, 240p to 720p")
    parser.add_argument("--skip-stock", action="store_true", help="do not measure the stock pipeline")
    parser.add_argument("--no-compile", action="store_true", help="exact without compile_repeated_blocks")
    args = parser.parse_args(argv)

    import torch

    if not torch.cuda.is_available():
        print("bench/gpu.py needs a CUDA GPU and none is available here: nothing measured.", file=sys.stderr)
        return 2
    if args.steps < 11:
        parser.error("--steps must be at least 11 (the median is taken over >= 10 steps after the first)")

    import diffusers
    from safetensors.torch import save_file

    from kinema.engine.architectures import WAN21_T2V_1_3B_TRANSFORMER, full_size_wan21_t2v, random_wan_lora
    from kinema.engine.base import GenerationRequest
    from kinema.engine.device import dtype_keyword, select_placement
    from kinema.engine.footprint import wan_transformer_flops, wan_video_tokens
    from kinema.engine.frames import to_uint8
    from kinema.engine.registry import ComponentSource, TurboSpec, builtin_registry
    from kinema.engine.speed import fp8_mode
    from kinema.engine.wan import WanBackend
    from kinema.media.encode import encode_mp4

    cfg = WAN21_T2V_1_3B_TRANSFORMER
    dim = cfg["num_attention_heads"] * cfg["attention_head_dim"]
    placement = select_placement("cuda")
    print(f"device: {torch.cuda.get_device_name()}; torch {torch.__version__}, diffusers {diffusers.__version__}")

    tmp = Path(tempfile.mkdtemp(prefix="kinema-gpu-bench-"))
    weights = tmp / "wan21-t2v-1.3b-random"
    full_size_wan21_t2v("cuda", torch.bfloat16).save_pretrained(weights)
    lora = tmp / "turbo" / "pytorch_lora_weights.safetensors"
    lora.parent.mkdir()
    save_file(random_wan_lora(cfg["num_layers"], dim, rank=64, std=0.01), str(lora))
    torch.cuda.empty_cache()

    spec = builtin_registry().resolve("wan2.1-t2v-1.3b")
    turbo = TurboSpec(lora=ComponentSource("lora", subdir="turbo", weight_name=lora.name))
    spec = dataclasses.replace(spec, turbo=turbo)

    def flops_per_step(width: int, height: int, frames: int, guidance: float) -> float:
        tokens = wan_video_tokens(width, height, frames)
        passes = 2 if guidance > 1 else 1
        return passes * wan_transformer_flops(tokens, dim=dim, ffn_dim=cfg["ffn_dim"], layers=cfg["num_layers"])

    def timed_job(run: Any, steps: int) -> tuple[list[float], float, np.ndarray]:
        """(step durations, end-to-end seconds, frames) of one job; ``run(progress)`` does the job."""
        marks: list[float] = []

        def progress(done: int, total: int) -> None:
            torch.cuda.synchronize()
            marks.append(time.perf_counter())

        torch.cuda.synchronize()
        started = time.perf_counter()
        frames = run(progress)
        encode_mp4(frames, spec.fps)  # the media chain's biggest part, serially after the model as today
        torch.cuda.synchronize()
        end_to_end = time.perf_counter() - started
        steps_s = [b - a for a, b in zip(marks, marks[1:], strict=False)]  # the first step includes encoding
        return steps_s, end_to_end, frames

    def measure(name: str, run: Any, steps: int, width: int, height: int, guidance: float) -> dict[str, Any]:
        run(lambda d, t: None)  # warm-up: kernels, compilation, allocator, and the VAE decode
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        samples: list[float] = []
        ends: list[float] = []
        frames = np.zeros(0)
        while len(samples) < 10:
            step_times, e2e, frames = timed_job(run, steps)
            samples += step_times
            ends.append(e2e)
        per_step = statistics.median(samples)
        return {
            "name": name,
            "s_step": per_step,
            "tflops": flops_per_step(width, height, args.frames, guidance) / per_step / 1e12,
            "peak_gib": torch.cuda.max_memory_allocated() / 2**30,
            "e2e": statistics.median(ends),
            "denoise": per_step * steps,
            "steps": steps,
            "frames": frames,
        }

    def stock_runner(width: int, height: int) -> tuple[Any, Any]:
        pipe = diffusers.WanPipeline.from_pretrained(weights, **{dtype_keyword(): placement.component_dtypes()})
        pipe.to("cuda")
        pipe.set_progress_bar_config(disable=True)

        def run(progress: Any) -> np.ndarray:
            def on_step_end(p: Any, step: int, t: Any, tensors: dict[str, Any]) -> dict[str, Any]:
                progress(step + 1, args.steps)
                return {}

            out = pipe(
                prompt="a cat walking on the beach at sunset",
                negative_prompt=spec.default_negative_prompt,
                width=width,
                height=height,
                num_frames=args.frames,
                num_inference_steps=args.steps,
                guidance_scale=args.guidance,
                generator=torch.Generator("cpu").manual_seed(0),
                output_type="np",
                callback_on_step_end=on_step_end,
                callback_on_step_end_tensor_inputs=[],
            )
            return to_uint8(out.frames[0])

        return run, pipe

    backend = WanBackend(spec, "t2v", weights, placement, compile_blocks=not args.no_compile, turbo_lora=lora)
    backend.load()
    # The same weights without CFG batching and FP8, to measure what each lever buys (the 1.3B fits twice).
    plain = WanBackend(
        spec, "t2v", weights, placement, compile_blocks=not args.no_compile, cfg_batching=False, fp8=False
    )
    plain.load()
    print(f"kinema backend levers: {backend.levers}, {backend.speed_settings} (fp8 mode {fp8_mode(placement.device)})")

    def kinema_runner(width: int, height: int, speed: str, on: Any = backend) -> tuple[Any, int, float]:
        steps = turbo.steps if speed == "turbo" else args.steps
        guidance = turbo.guidance if speed == "turbo" else args.guidance
        request = GenerationRequest(
            task="t2v",
            prompt="a cat walking on the beach at sunset",
            width=width,
            height=height,
            num_frames=args.frames,
            fps=spec.fps,
            num_inference_steps=steps,
            guidance_scale=guidance,
            seed=0,
            speed=speed,  # type: ignore[arg-type]
        )
        return (lambda progress: on.generate(request, progress, lambda: False).frames), steps, guidance

    print(
        f"model: Wan2.1 T2V 1.3B architecture, random weights (bf16 transformer, fp32 VAE); {args.frames} frames; "
        f"stock/exact/fast {args.steps} steps at guidance {args.guidance}, turbo {turbo.steps} steps at 1.0"
    )
    failures: list[str] = []
    for size in args.sizes.split(","):
        width, height = _size(size)
        tokens = wan_video_tokens(width, height, args.frames)
        print(f"\n== {width}x{height} x {args.frames} frames: {tokens} tokens ==")
        results = []
        if not args.skip_stock:
            run, pipe = stock_runner(width, height)
            results.append(measure("stock", run, args.steps, width, height, args.guidance))
            del pipe, run
            torch.cuda.empty_cache()
        for row, speed in VARIANTS:
            run, steps, guidance = kinema_runner(width, height, speed, plain if "-" in row else backend)
            try:
                results.append(measure(row, run, steps, width, height, guidance))
            except Exception as exc:  # one preset failing (a kernel, a hook) must not hide the others' figures
                failures.append(f"{row} at {size}: {type(exc).__name__}: {exc}")
                print(f"{row}: FAILED: {type(exc).__name__}: {exc}")
        stock = results[0] if not args.skip_stock else None
        header = f"{'preset':9} {'s/step':>7} {'TFLOP/s':>8} {'peak GiB':>9} {'e2e s':>7} {'e2e/den':>8}"
        print(header + f" {'50-step den s':>14} {'x stock':>8} {'PSNR dB':>8}")
        for r in results:
            ratio = stock["s_step"] / r["s_step"] if stock else float("nan")
            quality = psnr(r["frames"], stock["frames"]) if stock else float("nan")
            if r["name"] == "turbo":
                quality = float("nan")  # another model (distilled, random LoRA): PSNR says nothing
            print(
                f"{r['name']:9} {r['s_step']:7.3f} {r['tflops']:8.1f} {r['peak_gib']:9.2f} {r['e2e']:7.2f} "
                f"{r['e2e'] / r['denoise']:8.2f} {r['s_step'] * (r['steps'] if r['name'] == 'turbo' else 50):14.1f} "
                f"{ratio:8.2f} {quality:8.1f}"
            )
        print("(turbo's '50-step' column is its own 4 steps; e2e includes the MP4 encode)")

    if args.curve:
        print("\n== cost curve, exact preset: denoise time against tokens ==")
        print(f"{'size':10} {'tokens':>7} {'s/step':>7} {'TFLOP/s':>8}")
        for size in CURVE_SIZES:
            width, height = _size(size)
            run, steps, guidance = kinema_runner(width, height, "exact")
            r = measure("exact", run, steps, width, height, guidance)
            print(f"{size:10} {wan_video_tokens(width, height, args.frames):7d} {r['s_step']:7.3f} {r['tflops']:8.1f}")
    backend.unload()
    plain.unload()
    if failures:
        print("\nfailed: " + "; ".join(failures), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
