"""The media chain after the model, on the CPU (numpy) and on the device (torch), and two jobs with and without
the finisher overlap -- all in one run.

Run: ``python bench/media_chain.py [--repeats 3] [--threads 2] [--skip-jobs]``

1. Per 81-frame clip at 832x480 and 1280x720, starting from what a pipeline hands back (float frames in
   [0, 1] on its device), the two ways the worker can take it to the files:
   - ``numpy``: floats to the CPU (diffusers' ``output_type="np"``), ``to_uint8``, label, watermark (numpy);
   - ``torch``: ``to_uint8_tensor``, label and watermark on the device, then only uint8 to the CPU;
   then, the same for both, what the finisher thread does: ``encode_mp4``, thumbnail, spritesheet, three C2PA
   signatures. It prints wall and process CPU seconds (all threads) for each part, medians of ``--repeats``.
   The device is CUDA when present (timed with ``torch.cuda.synchronize``), else the CPU.
2. Two ``tiny-wan`` jobs (256x160, 17 frames, 4 steps) through a real SQLite queue and worker, end to end
   (claim to both completed), once with ``overlap=False`` and once with ``overlap=True``, alternating.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
warnings.filterwarnings("ignore", category=DeprecationWarning)

import numpy as np  # noqa: E402
import torch  # noqa: E402

from kinema.engine.frames import to_uint8, to_uint8_tensor  # noqa: E402
from kinema.media.device import add_label_tensor  # noqa: E402
from kinema.media.encode import encode_mp4  # noqa: E402
from kinema.media.label import add_label  # noqa: E402
from kinema.media.previews import make_spritesheet, make_thumbnail  # noqa: E402
from kinema.provenance.watermark import embed  # noqa: E402
from kinema.provenance.wm_torch import embed_tensor  # noqa: E402
from kinema.services.provenance import ProvenanceService  # noqa: E402
from testkit.watermark_attacks import realistic_clip  # noqa: E402

SIZES = {"480p": (480, 832), "720p": (720, 1280)}
FRAMES = 81
FPS = 16
LABEL = "AI-generated"


def _timed(fn: Callable[[], object], sync: Callable[[], None]) -> tuple[float, float, object]:
    sync()
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    sync()
    return time.perf_counter() - wall, time.process_time() - cpu, out


def media_chain(device: torch.device, repeats: int, provenance: ProvenanceService) -> None:
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    marks = provenance.marks("video_bench")
    payload = provenance.payload(marks)
    print(f"media chain per {FRAMES}-frame clip, from the pipeline's float frames on {device} (medians of {repeats})")
    print(f"{'size':6} {'path':6} {'to uint8 + mark':>22} {'encode + previews + sign':>26} {'total cpu':>10}")
    print(f"{'':13} {'wall':>10} {'cpu':>10} {'wall':>12} {'cpu':>12}")
    for name, (height, width) in SIZES.items():
        clip = realistic_clip(frames=FRAMES, height=height, width=width, seed=1)
        # What VideoProcessor.postprocess_video(output_type="pt") returns: (frames, channels, H, W) in [0, 1].
        floats = torch.from_numpy(clip).to(device).permute(0, 3, 1, 2).to(torch.float32) / 255.0
        sync()

        def numpy_path(floats: torch.Tensor = floats) -> np.ndarray:
            host = floats.permute(0, 2, 3, 1).float().cpu().numpy()  # output_type="np"
            return embed(add_label(to_uint8(host), LABEL), payload)

        def torch_path(floats: torch.Tensor = floats) -> np.ndarray:
            frames = to_uint8_tensor(floats.permute(0, 2, 3, 1))
            return embed_tensor(add_label_tensor(frames, LABEL), payload).cpu().numpy()

        def finish(frames: np.ndarray) -> None:
            sign = functools.partial(provenance.sign, model="bench", marks=marks, created_at=time.time())
            sign(encode_mp4(frames, FPS), "video/mp4")
            sign(make_thumbnail(frames), "image/webp")
            sign(make_spritesheet(frames), "image/jpeg")

        for path, fn in (("numpy", numpy_path), ("torch", torch_path)):
            fn()  # warm-up (kernels, caches)
            marks_t: list[tuple[float, float]] = []
            finish_t: list[tuple[float, float]] = []
            for _ in range(repeats):
                wall, cpu, frames = _timed(fn, sync)
                marks_t.append((wall, cpu))
                fwall, fcpu, _ = _timed(functools.partial(finish, frames), sync)  # type: ignore[arg-type]
                finish_t.append((fwall, fcpu))
            mw, mc = (statistics.median(v) for v in zip(*marks_t, strict=True))
            fw, fc = (statistics.median(v) for v in zip(*finish_t, strict=True))
            print(f"{name:6} {path:6} {mw:9.3f}s {mc:9.3f}s {fw:11.3f}s {fc:11.3f}s {mc + fc:9.3f}s")


def two_jobs(repeats: int) -> None:
    from kinema.config import Settings
    from kinema.container import Container
    from kinema.engine.tiny import build_tiny_models
    from kinema.queue.worker import Worker
    from kinema.services.auth import Principal
    from kinema.services.options import CreateVideo, GenerationOptions

    with tempfile.TemporaryDirectory() as tmp:
        models = Path(tmp) / "models"
        build_tiny_models(models)
        settings = Settings(
            mode="dev", data_dir=Path(tmp) / "data", models_dir=models, default_model="tiny-wan", poll_seconds=0.05
        )
        c = Container.from_settings(settings)
        owner = Principal("bench")
        options = GenerationOptions(num_inference_steps=4, seed=1)

        def run(overlap: bool) -> tuple[float, float]:
            ids = [c.videos.create(owner, CreateVideo(prompt=p, seconds="2", options=options)).id for p in "ab"]
            worker = Worker(c.queue, c.runner, overlap=overlap, poll_seconds=0.05, progress_interval=0.25)
            wall, cpu = time.perf_counter(), time.process_time()
            while worker.run_once():
                pass
            worker.wait_finished()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            assert all(c.videos.get(owner.id, i).status == "completed" for i in ids)
            return wall, cpu

        try:
            run(True)  # warm-up: loads the model
            results: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
            for _ in range(repeats):
                for overlap in (False, True):
                    results[overlap].append(run(overlap))
        finally:
            c.close()
    print(f"\ntwo tiny-wan jobs (256x160, 17 frames, 4 steps) end to end, medians of {repeats}")
    for overlap, runs in results.items():
        wall, cpu = (statistics.median(v) for v in zip(*runs, strict=True))
        print(f"overlap={str(overlap):5}  wall {wall:.3f}s  cpu {cpu:.3f}s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch intra-op threads")
    parser.add_argument("--skip-jobs", action="store_true", help="only the media chain")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"cores: {os.cpu_count()}, torch threads: {torch.get_num_threads()}, torch {torch.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        provenance = ProvenanceService.from_folder(Path(tmp))
        media_chain(torch.device("cpu"), args.repeats, provenance)
        if torch.cuda.is_available():
            print(f"\n{torch.cuda.get_device_name()}")
            media_chain(torch.device("cuda"), args.repeats, provenance)
    if not args.skip_jobs:
        two_jobs(args.repeats)


if __name__ == "__main__":
    main()
