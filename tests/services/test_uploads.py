"""The upload decoders with the default caps: what phones and webcams record is accepted, bombs are not."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from kinema.config import Settings
from kinema.media.encode import encode_mp4
from kinema.media.video_decode import read_mp4
from kinema.services.errors import InvalidRequest, UnsupportedMediaType
from kinema.services.generation import _pick_frames
from kinema.services.uploads import (
    GUARD_FRAMES,
    UploadLimits,
    decode_analysis_clip,
    decode_image_upload,
    decode_video_upload,
    reencode_video_upload,
    source_of_video,
)
from testkit.media import encode_with_pyav, huge_black_png, repeated_frames_webm, size_switch_webm


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


# -- edit and extension sources: streamed, not held (issue 9, section 2) ---------------------------------------


def _moving_clip(width: int, height: int, frames: int) -> np.ndarray:
    """A gradient that pans, so that every frame differs (and the encoder has real work)."""
    x = np.arange(width, dtype=np.int32)[None, :]
    y = np.arange(height, dtype=np.int32)[:, None]
    clip = np.empty((frames, height, width, 3), np.uint8)
    for t in range(frames):
        clip[t, ..., 0] = (x * 2 + t * 9) % 256
        clip[t, ..., 1] = (y * 3 + t * 5) % 256
        clip[t, ..., 2] = ((x + y) // 2 + t * 13) % 256
    return clip


def test_an_upload_is_reencoded_as_it_is_decoded_into_the_same_file_as_before(limits: UploadLimits) -> None:
    # Before, the whole clip was decoded into memory and then encode_mp4 made source.mp4 of it: the streamed
    # re-encoding must make that same file, byte for byte (odd sides padded alike), and the same frame count.
    upload = encode_with_pyav(_moving_clip(97, 61, 23), 12, container_format="webm", codec="libvpx")
    held = decode_video_upload(upload, limits, "video")
    source = reencode_video_upload(upload, limits, "video")
    assert source.mp4 == encode_mp4(held.frames, max(1, round(held.fps)))
    assert (source.frame_count, source.width, source.height, source.fps) == (23, 97, 61, held.fps)
    # The face guard still sees frames spread over the clip (read back from the re-encoded file).
    assert len(source.guard_frames) == GUARD_FRAMES
    picks = np.linspace(0, 22, GUARD_FRAMES).round().astype(int)
    for frame, index in zip(source.guard_frames, picks, strict=True):
        assert frame.shape == (61, 97, 3)
        assert np.abs(frame.astype(int) - held.frames[index]).mean() < 6  # that frame, through CRF 20


def test_a_completed_video_as_source_is_measured_without_keeping_frames() -> None:
    mp4 = encode_mp4(_moving_clip(64, 48, 17), 16)
    source = source_of_video(mp4)
    decoded = read_mp4(mp4)
    assert (source.frame_count, source.width, source.height, source.fps) == (17, 64, 48, decoded.fps)
    assert source.mp4 is mp4 and source.guard_frames == []


def test_reencoding_refuses_what_decoding_refuses(limits: UploadLimits) -> None:
    with pytest.raises(UnsupportedMediaType) as switched:  # 16x16, then 1080p: refused at the change
        reencode_video_upload(size_switch_webm(frames=20), limits, "video")
    assert (switched.value.code, switched.value.param) == ("unsupported_media_type", "video")
    tight = dataclasses.replace(limits, max_video_total_pixels=1280 * 720 * 10)
    with pytest.raises(InvalidRequest) as long:  # 30 frames of 720p, 10 fit the budget
        reencode_video_upload(_clip(1280, 720, 30, 30), tight, "video")
    assert (long.value.code, long.value.param) == ("video_too_long", "video")


def _status_mb(field: str) -> float:
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith(field + ":"))
    return int(line.split()[1]) / 1024


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads this process's memory from /proc")
def test_reencoding_a_clip_at_the_budget_holds_one_frame_not_the_clip(limits: UploadLimits) -> None:
    # 100 frames of 1280x720 (92 M pixels, under the 100 M budget): 276 MB as RGB, which the old decoder held
    # (measured: +268 MB peak resident memory; streamed, +2 MB once the codecs are loaded, +43 MB the first time).
    upload = _clip(1280, 720, 100, 25)
    before = _status_mb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # the peak (VmHWM) starts again from here
    source = reencode_video_upload(upload, limits, "video")
    peak = _status_mb("VmHWM") - before
    assert source.frame_count == 100
    assert peak < 100, f"peak resident memory +{peak:.0f} MB"


def _old_pick(mp4: bytes, fps: int, size: tuple[int, int], count: int | None) -> list[np.ndarray]:
    """What the worker did before: the whole clip decoded, then frames resampled to ``fps`` and fitted."""
    clip = read_mp4(mp4)
    n = clip.frames.shape[0]
    count = max(1, round(n / clip.fps * fps)) if count is None else count
    idx = [min(n - 1, round(i * clip.fps / fps)) for i in range(count)]
    return [
        np.asarray(ImageOps.fit(Image.fromarray(f), size, method=Image.Resampling.LANCZOS)) for f in clip.frames[idx]
    ]


@pytest.mark.parametrize("src_fps", [8, 16, 25])
@pytest.mark.parametrize("count", [None, 5, 30], ids=["extension-prefix", "edit-short", "edit-past-the-end"])
def test_the_worker_picks_the_same_frames_streaming(src_fps: int, count: int | None) -> None:
    mp4 = encode_mp4(_moving_clip(80, 48, 19), src_fps)
    picked = _pick_frames(mp4, 16, (40, 40), count)
    expected = _old_pick(mp4, 16, (40, 40), count)
    assert len(picked) == len(expected)
    for mine, theirs in zip(picked, expected, strict=True):
        assert np.array_equal(np.asarray(mine), theirs)
