"""Benchmark the full-size Wan 2.1 T2V 1.3B denoiser and VAE on a CUDA GPU, with random weights.

    python bench/gpu_wan.py [--steps 4] [--width 832 --height 480 --frames 81] [--guidance 5.0]

The transformer and VAE are built from the real model's configs (kinema.engine.architectures) with random
weights, so nothing is downloaded; speed and memory do not depend on the weights' values. The text
encoder is a small stand-in of the right width: the real UMT5-XXL runs once per clip and is not what is
measured here. Prints seconds per denoising step, VAE decode time and peak GPU memory. Without CUDA it
says so and exits 0.
"""

from __future__ import annotations

import argparse
import sys
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--width", type=int, default=832)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--frames", type=int, default=81)
    parser.add_argument("--guidance", type=float, default=5.0, help="> 1 runs classifier-free guidance (2 passes)")
    parser.add_argument("--no-tiling", action="store_true", help="decode the VAE in one piece")
    args = parser.parse_args(argv)

    import torch

    if not torch.cuda.is_available():
        print("bench/gpu_wan.py needs a CUDA GPU; none is available here, so there is nothing to measure.")
        return 0

    import diffusers

    from kinema.engine.architectures import WAN21_T2V_1_3B_TRANSFORMER, full_size_wan21_t2v

    device = torch.cuda.get_device_name()
    print(f"device: {device}; torch {torch.__version__}, diffusers {diffusers.__version__}")
    print(
        "model: Wan2.1 T2V 1.3B architecture with random weights (transformer bf16, VAE fp32"
        f"{'' if args.no_tiling else ', tiled decode'}); text encoder: a small UMT5 stand-in of width "
        f"{WAN21_T2V_1_3B_TRANSFORMER['text_dim']} -- it runs once per clip and is not what is measured"
    )
    started = time.perf_counter()
    pipe = full_size_wan21_t2v("cuda", torch.bfloat16)
    if not args.no_tiling:
        pipe.vae.enable_tiling()
    pipe.set_progress_bar_config(disable=True)
    torch.cuda.synchronize()
    print(f"built in {time.perf_counter() - started:.1f} s")

    def run(steps: int, output_type: str, marks: list[float] | None = None) -> None:
        def on_step_end(p: object, step: int, timestep: object, tensors: dict) -> dict:
            if marks is not None:
                torch.cuda.synchronize()
                marks.append(time.perf_counter())
            return {}

        pipe(
            prompt="a cat walking on the beach at sunset",
            width=args.width,
            height=args.height,
            num_frames=args.frames,
            num_inference_steps=steps,
            guidance_scale=args.guidance,
            generator=torch.Generator("cpu").manual_seed(0),
            output_type=output_type,
            callback_on_step_end=on_step_end,
            callback_on_step_end_tensor_inputs=[],
        )

    # Warm-up: kernel selection and allocator growth happen on the first step, not in steady state.
    run(1, "latent")
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()

    marks: list[float] = []
    started = time.perf_counter()
    run(args.steps, "np", marks)
    torch.cuda.synchronize()
    finished = time.perf_counter()

    step_times = [b - a for a, b in zip([started, *marks[:-1]], marks, strict=True)]
    per_step = sum(step_times[1:]) / max(1, len(step_times) - 1) if len(step_times) > 1 else step_times[0]
    passes = 2 if args.guidance > 1 else 1
    tokens = ((args.frames - 1) // 4 + 1) * (args.height // 16) * (args.width // 16)
    print(
        f"clip: {args.width}x{args.height}, {args.frames} frames ({tokens} tokens), {args.steps} steps, "
        f"{passes} transformer pass(es) per step"
    )
    print(f"s/step: {per_step:.3f}  (each step: {', '.join(f'{t:.3f}' for t in step_times)})")
    print(f"text encoding + first step: {step_times[0]:.3f} s; VAE decode + postprocess: {finished - marks[-1]:.2f} s")
    print(f"total: {finished - started:.2f} s")
    peak = torch.cuda.max_memory_allocated() / 2**30
    print(f"peak GPU memory (torch.cuda.max_memory_allocated): {peak:.2f} GiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
