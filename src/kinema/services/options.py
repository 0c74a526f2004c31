"""Internal request types passed from the API to the video service (not wire models, not rows)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class GenerationOptions:
    """Kinema's optional knobs; ``None`` means the model's default."""

    seed: int | None = None
    negative_prompt: str | None = None
    num_inference_steps: int | None = None
    guidance_scale: float | None = None
    fps: int | None = None
    speed: str | None = None
    """Speed preset ("exact", "fast", "turbo"); checked against the model by the video service."""

    def merged_over(self, base: dict[str, Any]) -> dict[str, Any]:
        """These options laid over ``base`` (a stored job's params): given values win."""
        out = dict(base)
        for key, value in self.__dict__.items():
            if value is not None:
                out[key] = value
        return out


@dataclass(frozen=True)
class VideoSource:
    """A source clip for an edit or extension: a completed video by id, or an upload."""

    video_id: str | None = None
    upload: bytes | None = None


@dataclass(frozen=True)
class CreateVideo:
    prompt: str
    model: str | None = None
    seconds: str | None = None
    size: str | None = None
    image: bytes | None = None
    characters: list[str] = field(default_factory=list)
    """An uploaded first frame (raw bytes, decoded safely by the service)."""
    options: GenerationOptions = field(default_factory=GenerationOptions)


@dataclass(frozen=True)
class EditVideo:
    prompt: str
    source: VideoSource
    model: str | None = None
    options: GenerationOptions = field(default_factory=GenerationOptions)


@dataclass(frozen=True)
class ExtendVideo:
    prompt: str
    seconds: str
    source: VideoSource
    model: str | None = None
    options: GenerationOptions = field(default_factory=GenerationOptions)
