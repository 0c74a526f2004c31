"""Liveness at enrolment: honest pass rate and attack refusal rate per class, on synthetic clips.

Honest clips are 3D head-turn renders of one frontal test photograph (testkit/faces/clips.py): a SYNTHETIC
STAND-IN for real footage, with what real attempts vary drawn at random (amplitude 15-45 degrees, timing,
roll, nods, shake, zoom, resolution from 360p to 4K and portrait, noise, brightness, motion blur, low-quality
H.264, mirrored recordings). Attacks are made from one photograph (affine, perspective, local warp, local +
affine, bent page) or stitched from three (cuts, cross-fades), each with and without H.264.

    python bench/liveness.py --honest 100 --attacks 100 [--seed 0] [--kinds cylinder ...]

``--seed`` picks a disjoint set of clips (``SEED_STRIDE``); the thresholds were tuned on ``--seed 0``.
``--kinds`` keeps only the attacks of those classes among the first ``--attacks`` (clip ``k`` is of class
``ATTACKS[k % 7]``, drawn as in a full run).

Prints one line per clip, then both rates, the refusal rate per attack class and the analysis time per clip
(wall and CPU seconds of this process: median and 90th percentile; other load on the machine counts in wall).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from kinema.faces import EnrolmentError, FaceAnalyzer, analyze_enrolment  # noqa: E402
from testkit.faces.clips import ATTACKS, PEOPLE, attack_clip, clear_cache, head_turn_clip  # noqa: E402
from testkit.faces.photos import faces_dir  # noqa: E402

SEED_STRIDE = 1000
"""Clip ``k`` of ``--seed s`` is drawn from seed ``s * SEED_STRIDE + k``: different ``--seed`` values give disjoint
sets of clips (up to 1000 of each kind), so figures can be checked on clips the thresholds were not tuned on."""


def honest_case(seed: int) -> tuple[dict[str, object], list[str]]:
    """The parameters of honest clip ``seed``: person, resolution, rate, length, mirroring, compression."""
    rng = np.random.default_rng(10_000 + seed)
    moves = ["left", "right"] if rng.random() < 0.5 else ["right", "left"]
    resolution = str(
        rng.choice(["360p", "480p", "720p", "1080p", "portrait", "4k"], p=[0.25, 0.15, 0.25, 0.15, 0.15, 0.05])
    )
    # Memory: a clip is held whole (a 6 s 1080p clip at 30 fps is 1.1 GB); 60 fps only up to 720p, 4K short.
    if resolution == "4k":
        fps, seconds = 15.0, float(rng.uniform(3.0, 3.5))
    elif resolution in ("1080p", "portrait"):
        fps, seconds = float(rng.choice([15, 24, 30])), float(rng.uniform(3.0, 5.0))
    else:
        fps = float(rng.choice([15, 24, 30, 60]))
        seconds = float(rng.uniform(3.0, 6.0)) if fps <= 30 else float(rng.uniform(3.0, 4.0))
    case: dict[str, object] = {
        "person": str(rng.choice(PEOPLE)),
        "resolution": resolution,
        "fps": fps,
        "seconds": round(seconds, 2),
        "mirrored": bool(rng.random() < 0.3),
        "h264": bool(rng.random() < 0.6),
        "seed": seed,
    }
    return case, moves


def analyse(
    frames: np.ndarray, moves: list[str], analyzer: FaceAnalyzer, **options: object
) -> tuple[str, float, float]:
    """``analyze_enrolment`` on one clip: its outcome (``accepted`` or the refusal code), wall and CPU seconds."""
    started, cpu_started = time.perf_counter(), time.process_time()
    try:
        analyze_enrolment(frames, moves, analyzer=analyzer, **options)  # type: ignore[arg-type]
        code = "accepted"
    except EnrolmentError as exc:
        code = exc.code
    return code, time.perf_counter() - started, time.process_time() - cpu_started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--honest", type=int, default=100)
    parser.add_argument("--attacks", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--kinds",
        nargs="+",
        choices=ATTACKS,
        help="run only the attacks of these classes (each clip keeps its number and draw, so results match a full run)",
    )
    args = parser.parse_args()
    if not (faces_dir() / "obama_1.jpg").is_file():
        sys.exit(f"face photographs not found at {faces_dir()} (set KINEMA_TEST_FACES)")
    kinds = f" --kinds {' '.join(args.kinds)}" if args.kinds else ""
    print(
        f"reproduce: python bench/liveness.py --honest {args.honest} --attacks {args.attacks} --seed {args.seed}{kinds}"
    )
    analyzer = FaceAnalyzer()
    analyzer.load()
    times: list[float] = []
    cpu_times: list[float] = []
    honest_codes: Counter[str] = Counter()
    for k in range(args.honest):
        case, moves = honest_case(args.seed * SEED_STRIDE + k)
        frames = head_turn_clip(moves, **case)  # type: ignore[arg-type]
        code, wall, cpu = analyse(
            frames,
            moves,
            analyzer,
            fps=float(case["fps"]),
            mirrored=bool(case["mirrored"]),  # type: ignore[arg-type]
        )
        times.append(wall)
        cpu_times.append(cpu)
        del frames
        clear_cache()
        honest_codes[code] += 1
        print(f"honest {k:3d} {code:18s} {times[-1]:5.1f}s cpu {cpu_times[-1]:4.1f}s {case}", flush=True)
    per_class: dict[str, Counter[str]] = defaultdict(Counter)
    for k in range(args.attacks):
        rng = np.random.default_rng(20_000 + args.seed * SEED_STRIDE + k)
        kind = ATTACKS[k % len(ATTACKS)]
        if args.kinds and kind not in args.kinds:
            continue
        moves = ["left", "right"] if rng.random() < 0.5 else ["right", "left"]
        h264 = bool(rng.random() < 0.5)
        person = "obama_1" if kind.startswith("stitched") else str(rng.choice(PEOPLE))
        frames = attack_clip(
            kind,
            moves,
            person,
            seed=args.seed * SEED_STRIDE + k,
            h264=h264,
            resolution=str(rng.choice(["360p", "720p"])),
        )
        code, wall, cpu = analyse(frames, moves, analyzer, fps=15.0)
        times.append(wall)
        cpu_times.append(cpu)
        del frames
        clear_cache()
        per_class[kind + ("+h264" if h264 else "")][code] += 1
        print(
            f"attack {k:3d} {kind:14s} h264={h264!s:5s} {code:18s} {times[-1]:5.1f}s cpu {cpu_times[-1]:4.1f}s",
            flush=True,
        )
    honest_total = sum(honest_codes.values())
    if honest_total:
        print(
            f"\nhonest pass rate: {honest_codes['accepted']}/{honest_total} "
            f"= {100 * honest_codes['accepted'] / honest_total:.1f} %   refusals: "
            f"{dict((c, n) for c, n in honest_codes.items() if c != 'accepted')}"
        )
    refused = sum(sum(n for c, n in counts.items() if c != "accepted") for counts in per_class.values())
    attacks_total = sum(sum(counts.values()) for counts in per_class.values())
    if attacks_total:
        print(f"attack refusal rate: {refused}/{attacks_total} = {100 * refused / attacks_total:.1f} %")
        for kind in sorted(per_class):
            counts = per_class[kind]
            total = sum(counts.values())
            print(f"  {kind:22s} refused {total - counts['accepted']}/{total}   {dict(counts)}")
    for label, values in (("wall", times), ("CPU", cpu_times)):
        if values:
            ordered = sorted(values)
            print(
                f"analysis {label} time per clip: median {statistics.median(values):.2f} s, "
                f"p90 {ordered[int(0.9 * (len(ordered) - 1))]:.2f} s, max {ordered[-1]:.2f} s"
            )


if __name__ == "__main__":
    main()
