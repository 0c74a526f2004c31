"""Wire models for /v1/videos, shaped exactly like the `openai` SDK's types (``openai.types.video``).

Request models forbid unknown fields, so a typo is an error naming the field instead of a silently
ignored option. Kinema's extras (seed, negative_prompt, num_inference_steps, guidance_scale, fps, speed)
are optional fields; the SDK sends them with ``extra_body``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, field_validator

from kinema.api.strict import Strict
from kinema.db.models import VideoRow
from kinema.services.options import GenerationOptions


class Extras(Strict):
    """Kinema-only knobs; each defaults to the model's own value."""

    seed: int | None = Field(None, ge=0, le=2**32 - 1, description="Random seed; same seed, same video.")
    negative_prompt: str | None = Field(None, max_length=4000, description="What the video should not show.")
    num_inference_steps: int | None = Field(None, ge=1, description="Denoising steps.")
    guidance_scale: float | None = Field(None, ge=0, le=50, description="Classifier-free guidance strength.")
    fps: int | None = Field(None, ge=1, le=60, description="Output frame rate; frames = seconds x fps.")
    speed: Literal["exact", "fast", "turbo"] | None = Field(
        None, description="Speed preset: exact (default), fast (cache hooks), turbo (distilled, 4 steps)."
    )

    @field_validator("seed", "num_inference_steps", "guidance_scale", "fps", mode="before")
    @classmethod
    def _not_a_boolean(cls, value: object) -> object:
        # Lax parsing would read true/false as 1/0 (multipart sends numbers as text, so lax it stays).
        if isinstance(value, bool):
            raise ValueError("must be a number, not true or false")
        return value

    def options(self) -> GenerationOptions:
        """The extras as the service's internal type."""
        return GenerationOptions(
            seed=self.seed,
            negative_prompt=self.negative_prompt,
            num_inference_steps=self.num_inference_steps,
            guidance_scale=self.guidance_scale,
            fps=self.fps,
            speed=self.speed,
        )


def _as_str(value: object) -> object:
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


class ImageReference(Strict):
    """``input_reference`` sent as an object in JSON: a base64 ``data:`` URL."""

    image_url: str | None = None
    file_id: str | None = None


class VideoReference(Strict):
    """A completed video by id."""

    id: str = Field(min_length=1)


class CreateVideoBody(Extras):
    """``POST /v1/videos``. ``input_reference`` may also be a file part in multipart."""

    prompt: str = Field(min_length=1)
    model: str | None = None
    seconds: str | None = None
    size: str | None = None
    input_reference: ImageReference | None = None
    characters: list[str] | None = Field(
        None, max_length=4, description="Kinema extra: ids of likenesses to feature (or mention @name in the prompt)."
    )
    likeness_mode: Literal["scene", "first_frame"] | None = Field(
        None,
        description="Kinema extra: how likenesses enter the video: scene (reference-to-video, the default where "
        "the model has it) or first_frame (image-to-video from the likeness's reference crop).",
    )

    _seconds = field_validator("seconds", mode="before")(_as_str)


class RemixBody(Extras):
    """``POST /v1/videos/{id}/remix``."""

    prompt: str = Field(min_length=1)


class EditBody(Extras):
    """``POST /v1/videos/edits``: ``video`` is ``{"id": ...}`` or a file part."""

    prompt: str = Field(min_length=1)
    video: VideoReference | None = None
    model: str | None = None


class ExtendBody(Extras):
    """``POST /v1/videos/extensions``: ``seconds`` is the length of the new part."""

    prompt: str = Field(min_length=1)
    seconds: str
    video: VideoReference | None = None
    model: str | None = None

    _seconds = field_validator("seconds", mode="before")(_as_str)


class VideoError(BaseModel):
    code: str
    message: str


class Video(BaseModel):
    """The SDK's ``Video``: a job and its state."""

    id: str
    object: Literal["video"] = "video"
    created_at: int
    completed_at: int | None = None
    expires_at: int | None = None
    error: VideoError | None = None
    model: str
    progress: int
    prompt: str | None = None
    remixed_from_video_id: str | None = None
    seconds: str
    size: str
    status: Literal["queued", "in_progress", "completed", "failed"]

    @classmethod
    def from_row(cls, row: VideoRow) -> Video:
        """The wire view of a stored job."""
        error = VideoError(code=row.error_code, message=row.error_message or "") if row.error_code else None
        return cls(
            id=row.id,
            created_at=int(row.created_at),
            completed_at=int(row.completed_at) if row.completed_at else None,
            expires_at=int(row.expires_at) if row.expires_at else None,
            error=error if row.status == "failed" else None,
            model=row.model,
            progress=row.progress,
            prompt=row.prompt,
            remixed_from_video_id=row.remixed_from_video_id,
            seconds=row.seconds,
            size=row.size,
            status=row.status,  # type: ignore[arg-type]
        )


class VideoList(BaseModel):
    """The SDK's cursor page: ``data`` plus ``first_id`` / ``last_id`` / ``has_more``."""

    object: Literal["list"] = "list"
    data: list[Video]
    first_id: str | None
    last_id: str | None
    has_more: bool


class VideoDeleted(BaseModel):
    """The SDK's ``VideoDeleteResponse``."""

    id: str
    object: Literal["video.deleted"] = "video.deleted"
    deleted: bool = True
