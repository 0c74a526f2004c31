"""The upload decoders with the default caps: what phones and webcams record is accepted, bombs are not."""

from __future__ import annotations

import numpy as np
import pytest

from kinema.config import Settings
from kinema.services.errors import InvalidRequest
from kinema.services.uploads import UploadLimits, decode_analysis_clip, decode_image_upload, decode_video_upload
from tests.media.factories import huge_black_png, repeated_frames_webm


@pytest.fixture(scope="module")
def limits() -> UploadLimits:
    """The caps a default deployment applies."""
    s = Settings()
    return UploadLimits(
        max_bytes=s.max_upload_bytes,
        max_image_pixels=s.max_image_pixels,
        max_video_pixels=s.max_video_pixels,
        max_video_frames=s.max_video_frames,
        max_video_seconds=s.max_video_seconds,
        max_video_total_pixels=s.max_video_total_pixels,
    )


def _clip(width: int, height: int, frames: int, fps: int) -> bytes:
    still = np.zeros((height, width, 3), np.uint8)
    still[:, : width // 2] = (200, 60, 40)
    return repeated_frames_webm([(still, frames)], fps=fps)


@pytest.mark.parametrize(
    ("width", "height", "frames", "fps", "shape"),
    [
        (1920, 1080, 360, 60, (360, 360, 640, 3)),  # 6 s of 1080p at 60 fps: refused before (over 4.8 s)
        (1080, 1920, 180, 30, (180, 640, 360, 3)),  # a portrait phone clip, 6 s at 30 fps
        (3840, 2160, 60, 30, (60, 360, 640, 3)),  # 2 s of 4K: refused before (over 1.2 s)
    ],
    ids=["1080p-6s-60fps", "portrait-1080p-6s", "4k-2s"],
)
def test_enrolment_clips_from_phones_and_webcams_are_accepted_at_analysis_size(
    limits: UploadLimits, width: int, height: int, frames: int, fps: int, shape: tuple[int, ...]
) -> None:
    clip = decode_analysis_clip(_clip(width, height, frames, fps), limits, "video")
    assert clip.frames.shape == shape  # every frame, at the clip's own rate
    assert clip.fps == fps
    left = clip.frames[0, :, : shape[2] // 4].reshape(-1, 3).mean(axis=0)
    assert np.abs(left - (200, 60, 40)).max() < 20  # the picture, scaled (not cropped or garbled)


def test_a_clip_too_long_for_the_budget_is_told_what_fits_not_60_s(limits: UploadLimits) -> None:
    # 8 s of 1080p at 60 fps: 480 frames of 640x360 is over the 100 M pixel budget. Before, a clip like this
    # was told "at most N frames and 60 s", whichever limit it had hit.
    with pytest.raises(InvalidRequest) as refused:
        decode_analysis_clip(_clip(1920, 1080, 480, 60), limits, "video")
    error = refused.value
    assert (error.code, error.param) == ("video_too_long", "video")
    assert "at 640x360, at most 434 frames (7.2 s at 60 fps)" in error.message
    assert "60 s" not in error.message


def test_edit_clips_are_handed_over_at_1280_px(limits: UploadLimits) -> None:
    clip = decode_video_upload(_clip(1920, 1080, 30, 30), limits, "video")
    assert clip.frames.shape == (30, 720, 1280, 3)


def test_images_are_reduced_to_the_working_size(limits: UploadLimits) -> None:
    image = decode_image_upload(huge_black_png(4096, 4095), limits, "input_reference")
    assert max(image.size) == 2048
    with pytest.raises(InvalidRequest) as refused:  # the outside tester's 40 MP bomb: over the default cap
        decode_image_upload(huge_black_png(6320, 6320), limits, "input_reference")
    assert (refused.value.code, refused.value.param) == ("too_many_pixels", "input_reference")
