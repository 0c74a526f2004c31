"""``kinema generate``: one video on this machine, without a server, database or queue."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from tqdm import tqdm

from kinema.config import Settings
from kinema.container import build_provenance, build_registry
from kinema.engine.base import GenerationRequest, Task
from kinema.engine.frames import fit_image
from kinema.engine.runtime import Engine
from kinema.media.encode import encode_mp4
from kinema.media.images import decode_image
from kinema.services import planning
from kinema.services.options import GenerationOptions


def generate_locally(
    settings: Settings,
    prompt: str,
    output: Path,
    *,
    model: str | None = None,
    image: Path | None = None,
    seconds: str | None = None,
    size: str | None = None,
    seed: int | None = None,
    steps: int | None = None,
    negative_prompt: str | None = None,
) -> str:
    """Generate and write an MP4 to ``output``; return a one-line summary of what was made."""
    registry = build_registry(settings)
    spec = registry.resolve(model)
    options = GenerationOptions(seed=seed, negative_prompt=negative_prompt, num_inference_steps=steps)
    p = planning.plan(registry, spec, size, seconds, options)
    first_frame = None
    if image is not None:
        decoded = decode_image(
            image.read_bytes(), max_bytes=settings.max_upload_bytes, max_pixels=settings.max_image_pixels
        )
        first_frame = fit_image(decoded, p.width, p.height)
    task: Task = "i2v" if first_frame is not None else "t2v"
    engine = Engine(
        registry,
        settings.resolved_models_dir,
        memory_budget_bytes=int(settings.model_memory_budget_gb * 2**30),
        device=settings.device,
    )
    engine.ensure_miniatures()
    backend = engine.backend_for(spec, task)
    request = GenerationRequest(
        task=task,
        prompt=prompt,
        width=p.width,
        height=p.height,
        num_frames=p.num_frames,
        fps=p.fps,
        num_inference_steps=steps or spec.default_steps,
        guidance_scale=spec.default_guidance,
        seed=seed,
        negative_prompt=negative_prompt,
        image=first_frame,
    )
    with tqdm(total=request.num_inference_steps, unit="step", desc=spec.name) as bar:

        def progress(done: int, total: int) -> None:
            bar.update(done - bar.n)

        result = backend.generate(request, progress, lambda: False)
    # Local outputs carry the same provenance as the service's: watermark and signed manifest.
    provenance = build_provenance(settings)
    marks = provenance.marks(f"local_{uuid.uuid4().hex}")
    frames = provenance.watermark(result.frames, marks)
    mp4 = provenance.sign(
        encode_mp4(frames, result.fps), "video/mp4", model=spec.name, marks=marks, created_at=time.time()
    )
    output.write_bytes(mp4)
    t, h, w, _ = result.frames.shape
    return f"{t} frames, {w}x{h}, {result.fps} fps, model {spec.name}"


__all__ = ["generate_locally"]
