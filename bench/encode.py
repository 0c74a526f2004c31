"""Benchmark the media encoders on an 81-frame 832x480 clip (Wan's default size and length).

Run: ``python bench/encode.py [--presets ultrafast,veryfast] [--repeats 5]``

Prints, from one run, the median wall time (and process CPU time) of ``encode_mp4`` per x264
preset, of ``make_thumbnail`` and of ``make_spritesheet``, and the ratio of the default
preset's encode time to the 0.5 s goal. CPU time is printed because on a shared machine the
wall time also measures the neighbours: CPU time > wall time means x264's threads ran in
parallel, CPU time ~= wall time means only one core was actually free.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

# Runnable from a checkout without installing the package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from kinema.media.encode import DEFAULT_PRESET, encode_mp4  # noqa: E402
from kinema.media.previews import make_spritesheet, make_thumbnail  # noqa: E402

GOAL_SECONDS = 0.5
FRAMES, HEIGHT, WIDTH, FPS = 81, 480, 832, 16


def realistic_clip(seed: int = 0) -> np.ndarray:
    """Moving colour gradients + a panning textured layer + light per-frame grain.

    Not a flat colour (x264 would skip nearly everything) and not pure per-pixel noise
    (incompressible, unlike real footage): detail that moves coherently, as in real video.
    """
    rng = np.random.default_rng(seed)
    coarse = rng.normal(0.0, 1.0, (HEIGHT // 4 + 40, WIDTH // 4 + 60, 3)).astype(np.float32)
    texture = np.kron(coarse, np.ones((4, 4, 1), np.float32))
    for axis in (0, 1):  # soften the 4x4 blocks into blobs
        shifted = (np.roll(texture, shift, axis) for shift in (1, 2, -1))
        texture = (texture + sum(shifted)) / 4
    texture *= 18.0
    y = np.linspace(0.0, 1.0, HEIGHT, dtype=np.float32)[:, None, None]
    x = np.linspace(0.0, 1.0, WIDTH, dtype=np.float32)[None, :, None]
    phase = np.array([0.0, 2.1, 4.2], np.float32)
    clip = np.empty((FRAMES, HEIGHT, WIDTH, 3), np.uint8)
    for t in range(FRAMES):
        progress = t / FRAMES
        frame = 128.0 + 80.0 * np.sin(2 * np.pi * (x * 1.3 + y * 0.7 + progress) + phase)
        dy, dx = int(20 * progress), int(50 * progress)
        frame = frame + texture[dy : dy + HEIGHT, dx : dx + WIDTH]
        frame += rng.normal(0.0, 2.0, (HEIGHT, WIDTH, 3)).astype(np.float32)
        clip[t] = np.clip(frame, 0, 255).astype(np.uint8)
    return clip


def measure(fn: Callable[[], bytes], repeats: int) -> tuple[float, float, int]:
    """Median wall seconds, median CPU seconds, and output size of ``repeats`` calls."""
    walls, cpus, size = [], [], 0
    fn()  # warm-up: first call pays for codec/plugin initialisation
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        size = len(fn())
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus), size


def busy_ticks() -> int | None:
    """All CPUs' non-idle time so far, in clock ticks (Linux ``/proc/stat``); None elsewhere."""
    try:
        with open("/proc/stat") as stat:
            user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, stat.readline().split()[1:9])
    except (OSError, ValueError):
        return None
    return user + nice + system + irq + softirq + steal


def others_cpu_share(busy_before: int | None, cpu_before: float, wall_before: float) -> float | None:
    """Fraction of all CPUs that *other* processes kept busy since the given marks."""
    busy_after = busy_ticks()
    if busy_before is None or busy_after is None:
        return None
    busy = (busy_after - busy_before) / os.sysconf("SC_CLK_TCK")
    ours = time.process_time() - cpu_before
    capacity = (time.perf_counter() - wall_before) * (os.cpu_count() or 1)
    return max(0.0, (busy - ours) / capacity)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default=f"{DEFAULT_PRESET},superfast,veryfast")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    presets = list(dict.fromkeys(args.presets.split(",")))

    clip = realistic_clip()
    marks = (busy_ticks(), time.process_time(), time.perf_counter())
    print(f"clip: {FRAMES} frames {WIDTH}x{HEIGHT} @ {FPS} fps; {os.cpu_count()} CPUs; median of {args.repeats}")
    results: dict[str, float] = {}
    for preset in presets:
        wall, cpu, size = measure(partial(encode_mp4, clip, FPS, preset=preset), args.repeats)
        results[preset] = wall
        marker = " (default)" if preset == DEFAULT_PRESET else ""
        print(
            f"encode_mp4 crf=20 preset={preset:<10} wall {wall:6.3f} s  cpu {cpu:6.3f} s  {size / 1e6:5.2f} MB{marker}"
        )
    wall, cpu, size = measure(lambda: make_thumbnail(clip), args.repeats)
    print(f"make_thumbnail                       wall {wall:6.3f} s  cpu {cpu:6.3f} s  {size / 1e3:5.1f} KB")
    wall, cpu, size = measure(lambda: make_spritesheet(clip), args.repeats)
    print(f"make_spritesheet                     wall {wall:6.3f} s  cpu {cpu:6.3f} s  {size / 1e3:5.1f} KB")
    share = others_cpu_share(*marks)
    if share is not None:
        # Timings on a shared box are only comparable when this is near 0.
        print(f"other processes kept {share:.0%} of the CPUs busy during the run")
    if DEFAULT_PRESET in results:
        ratio = results[DEFAULT_PRESET] / GOAL_SECONDS
        verdict = "meets" if ratio <= 1.0 else "MISSES"
        print(f"default preset {DEFAULT_PRESET}: encode / {GOAL_SECONDS} s goal = {ratio:.2f} ({verdict} it)")


if __name__ == "__main__":
    main()
