"""Building the ``tiny-wan`` miniatures: random Wan pipelines saved in diffusers format, offline, fast."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import diffusers
import transformers

from kinema.engine.layout import BUILT_MARKER
from kinema.engine.registry import TINY_A14B_TURBO_LORAS, TINY_TURBO_LORA, TINY_WAN, TINY_WAN_A14B

TINY_BUILD_VERSION = 2
"""Bump when the miniature architectures change: an existing build with another version is rebuilt."""

TINY_SUBDIRS = ("t2v", "i2v", "vace")
TURBO_SUBDIR = "turbo"
"""Holds the miniature's stand-in for a step-distilled LoRA (random weights), for the ``turbo`` preset."""

README = """\
tiny-wan: MINIATURE MODELS WITH RANDOM WEIGHTS

These are randomly initialised, very small versions of the Wan video pipelines (text-to-video,
image-to-video, VACE; video-to-video runs on the t2v directory), and a random LoRA standing in for a
step-distilled one (turbo/). They were built on this machine by
kinema (kinema.engine.tiny.build_tiny_models), from configs written in code, with a fixed seed. Nothing
was downloaded.

They exercise exactly the code path of the real models -- diffusers' from_pretrained, the same pipeline
classes, the same tokenizer/text encoder/transformer/VAE interfaces -- but they have learned nothing:
the "videos" they make are coloured noise and NOT MEANINGFUL. Use them for tests and development only.
"""


def tiny_root(models_dir: Path) -> Path:
    """The directory the miniatures live in."""
    return Path(models_dir) / TINY_WAN


def tiny_models_built(models_dir: Path) -> bool:
    """True when a complete build of the current version is in place."""
    marker = tiny_root(models_dir) / BUILT_MARKER
    try:
        info = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    root = tiny_root(models_dir)
    return (
        info.get("version") == TINY_BUILD_VERSION
        and all((root / sub / "model_index.json").is_file() for sub in TINY_SUBDIRS)
        and (root / TURBO_SUBDIR / TINY_TURBO_LORA).is_file()
    )


def build_tiny_models(models_dir: Path, *, seed: int = 0) -> bool:
    """Build the miniatures under ``models_dir/tiny-wan/{t2v,i2v,vace}`` unless a complete build exists.

    Deterministic (fixed seed) and offline. The build goes to a temporary directory that is moved into
    place with the completion marker already written last inside it, so an interrupted build leaves nothing
    that looks complete, and a concurrent builder's result is kept rather than overwritten.
    Returns True if it built, False if the models were already there.
    """
    models_dir = Path(models_dir)
    if tiny_models_built(models_dir):
        return False
    from safetensors.torch import save_file

    from kinema.engine.architectures import tiny_pipelines, tiny_turbo_lora  # heavy: torch, diffusers models

    models_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{TINY_WAN}.", dir=models_dir))
    try:
        for task, pipe in tiny_pipelines(seed).items():
            pipe.save_pretrained(staging / task, safe_serialization=True)
        (staging / TURBO_SUBDIR).mkdir()
        save_file(tiny_turbo_lora(seed), str(staging / TURBO_SUBDIR / TINY_TURBO_LORA))
        (staging / "README.txt").write_text(README)
        marker = {
            "version": TINY_BUILD_VERSION,
            "seed": seed,
            "diffusers": diffusers.__version__,
            "transformers": transformers.__version__,
        }
        (staging / BUILT_MARKER).write_text(json.dumps(marker, indent=2) + "\n")

        root = tiny_root(models_dir)
        if root.exists():
            if tiny_models_built(models_dir):  # someone else finished first: keep theirs
                return False
            shutil.rmtree(root)  # stale or incomplete
        try:
            os.rename(staging, root)
        except OSError:
            if tiny_models_built(models_dir):
                return False
            raise
        return True
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def _build_miniature(
    models_dir: Path, name: str, version: int, seed: int, readme: str, save: Callable[[Path], None]
) -> bool:
    """Build miniature ``name`` under ``models_dir/name`` unless a build of ``version`` is there; returns True
    if it built.

    ``save(staging)`` writes the pipelines into a temporary directory that is renamed into place with the
    completion marker (written last) inside, as :func:`build_tiny_models` does.
    """
    models_dir = Path(models_dir)
    root = models_dir / name
    try:
        if json.loads((root / BUILT_MARKER).read_text()).get("version") == version:
            return False
    except (OSError, ValueError):
        pass
    models_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=models_dir))
    try:
        save(staging)
        (staging / "README.txt").write_text(readme)
        marker = {"version": version, "seed": seed, "diffusers": diffusers.__version__}
        (staging / BUILT_MARKER).write_text(json.dumps(marker, indent=2) + "\n")
        if root.exists():
            shutil.rmtree(root)
        os.rename(staging, root)
        return True
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


TINY_LTX_BUILD_VERSION = 1


def build_tiny_ltx(models_dir: Path, *, seed: int = 0) -> bool:
    """Build the ``tiny-ltx`` miniature under ``models_dir/tiny-ltx/t2v`` unless it is there; offline, seeded.

    Returns True if it built.
    """
    from kinema.engine.architectures import tiny_ltx_pipeline

    def save(staging: Path) -> None:
        tiny_ltx_pipeline(seed).save_pretrained(staging / "t2v", safe_serialization=True)

    readme = README.replace("tiny-wan", "tiny-ltx").replace("Wan", "LTX-Video")
    return _build_miniature(models_dir, "tiny-ltx", TINY_LTX_BUILD_VERSION, seed, readme, save)


TINY_A14B_BUILD_VERSION = 2
"""2: a random LoRA per expert under turbo/, for the ``turbo`` preset."""

A14B_README = """\
tiny-wan-a14b: MINIATURE MODELS WITH RANDOM WEIGHTS

Randomly initialised, very small versions of the Wan 2.2 A14B pipelines (t2v/: text-to-video, i2v/:
image-to-video), each with two experts (transformer for the high-noise steps, transformer_2 for the
low-noise ones) and the reference boundary_ratio, and one random LoRA per expert standing in for the
step-distilled pair (turbo/). Built on this machine by kinema
(kinema.engine.tiny.build_tiny_a14b) from configs written in code, with a fixed seed; nothing was
downloaded. They run the real code path but have learned nothing: their videos are NOT MEANINGFUL.
Use them for tests and development only.
"""


def build_tiny_a14b(models_dir: Path, *, seed: int = 0) -> bool:
    """Build the ``tiny-wan-a14b`` miniatures under ``models_dir/tiny-wan-a14b/{t2v,i2v}`` unless they are there.

    Offline and seeded. Returns True if it built.
    """
    from safetensors.torch import save_file

    from kinema.engine.architectures import tiny_a14b_pipelines, tiny_turbo_lora

    def save(staging: Path) -> None:
        for task, pipe in tiny_a14b_pipelines(seed).items():
            pipe.save_pretrained(staging / task, safe_serialization=True)
        (staging / TURBO_SUBDIR).mkdir()
        for offset, name in enumerate(TINY_A14B_TURBO_LORAS):  # different weights for the two experts
            save_file(tiny_turbo_lora(seed + offset), str(staging / TURBO_SUBDIR / name))

    return _build_miniature(models_dir, TINY_WAN_A14B, TINY_A14B_BUILD_VERSION, seed, A14B_README, save)
