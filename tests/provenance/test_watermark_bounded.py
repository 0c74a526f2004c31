"""The watermark reader on large and hostile inputs: decoded by the shared bounded decoders, reduced while read.

Issue 9, section 2: provenance verify of a 16.8 MP PNG took about +285 MB per upload, because the reader decoded
it to full-size RGB, made a float copy and shrank it afterwards. Now the luma is box-reduced band by band (a JPEG
by libjpeg's DCT scaling) to the detector's working size, and the marks must still be found there.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kinema.media.errors import MediaError
from kinema.provenance.watermark import MAX_PIXELS, WatermarkPayload, detect, detect_image, detect_video, embed
from testkit.media import huge_black_png, size_switch_webm
from testkit.watermark_attacks import realistic_clip, x264

PAYLOAD = WatermarkPayload(deployment_id=0x2A2A, job_tag=0x600DF00D)


@pytest.fixture(scope="module")
def marked_1080p() -> np.ndarray:
    """Four marked frames of 1920x1080: the pattern is embedded at twice its size there, and read at half."""
    return embed(realistic_clip(frames=4, height=1080, width=1920, seed=21), PAYLOAD)


def _encoded(rgb: np.ndarray, fmt: str, orientation: int | None = None, **options: object) -> bytes:
    out = io.BytesIO()
    image = Image.fromarray(rgb)
    if orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = orientation
        options["exif"] = exif
    image.save(out, fmt, **options)
    return out.getvalue()


@pytest.mark.parametrize(("fmt", "options"), [("PNG", {"compress_level": 1}), ("JPEG", {"quality": 85})])
def test_a_large_marked_image_is_found_at_the_reduced_size(
    marked_1080p: np.ndarray, fmt: str, options: dict[str, object]
) -> None:
    found = detect_image(_encoded(marked_1080p[0], fmt, **options))
    assert found.found and found.payload == PAYLOAD
    assert found.frame_size == (1920, 1080)  # the image's own size, not the size it was read at


def test_a_portrait_photo_turned_by_exif_is_read_upright(marked_1080p: np.ndarray) -> None:
    # Stored sideways with EXIF orientation 6 ("turn 90 degrees clockwise to show"), as phones do.
    stored = np.ascontiguousarray(np.rot90(marked_1080p[0], k=1))
    found = detect_image(_encoded(stored, "JPEG", orientation=6, quality=90))
    assert found.found and found.payload == PAYLOAD
    assert found.frame_size == (1920, 1080)


def test_a_large_marked_video_is_found_at_the_reduced_size(marked_1080p: np.ndarray) -> None:
    found = detect_video(x264(marked_1080p))
    assert found.found and found.payload == PAYLOAD and found.frames_used == 4
    assert found.frame_size == (1920, 1080)


def test_frames_in_memory_are_read_the_same_way(marked_1080p: np.ndarray) -> None:
    assert detect(marked_1080p).payload == PAYLOAD


def test_a_resolution_change_mid_stream_is_refused() -> None:
    with pytest.raises(MediaError) as switched:  # 16x16 header and first frame, then 1080p
        detect_video(size_switch_webm(frames=3))
    assert switched.value.code == "unsupported_media_type"
    with pytest.raises(MediaError) as bomb:  # then frames over the cap: refused by their real size
        detect_video(size_switch_webm(frames=2, big=(4160, 4160)))
    assert bomb.value.code == "too_many_pixels"
    assert MAX_PIXELS < 4160 * 4160


def test_a_pixel_bomb_image_is_refused_from_its_header() -> None:
    with pytest.raises(MediaError) as refused:
        detect_image(huge_black_png(6320, 6320))
    assert refused.value.code == "too_many_pixels"


def _peak_mb_of(call: object) -> float:
    status = Path("/proc/self/status")

    def field(name: str) -> float:
        return int(next(x for x in status.read_text().splitlines() if x.startswith(name + ":")).split()[1]) / 1024

    before = field("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # the peak (VmHWM) starts again from here
    assert callable(call)
    call()
    return field("VmHWM") - before


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads this process's memory from /proc")
def test_reading_a_16_mp_image_or_a_panorama_takes_no_full_size_copy() -> None:
    # Measured before: +208 MB for the zero 4096x4096 PNG, +640 MB (and 40 s) for the noise panorama, whose
    # 480 px short side allowed no reduction. Now: about +32 MB and +37 MB, the detector's own FFTs included.
    square = huge_black_png(4096, 4096)
    noise = np.random.default_rng(0).integers(0, 256, (480, 34952), dtype=np.uint8)
    panorama = _encoded(noise, "PNG", compress_level=1)
    del noise
    detect_image(huge_black_png(512, 512))  # load what any first call loads
    for data in (square, panorama):
        peak = _peak_mb_of(lambda data=data: detect_image(data))
        assert peak < 100, f"+{peak:.0f} MB"
