"""Hostile uploads against a real server: per kind, the server's peak memory and the time, from one run.

Run: ``python bench/uploads.py [--concurrency 4] [--env KINEMA_MEDIA_SLOTS=2 ...]``

Starts ``kinema serve`` (SQLite, no worker threads, every upload setting at its default unless ``--env``
says otherwise), warms it up with one benign upload per route (dlib's models, codecs and OpenCV load then),
and sends each hostile kind of testkit/hostile_uploads.py ``--concurrency`` times at once. For each kind it
prints the HTTP statuses, the peak resident memory of the server over the burst above its resident memory
before it (VmHWM, reset through /proc/<pid>/clear_refs), the resident memory left once the replies were in,
and the seconds the burst took. At the end: resident memory after warm-up and after everything.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))
# Offline, and one intra-op thread here and in the server (which inherits this environment), as in the tests.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

from kinema.engine.tiny import build_tiny_models  # noqa: E402
from testkit.hostile_uploads import KINDS, burst, rss_mb, warm_up  # noqa: E402
from testkit.server import start_server  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--env", action="append", default=[], help="extra KINEMA_X=value for the server")
    parser.add_argument("--only", default="", help="comma-separated substrings of kind names to run")
    args = parser.parse_args()
    extra = dict(item.split("=", 1) for item in args.env)
    with tempfile.TemporaryDirectory() as tmp:
        models = Path(tmp) / "models"
        build_tiny_models(models)
        server = start_server(Path(tmp) / "data", f"sqlite:///{tmp}/k.db", models, workers=0, **extra)
        try:
            pid = server.popen.pid
            print(
                f"command: python bench/uploads.py --concurrency {args.concurrency} "
                + " ".join(f"--env {k}={v}" for k, v in extra.items())
            )
            print(f"server RSS at start: {rss_mb(pid):.0f} MB")
            warm_up(server)
            warm = rss_mb(pid)
            print(f"server RSS after warm-up: {warm:.0f} MB\n")
            print(f"| kind ({args.concurrency} at once) | statuses | peak RSS delta | RSS after | seconds |")
            print("| --- | --- | --- | --- | --- |")
            for kind in KINDS:
                if args.only and not any(s in kind.name for s in args.only.split(",")):
                    continue
                result = burst(server, kind, args.concurrency)
                statuses = ", ".join(
                    f"{n}x {status}" + (f" {code}" if code else "")
                    for (status, code), n in sorted(Counter((r.status, r.code) for r in result.replies).items())
                )
                print(
                    f"| {kind.name} | {statuses} | +{result.peak_delta_mb:.0f} MB | "
                    f"{result.after_mb - warm:+.0f} MB | {result.seconds:.1f} |",
                    flush=True,
                )
            print(f"\nserver RSS after everything: {rss_mb(pid):.0f} MB ({rss_mb(pid) - warm:+.0f} MB vs warm-up)")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
