"""Service overhead per job (API + queue + media) against calling the same pipeline directly.

Run: ``python bench/overhead.py [--jobs 5]``

Builds the offline miniature models in a temporary folder, then, in one run:

1. direct: loads the ``tiny-wan`` text-to-video backend in this process and times
   ``backend.generate`` alone (the model time);
2. service: starts a real ``kinema serve`` (SQLite, one worker thread) and times each job from
   ``videos.create`` to the poll that sees ``completed`` through the official `openai` SDK;
3. encode: times ``encode_mp4`` on an 81-frame 832x480 clip.

It does this for a small clip, where the model is cheap and fixed costs show, and a larger one,
where model time dominates as it does on a real model. It prints the per-job overhead in seconds
and as a share of model time (goal: <= 5% once model time dominates), and the encode time
against its 0.5 s goal.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
warnings.filterwarnings("ignore", category=DeprecationWarning)

import openai  # noqa: E402
from tests.conftest import start_server  # noqa: E402

from kinema.engine.base import GenerationRequest  # noqa: E402
from kinema.engine.registry import builtin_registry  # noqa: E402
from kinema.engine.runtime import Engine  # noqa: E402
from kinema.engine.tiny import build_tiny_models  # noqa: E402
from kinema.media.encode import encode_mp4  # noqa: E402

CASES = {  # name: (seconds, steps)
    "small (1 s, 9 frames, 2 steps)": ("1", 2),
    "model-dominated (12 s, 97 frames, 30 steps)": ("12", 30),
}

SIZE = "96x64"  # the miniature's fast size, as in the figures recorded in docs/benchmarks.md


def direct_seconds(engine: Engine, seconds: str, steps: int, jobs: int) -> float:
    registry = engine.registry
    spec = registry.resolve("tiny-wan")
    backend = engine.backend_for(spec, "t2v")
    w, h = registry.native_size(spec, SIZE)
    request = GenerationRequest(
        task="t2v",
        prompt="a kite",
        width=w,
        height=h,
        num_frames=registry.num_frames(spec, seconds),
        fps=spec.fps,
        num_inference_steps=steps,
        guidance_scale=spec.default_guidance,
        seed=1,
    )
    backend.generate(request, lambda d, t: None, lambda: False)  # warm-up
    times = []
    for _ in range(jobs):
        t0 = time.perf_counter()
        backend.generate(request, lambda d, t: None, lambda: False)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def service_seconds(client: openai.OpenAI, seconds: str, steps: int, jobs: int) -> float:
    client.videos.create_and_poll(
        prompt="warm-up", seconds=seconds, size=SIZE, extra_body={"num_inference_steps": steps, "seed": 1}
    )
    times = []
    for _ in range(jobs):
        t0 = time.perf_counter()
        video = client.videos.create_and_poll(
            prompt="a kite", seconds=seconds, size=SIZE, extra_body={"num_inference_steps": steps, "seed": 1}
        )
        times.append(time.perf_counter() - t0)
        assert video.status == "completed", video.error
    return statistics.median(times)


def worker_split(log: str, per_case: int) -> list[tuple[float, float]]:
    """(model, non-model) medians per case from the worker's "video ...: inputs+load" log lines."""
    pattern = re.compile(r"inputs\+load ([\d.]+)s, model ([\d.]+)s, media ([\d.]+)s, publish ([\d.]+)s")
    rows = [tuple(map(float, m.groups())) for m in pattern.finditer(log)]
    out = []
    for i in range(len(CASES)):
        case = rows[i * per_case + 1 : (i + 1) * per_case]  # skip each case's warm-up
        out.append((statistics.median(r[1] for r in case), statistics.median(r[0] + r[2] + r[3] for r in case)))
    return out


def encode_seconds() -> float:
    sys.path.insert(0, str(ROOT / "bench"))
    from encode import FPS, realistic_clip  # type: ignore[import-not-found]

    clip = realistic_clip()
    encode_mp4(clip, FPS)
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        encode_mp4(clip, FPS)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=5, help="timed jobs per case (median reported)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        models = base / "models"
        build_tiny_models(models)
        engine = Engine(builtin_registry(), models, memory_budget_bytes=8 * 2**30, device="cpu")
        direct = {name: direct_seconds(engine, s, steps, args.jobs) for name, (s, steps) in CASES.items()}
        engine.unload_all()
        server = start_server(
            base / "data",
            f"sqlite:///{base / 'k.db'}",
            models,
            workers=1,
            KINEMA_POLL_AFTER_MS="100",
            KINEMA_POLL_SECONDS="0.05",
        )
        try:
            client = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key=server.api_key, max_retries=0)
            service = {name: service_seconds(client, s, steps, args.jobs) for name, (s, steps) in CASES.items()}
        finally:
            server.stop()
        inside = worker_split(server.output(), args.jobs + 1)
    print(f"cores: {os.cpu_count()}, jobs per case: {args.jobs} (medians), poll interval 100 ms\n")
    print(f"{'case':46} {'model':>8} {'service':>8} {'overhead':>9} {'share':>7}")
    for name in CASES:
        over = service[name] - direct[name]
        print(f"{name:46} {direct[name]:7.2f}s {service[name]:7.2f}s {over:8.2f}s {over / direct[name]:6.1%}")
    print("\ninside the service (from the worker's timing log, medians):")
    print(f"{'case':46} {'model':>8} {'non-model':>10} {'share':>7}")
    for name, (model, rest) in zip(CASES, inside, strict=True):
        print(f"{name:46} {model:7.2f}s {rest:9.3f}s {rest / model:6.1%}")
    print("non-model = inputs + MP4/thumbnail/spritesheet encode + blob writes (claim and API not included)")
    print(
        "\noverhead = API + queue claim + progress writes + MP4/thumbnail/spritesheet encode + blob writes"
        "\n           + up to one poll interval of client-side latency; goal <= 5% once model time dominates"
    )
    enc = encode_seconds()
    print(f"\nencode 81 frames 832x480 H.264: {enc:.3f} s (goal 0.5 s: {enc / 0.5:.2f}x of goal)")


if __name__ == "__main__":
    main()
