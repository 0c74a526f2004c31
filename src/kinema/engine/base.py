"""The contract between the job queue and a model backend.

A worker turns a queued job into a :class:`GenerationRequest`, asks the registry for a loaded
:class:`Backend`, and calls :meth:`Backend.generate` with two callbacks: one that receives progress
after each denoising step and one that says whether the job was cancelled. A backend raises
:class:`Cancelled` between steps (before the VAE decode) when asked to stop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Literal, Protocol

import numpy as np
from PIL import Image

Task = Literal["t2v", "i2v", "v2v", "vace"]
"""What a job asks of a model: text-to-video, image-to-video (first frame given), video-to-video
(edit a source clip), or reference-to-video (VACE, reference images such as a likeness)."""

Speed = Literal["exact", "fast", "turbo"]
"""How a model trades quality for time (docs/models.md#speed-presets): ``exact`` is the stock result as fast as
it runs losslessly, ``fast`` reuses transformer outputs between steps (diffusers cache hooks), ``turbo`` runs
a step-distilled LoRA in a few steps without classifier-free guidance."""

SPEEDS: tuple[Speed, ...] = ("exact", "fast", "turbo")

ProgressFn = Callable[[int, int], None]
"""Called as ``progress(step_done, total_steps)`` after each denoising step."""

CancelFn = Callable[[], bool]
"""Returns True when the job should stop; polled between denoising steps."""

DEFAULT_STRENGTH: Final = 0.7
"""How far an edit (``v2v``) moves from its source unless told otherwise; the one place this default lives."""


class Cancelled(Exception):
    """Raised by a backend when ``should_cancel()`` turned true; no frames were decoded."""


class ModelNotAvailable(Exception):
    """The model's weights are not on this machine; the message says how to pull them."""


@dataclass(frozen=True)
class GenerationRequest:
    """Everything a backend needs for one clip, already validated and mapped to native values."""

    task: Task
    prompt: str
    width: int
    height: int
    num_frames: int
    fps: int
    num_inference_steps: int
    guidance_scale: float
    seed: int | None = None
    negative_prompt: str | None = None
    image: Image.Image | None = None
    """First frame for ``i2v`` (an uploaded reference, or the last frame of a clip to extend)."""
    video: list[Image.Image] | None = None
    """Source frames for ``v2v``."""
    strength: float = DEFAULT_STRENGTH
    """How far ``v2v`` may move away from the source (0 keeps it, 1 ignores it)."""
    reference_images: list[Image.Image] = field(default_factory=list)
    """Reference images for ``vace``."""
    speed: Speed = "exact"
    """The speed preset; the caller has already chosen steps and guidance to suit it (turbo: 4 and 1.0)."""


@dataclass(frozen=True)
class GenerationResult:
    """Decoded frames, ``uint8`` of shape ``(num_frames, height, width, 3)``, and their rate."""

    frames: np.ndarray
    fps: int


class Backend(Protocol):
    """A model family's way of turning a request into frames. Kept loaded between jobs."""

    def load(self) -> None:
        """Load weights onto the chosen device; idempotent."""

    def generate(self, request: GenerationRequest, progress: ProgressFn, should_cancel: CancelFn) -> GenerationResult:
        """Run one generation; raise :class:`Cancelled` if ``should_cancel()`` turns true."""

    def unload(self) -> None:
        """Release weights and device memory."""

    def memory_bytes(self) -> int:
        """Approximate bytes held while loaded (used by the LRU cache's budget)."""
