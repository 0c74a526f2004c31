"""Map a request's size, seconds and fps onto a model's native width, height and frame count."""

from __future__ import annotations

from dataclasses import dataclass

from kinema.engine.registry import ModelRegistry, ModelSpec, UnsupportedRequest
from kinema.services.errors import InvalidRequest
from kinema.services.options import GenerationOptions


@dataclass(frozen=True)
class Plan:
    """A request mapped onto a model's native values."""

    width: int
    height: int
    num_frames: int
    fps: int
    seconds: str


def plan(
    registry: ModelRegistry, spec: ModelSpec, size: str | None, seconds: str | None, options: GenerationOptions
) -> Plan:
    """Native size and frame count for a request, or :class:`InvalidRequest` saying what the model can do."""
    try:
        width, height = registry.native_size(spec, size)
    except UnsupportedRequest as exc:
        raise InvalidRequest(str(exc), param=exc.param, code="unsupported_value") from None
    chosen = seconds or spec.default_seconds
    return Plan(width, height, frames_for(registry, spec, chosen, options), options.fps or spec.fps, chosen)


def frames_for(registry: ModelRegistry, spec: ModelSpec, seconds: str, options: GenerationOptions) -> int:
    """Frames for ``seconds`` at the model's fps (its table) or at ``options.fps`` (computed)."""
    try:
        native = registry.num_frames(spec, seconds)
    except UnsupportedRequest as exc:
        raise InvalidRequest(str(exc), param=exc.param, code="unsupported_value") from None
    if options.fps is None or options.fps == spec.fps:
        return native
    # Wan's VAE packs frames in groups of 4 after the first: 4k + 1 frames.
    frames = 4 * max(1, round(float(seconds) * options.fps / 4)) + 1
    longest = max(spec.seconds.values())
    if frames > longest:
        raise InvalidRequest(
            f"{seconds} s at {options.fps} fps needs {frames} frames; model '{spec.name}' makes at most "
            f"{longest} frames per clip. Lower fps or seconds.",
            param="fps",
            code="unsupported_value",
        )
    return frames
