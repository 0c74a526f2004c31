"""Caps on what a caller may upload, and the safe decoders that apply them with the API's errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from PIL import Image

from kinema.media.errors import MediaError
from kinema.media.images import WORKING_SIDE, decode_image
from kinema.media.video_decode import DecodedVideo, decode_video
from kinema.services.errors import from_media_error
from kinema.services.mediagate import MediaGate

VIDEO_WORKING_SIDE: Final = 1280
"""Longest side an uploaded clip (edit, extension) is handed over at: the largest any model generates
(1280x720); the worker scales every source frame to the model's size anyway."""
ANALYSIS_SIDE: Final = 640
"""Longest side an enrolment clip is analysed at: a webcam or phone face is still 150-300 px wide there, far
above what the face checks need, and a 6 s 4K clip at 60 fps becomes 80 M pixels instead of 3 G."""


@dataclass(frozen=True)
class UploadLimits:
    """Caps on what a caller may upload, and the gate that bounds how many are decoded at once."""

    max_bytes: int
    max_image_pixels: int
    max_video_pixels: int
    max_video_frames: int
    max_video_seconds: float
    max_video_total_pixels: int = 100_000_000
    max_inference_steps: int = 100
    max_prompt_chars: int = 4000
    gate: MediaGate = field(default_factory=MediaGate, compare=False)
    """Hold a slot (``with limits.gate.slot(param):``) around decoding an upload and analysing its faces."""


def decode_video_upload(data: bytes, limits: UploadLimits, param: str) -> DecodedVideo:
    """An uploaded clip decoded in memory within the caps, frames at most ``VIDEO_WORKING_SIDE`` px on their
    longest side; 413/415/400 naming ``param`` otherwise."""
    return _decode_video(data, limits, param, VIDEO_WORKING_SIDE)


def decode_analysis_clip(data: bytes, limits: UploadLimits, param: str) -> DecodedVideo:
    """An uploaded clip for face analysis (enrolment): every frame, at the clip's own frame rate, scaled
    while decoding to at most ``ANALYSIS_SIDE`` px on its longest side, within the same caps as any upload
    (the total-pixel budget counts the scaled frames); 413/415/400 naming ``param`` otherwise."""
    return _decode_video(data, limits, param, ANALYSIS_SIDE)


def decode_image_upload(data: bytes, limits: UploadLimits, param: str) -> Image.Image:
    """An uploaded image decoded within the caps and reduced to at most ``WORKING_SIDE`` px on its longest
    side; 413/415/400 naming ``param`` otherwise."""
    try:
        return decode_image(data, max_bytes=limits.max_bytes, max_pixels=limits.max_image_pixels, max_side=WORKING_SIDE)
    except MediaError as exc:
        raise from_media_error(exc, param) from None


def _decode_video(data: bytes, limits: UploadLimits, param: str, max_side: int) -> DecodedVideo:
    try:
        return decode_video(
            data,
            max_bytes=limits.max_bytes,
            max_pixels=limits.max_video_pixels,
            max_frames=limits.max_video_frames,
            max_seconds=limits.max_video_seconds,
            max_total_pixels=limits.max_video_total_pixels,
            max_side=max_side,
        )
    except MediaError as exc:
        raise from_media_error(exc, param) from None
