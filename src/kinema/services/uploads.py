"""Caps on what a caller may upload, and the safe decoders that apply them with the API's errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import numpy as np
from PIL import Image

from kinema.media.encode import Mp4Writer
from kinema.media.errors import MediaError
from kinema.media.images import WORKING_SIDE, decode_image
from kinema.media.video_decode import DecodedVideo, decode_video, probe_mp4, stream_mp4, stream_video
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


GUARD_FRAMES: Final = 6
"""Frames, spread evenly over an uploaded clip, that the face guard looks at."""


@dataclass(frozen=True)
class SourceClip:
    """What an edit or an extension needs of its source clip at request time, without its frames.

    ``mp4`` is a file Kinema trusts: the caller's completed video as stored, or an upload re-encoded by us
    (:func:`reencode_video_upload`; the uploader's container metadata is not kept). The worker decodes it
    again, one frame at a time, keeping only the frames the job uses at the job's size.
    """

    width: int
    height: int
    frame_count: int
    fps: float
    mp4: bytes
    guard_frames: list[np.ndarray]
    """For an upload, ``GUARD_FRAMES`` frames spread over it for the face guard; empty for a video of ours."""


def reencode_video_upload(data: bytes, limits: UploadLimits, param: str) -> SourceClip:
    """An uploaded clip (edit, extension) re-encoded as our MP4 while it is decoded, within the caps; 413/415/400
    naming ``param`` otherwise.

    The same checks and frames as :func:`decode_video_upload` (at most ``VIDEO_WORKING_SIDE`` px, the
    total-pixel budget counted on every frame), but each frame goes to the encoder as it is decoded and is
    dropped: memory is one frame and the encoder's, not the clip (a clip at the 100 M pixel budget was 300 MB
    of RGB). The MP4 is what :func:`kinema.media.encode.encode_mp4` makes of the same frames, at
    ``max(1, round(fps))``. The face guard's frames are then read back from that MP4 (a trusted file, decoded
    again at the working size: at most the budget's pixels, a fraction of a second).
    """
    try:
        with stream_video(
            data,
            max_bytes=limits.max_bytes,
            max_pixels=limits.max_video_pixels,
            max_frames=limits.max_video_frames,
            max_seconds=limits.max_video_seconds,
            max_total_pixels=limits.max_video_total_pixels,
            max_side=VIDEO_WORKING_SIDE,
        ) as clip:
            first = next(clip.frames, None)
            if first is None:
                raise MediaError("The video file is corrupt or could not be decoded.", "corrupt_media")
            height, width = first.shape[:2]
            with Mp4Writer(width, height, max(1, round(clip.fps))) as writer:
                writer.write(first)
                del first
                for frame in clip.frames:
                    writer.write(frame)
                count = writer.frames
                mp4 = writer.finish()
    except MediaError as exc:
        raise from_media_error(exc, param) from None
    picks = np.linspace(0, count - 1, num=min(GUARD_FRAMES, count)).round().astype(int)
    guard = _frames_at(mp4, set(picks.tolist()), width, height)
    return SourceClip(width, height, count, clip.fps, mp4, guard)


def source_of_video(mp4: bytes) -> SourceClip:
    """A completed video of ours as the source of an edit or extension: its size, length and rate, read by
    decoding it without converting or keeping any frame."""
    probe = probe_mp4(mp4)
    return SourceClip(probe.width, probe.height, probe.frames, probe.fps, mp4, [])


def _frames_at(mp4: bytes, indices: set[int], width: int, height: int) -> list[np.ndarray]:
    """The frames of our own ``mp4`` at ``indices``, in order, cropped to ``width`` x ``height`` (the encoder
    pads odd sides)."""
    kept: list[np.ndarray] = []
    with stream_mp4(mp4) as clip:
        for index, frame in enumerate(clip.frames):
            if index in indices:
                kept.append(np.ascontiguousarray(frame[:height, :width]))
            if len(kept) == len(indices):
                break
    return kept


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
