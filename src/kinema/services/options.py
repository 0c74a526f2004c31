"""Internal request types passed from the API to the video service (not wire models, not rows)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

LikenessMode = Literal["scene", "first_frame"]
"""``scene``: each likeness is a reference image of a reference-to-video (VACE) job, so the person appears
inside the prompt's scene; ``first_frame``: the first likeness's reference crop is the first frame of an
image-to-video job."""
LIKENESS_MODES: tuple[LikenessMode, ...] = ("scene", "first_frame")


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
    """An uploaded first frame (raw bytes, decoded safely by the service)."""
    characters: list[str] = field(default_factory=list)
    """Ids of likenesses to feature (``@name`` mentions in the prompt add more)."""
    options: GenerationOptions = field(default_factory=GenerationOptions)
    likeness_mode: LikenessMode | None = None
    """How named likenesses enter the video; ``None``: ``scene`` where the model has it, else ``first_frame``."""


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
