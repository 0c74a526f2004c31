"""Service overhead per job (API + queue + media) against calling the same pipeline directly.

Run: ``python bench/overhead.py [--jobs 5] [--threads 1]``

Builds the offline miniature models in a temporary folder, then, in one run:

1. direct: loads the ``tiny-wan`` text-to-video backend in this process and times
   ``backend.generate`` alone (the model time), wall and CPU;
2. service: a real ``kinema serve`` (SQLite, one worker thread) started alongside, timing each job from
   ``videos.create`` to the poll that sees ``completed`` through the official `openai` SDK, wall and the
   server's CPU time; direct and service jobs alternate, with the same pinned torch thread count;
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
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
warnings.filterwarnings("ignore", category=DeprecationWarning)

import openai  # noqa: E402
import torch  # noqa: E402

from kinema.engine.base import GenerationRequest  # noqa: E402
from kinema.engine.registry import builtin_registry  # noqa: E402
from kinema.engine.runtime import Engine  # noqa: E402
from kinema.engine.tiny import build_tiny_models  # noqa: E402
from kinema.media.encode import encode_mp4  # noqa: E402
from testkit.server import start_server  # noqa: E402

CASES = {  # name: (seconds, steps)
    "small (1 s, 9 frames, 2 steps)": ("1", 2),
    "model-dominated (12 s, 97 frames, 30 steps)": ("12", 30),
}

SIZE = "96x64"  # the miniature's fast size, as in the figures recorded in docs/benchmarks.md


def _request(engine: Engine, seconds: str, steps: int) -> GenerationRequest:
    registry = engine.registry
    spec = registry.resolve("tiny-wan")
    w, h = registry.native_size(spec, SIZE)
    return GenerationRequest(
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


def _server_cpu(pid: int) -> float:
    """CPU seconds (user + system, all threads) the server process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def direct_job(engine: Engine, request: GenerationRequest) -> tuple[float, float]:
    """(wall, CPU) seconds of one ``backend.generate`` in this process."""
    backend = engine.backend_for(engine.registry.resolve("tiny-wan"), "t2v")
    w0, c0 = time.perf_counter(), time.process_time()
    backend.generate(request, lambda d, t: None, lambda: False)
    return time.perf_counter() - w0, time.process_time() - c0


def service_job(client: openai.OpenAI, pid: int, seconds: str, steps: int) -> tuple[float, float]:
    """(wall, server CPU) seconds of one job from ``videos.create`` to the poll that sees it completed."""
    w0, c0 = time.perf_counter(), _server_cpu(pid)
    video = client.videos.create_and_poll(
        prompt="a kite", seconds=seconds, size=SIZE, extra_body={"num_inference_steps": steps, "seed": 1}
    )
    assert video.status == "completed", video.error
    return time.perf_counter() - w0, _server_cpu(pid) - c0


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
    parser.add_argument("--threads", type=int, default=1, help="torch threads, here and in the server")
    args = parser.parse_args()
    # The same thread count on both sides: otherwise the direct run (all cores) and the worker (its own
    # setting) do not run the same computation, and on a loaded machine the difference can even go negative.
    torch.set_num_threads(args.threads)
    threads_env = {name: str(args.threads) for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    rows: dict[str, list[tuple[float, float, float, float]]] = {name: [] for name in CASES}
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        models = base / "models"
        build_tiny_models(models)
        engine = Engine(builtin_registry(), models, memory_budget_bytes=8 * 2**30, device="cpu")
        server = start_server(
            base / "data",
            f"sqlite:///{base / 'k.db'}",
            models,
            workers=1,
            KINEMA_POLL_AFTER_MS="100",
            KINEMA_POLL_SECONDS="0.05",
            **threads_env,
        )
        try:
            client = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key=server.api_key, max_retries=0)
            pid = server.popen.pid
            for name, (seconds, steps) in CASES.items():
                request = _request(engine, seconds, steps)
                direct_job(engine, request)  # warm-up, both sides
                service_job(client, pid, seconds, steps)
                # Interleaved, so both sides see the same load on a shared machine.
                for _ in range(args.jobs):
                    d_wall, d_cpu = direct_job(engine, request)
                    s_wall, s_cpu = service_job(client, pid, seconds, steps)
                    rows[name].append((d_wall, d_cpu, s_wall, s_cpu))
        finally:
            server.stop()
        inside = worker_split(server.output(), args.jobs + 1)
    med = statistics.median
    print(f"cores: {os.cpu_count()}, torch threads: {args.threads} (both sides), jobs per case: {args.jobs}")
    print("direct and service jobs interleaved; medians; overhead = median of paired (service - direct)\n")
    print(f"{'case':46} {'direct':>15} {'service':>15} {'overhead':>9} {'share':>7}")
    print(f"{'':46} {'wall':>7} {'cpu':>7} {'wall':>7} {'cpu':>7}")
    for name, case in rows.items():
        d_wall, d_cpu = med(r[0] for r in case), med(r[1] for r in case)
        s_wall, s_cpu = med(r[2] for r in case), med(r[3] for r in case)
        over = med(r[2] - r[0] for r in case)
        print(f"{name:46} {d_wall:6.2f}s {d_cpu:6.2f}s {s_wall:6.2f}s {s_cpu:6.2f}s {over:8.2f}s {over / d_wall:6.1%}")
    print("service cpu = the server process's CPU time during the job (API, queue, worker, media)")
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
