"""How often the miniature's outputs carry a watermark that is found, by size: as delivered, and re-encoded.

Run: ``python bench/watermark_sizes.py [--seeds 6] [--sizes 96x64,256x160]``

For each size, generates ``--seeds`` clips with ``tiny-wan`` exactly as ``kinema generate`` does (17 frames,
4 steps, watermark, C2PA), in a throw-away data folder, then prints how many of them
``detect_video`` finds as delivered and after a re-post (decode, libx264 CRF 28 re-encode), with each
file's confidence. This is where the figures for ``MIN_MARK_SIDE`` and docs/provenance.md#limits come from.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from kinema.config import load_settings  # noqa: E402
from kinema.provenance import watermark as wm  # noqa: E402
from kinema.services.local import generate_locally  # noqa: E402
from testkit.watermark_attacks import decode_rgb, x264  # noqa: E402  (one copy of the attack)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=6)
    parser.add_argument("--sizes", default="96x64,256x160")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        settings = load_settings(data_dir=Path(folder), default_model="tiny-wan")
        for size in args.sizes.split(","):
            delivered = reposted = 0
            confidences = []
            for seed in range(args.seeds):
                out = Path(folder) / f"{size}-{seed}.mp4"
                generate_locally(settings, "a red kite over a beach", out, model="tiny-wan", size=size, seed=seed)
                mp4 = out.read_bytes()
                first = wm.detect_video(mp4)
                again = wm.detect_video(x264(decode_rgb(mp4), crf=28))
                delivered += first.found
                reposted += again.found
                confidences.append(f"{first.confidence:.2f}/{again.confidence:.2f}")
            print(
                f"tiny-wan {size}: found as delivered {delivered}/{args.seeds}, after a CRF 28 re-encode "
                f"{reposted}/{args.seeds}; confidence delivered/re-encoded {' '.join(confidences)}",
                flush=True,
            )


if __name__ == "__main__":
    main()
