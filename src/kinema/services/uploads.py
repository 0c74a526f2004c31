"""Caps on what a caller may upload, and the safe decoders that apply them with the API's errors."""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

from kinema.media.errors import MediaError
from kinema.media.images import decode_image
from kinema.media.video_decode import DecodedVideo, decode_video
from kinema.services.errors import from_media_error


@dataclass(frozen=True)
class UploadLimits:
    """Caps on what a caller may upload."""

    max_bytes: int
    max_image_pixels: int
    max_video_pixels: int
    max_video_frames: int
    max_video_seconds: float
    max_video_total_pixels: int = 300_000_000
    max_inference_steps: int = 100
    max_prompt_chars: int = 4000


def decode_video_upload(data: bytes, limits: UploadLimits, param: str) -> DecodedVideo:
    """An uploaded clip decoded in memory within the caps; 413/415/400 naming ``param`` otherwise."""
    try:
        return decode_video(
            data,
            max_bytes=limits.max_bytes,
            max_pixels=limits.max_video_pixels,
            max_frames=limits.max_video_frames,
            max_seconds=limits.max_video_seconds,
            max_total_pixels=limits.max_video_total_pixels,
        )
    except MediaError as exc:
        raise from_media_error(exc, param) from None


def decode_image_upload(data: bytes, limits: UploadLimits, param: str) -> Image.Image:
    """An uploaded image decoded within the caps; 413/415/400 naming ``param`` otherwise."""
    try:
        return decode_image(data, max_bytes=limits.max_bytes, max_pixels=limits.max_image_pixels)
    except MediaError as exc:
        raise from_media_error(exc, param) from None
