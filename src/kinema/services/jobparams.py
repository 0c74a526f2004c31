"""The job payload: the generation settings a video row keeps in its ``params`` JSON column.

The video service builds a :class:`JobParams` for each job and stores :meth:`JobParams.to_json`; the
generation runner reads it back with :meth:`JobParams.from_json`. The stored JSON is what the service has
always written: a key is there only when the job has it (``strength`` for an edit, ``stitch`` for an
extension, ``source_frames``/``source_fps`` for a job with a source clip), and a missing key reads back
as the default the runner has always used. Keys this version does not know are ignored on read, so a row
written by another version (an older one, or a newer one during a rolling deploy) still runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from kinema.engine.base import DEFAULT_STRENGTH, SPEEDS, Speed

_T = TypeVar("_T")


@dataclass(frozen=True)
class JobParams:
    """One job's settings, as the row stores them; built by the video service, read by the runner."""

    num_inference_steps: int
    guidance_scale: float
    seed: int | None = None
    """Always drawn by the service; ``None`` only on a row stored without one (the backend then picks)."""
    negative_prompt: str | None = None
    speed: Speed = "exact"
    strength: float | None = None
    """An edit's (v2v) strength; ``None`` for every other job. :attr:`edit_strength` applies the default."""
    stitch: bool = False
    """An extension, or a remix of one: the source clip is the start of the output."""
    requested_seconds: str | None = None
    """The ``seconds`` the job was planned for; a remix that changes fps plans its frames again from it."""
    source_frames: int | None = None
    """Frames in the source clip of an edit or extension (and of their remixes)."""
    source_fps: float | None = None
    """That clip's frame rate."""

    @property
    def edit_strength(self) -> float:
        """The strength an edit runs with: the stored one, else the engine's default."""
        return DEFAULT_STRENGTH if self.strength is None else self.strength

    def to_json(self) -> dict[str, Any]:
        """The dict the row stores: the keys the job has, none for settings it does not have."""
        out: dict[str, Any] = {}
        if self.seed is not None:
            out["seed"] = self.seed
        if self.negative_prompt is not None:
            out["negative_prompt"] = self.negative_prompt
        out["num_inference_steps"] = self.num_inference_steps
        out["guidance_scale"] = self.guidance_scale
        out["speed"] = self.speed
        if self.strength is not None:
            out["strength"] = self.strength
        if self.stitch:
            out["stitch"] = True
        if self.requested_seconds is not None:
            out["requested_seconds"] = self.requested_seconds
        if self.source_frames is not None:
            out["source_frames"] = self.source_frames
        if self.source_fps is not None:
            out["source_fps"] = self.source_fps
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> JobParams:
        """A stored row's params; missing optional keys take their defaults, unknown keys are ignored.

        Raises ``KeyError`` when the steps or guidance are missing (every job has them) and ``ValueError``
        for a speed that is not a preset.
        """
        speed = data.get("speed", "exact")
        if speed not in SPEEDS:
            raise ValueError(f"unknown speed preset {speed!r} in a job's params")
        return cls(
            num_inference_steps=int(data["num_inference_steps"]),
            guidance_scale=float(data["guidance_scale"]),
            seed=_optional(int, data.get("seed")),
            negative_prompt=_optional(str, data.get("negative_prompt")),
            speed=speed,
            strength=_optional(float, data.get("strength")),
            stitch=bool(data.get("stitch", False)),
            requested_seconds=_optional(str, data.get("requested_seconds")),
            source_frames=_optional(int, data.get("source_frames")),
            source_fps=_optional(float, data.get("source_fps")),
        )


def _optional(kind: Callable[[Any], _T], value: Any) -> _T | None:
    return None if value is None else kind(value)
