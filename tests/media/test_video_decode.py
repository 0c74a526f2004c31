"""decode_video and read_mp4 on real files made by our encoder and by PyAV directly."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from kinema.media import video_decode
from kinema.media.encode import encode_mp4
from kinema.media.errors import MediaError
from kinema.media.video_decode import DecodedVideo, decode_video, read_mp4
from testkit.media import (
    encode_with_pyav,
    gradient_clip,
    image_bytes,
    repeated_frames_webm,
    size_switch_webm,
)

LIMITS = {"max_bytes": 10_000_000, "max_pixels": 1280 * 720, "max_frames": 100, "max_seconds": 10.0}


def _decode(data: bytes, **limits: float) -> DecodedVideo:
    return decode_video(data, **{**LIMITS, **limits})  # type: ignore[arg-type]


def _refused(data: bytes, code: str, **limits: float) -> MediaError:
    with pytest.raises(MediaError) as caught:
        _decode(data, **limits)
    assert caught.value.code == code, caught.value
    return caught.value


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    return gradient_clip(frames=12, height=96, width=128)


def _count_conversions(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count frames that got converted to RGB (i.e. fully decoded and kept)."""
    calls: list[int] = []
    real = video_decode._upright

    def counting(rgb: np.ndarray, rotation: int) -> np.ndarray:
        calls.append(1)
        return real(rgb, rotation)

    monkeypatch.setattr(video_decode, "_upright", counting)
    return calls


def test_our_mp4_decodes(clip: np.ndarray) -> None:
    video = _decode(encode_mp4(clip, 16))
    assert video.frames.dtype == np.uint8
    assert video.frames.shape == clip.shape
    assert video.fps == 16.0
    assert np.abs(video.frames.astype(int) - clip).mean() < 2.0


@pytest.mark.parametrize(
    ("container_format", "codec"),
    [
        ("webm", "libvpx-vp9"),
        ("webm", "libvpx"),
        ("matroska", "libx264"),
        ("mov", "libx264"),
        ("mp4", "mpeg4"),
    ],
)
def test_third_party_files_decode(clip: np.ndarray, container_format: str, codec: str) -> None:
    video = _decode(encode_with_pyav(clip, 12, container_format=container_format, codec=codec))
    assert video.frames.shape == clip.shape
    assert video.fps == 12.0
    assert np.abs(video.frames.astype(int) - clip).mean() < 8.0


def test_audio_streams_are_ignored(clip: np.ndarray) -> None:
    data = encode_with_pyav(clip, 12, container_format="mp4", codec="libx264", with_audio=True)
    assert _decode(data).frames.shape == clip.shape


def test_display_rotation_is_applied() -> None:
    frames = np.zeros((3, 32, 64, 3), np.uint8)
    frames[:, :, :32] = (220, 30, 30)  # left half red
    frames[:, :, 32:] = (30, 30, 220)
    # -90: the display matrix turns the picture clockwise, as in portrait phone videos.
    video = _decode(encode_with_pyav(frames, 8, container_format="mp4", codec="libx264", rotation=-90))
    assert video.frames.shape == (3, 64, 32, 3)
    assert np.abs(video.frames[:, 8, 16].astype(int) - (220, 30, 30)).max() < 25  # red on top
    assert np.abs(video.frames[:, 56, 16].astype(int) - (30, 30, 220)).max() < 25


@pytest.mark.parametrize(
    "data",
    [
        image_bytes(Image.new("RGB", (8, 8)), "PNG"),
        image_bytes(Image.new("RGB", (8, 8)), "JPEG"),
        b"hello, I am definitely a video.mp4",
        b"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\nfile:///etc/passwd\n",
        b"\x00\x00\x00\x18ftypmif1\x00\x00\x00\x00mif1heic",  # HEIF still image
        b"",
    ],
    ids=["png", "jpeg", "text", "hls-playlist", "heif", "empty"],
)
def test_non_videos_are_refused_by_content(data: bytes) -> None:
    _refused(data, "unsupported_media_type")


def test_audio_only_file_is_refused(clip: np.ndarray) -> None:
    data = encode_with_pyav(clip, 12, container_format="mp4", codec="libx264", video_streams=0, with_audio=True)
    error = _refused(data, "unsupported_media_type")
    assert "it has 0" in error.message


def test_disallowed_codec_in_an_allowed_container_is_refused(clip: np.ndarray) -> None:
    data = encode_with_pyav(clip[:2], 12, container_format="matroska", codec="ffv1")
    _refused(data, "unsupported_media_type")


def test_more_than_one_video_stream_is_refused(clip: np.ndarray) -> None:
    data = encode_with_pyav(clip[:2], 12, container_format="mp4", codec="libx264", video_streams=2)
    error = _refused(data, "unsupported_media_type")
    assert "exactly one video stream" in error.message


def test_oversized_file_is_refused(clip: np.ndarray) -> None:
    data = encode_mp4(clip, 16)
    _refused(data, "file_too_large", max_bytes=len(data) - 1)


def test_too_many_pixels_is_refused_before_any_frame_is_decoded(
    clip: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    conversions = _count_conversions(monkeypatch)
    _refused(encode_mp4(clip, 16), "too_many_pixels", max_pixels=128 * 96 - 1)
    assert conversions == []
    assert _decode(encode_mp4(clip, 16), max_pixels=128 * 96).frames.shape == clip.shape


def test_too_many_frames_is_refused(clip: np.ndarray) -> None:
    data = encode_mp4(clip, 16)  # 12 frames
    _refused(data, "video_too_long", max_frames=11)
    assert len(_decode(data, max_frames=12).frames) == 12


def test_too_many_seconds_is_refused(clip: np.ndarray) -> None:
    data = encode_mp4(clip, 4)  # 12 frames at 4 fps: the last one starts at 2.75 s
    _refused(data, "video_too_long", max_seconds=2.75)
    assert len(_decode(data, max_seconds=2.8).frames) == 12


@pytest.mark.parametrize(("limit", "value"), [("max_frames", 5), ("max_seconds", 5 / 12)])
def test_length_limits_stop_decoding_early(
    clip: np.ndarray, monkeypatch: pytest.MonkeyPatch, limit: str, value: float
) -> None:
    # WebM headers carry no per-stream frame count or duration, so only the check made
    # while decoding can catch this; it must stop at the limit, not decode all 36 frames.
    data = encode_with_pyav(np.concatenate([clip] * 3), 12, container_format="webm", codec="libvpx-vp9")
    conversions = _count_conversions(monkeypatch)
    _refused(data, "video_too_long", **{limit: value})
    assert len(conversions) == 5


@pytest.mark.parametrize(
    "data",
    [
        b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + np.random.default_rng(0).bytes(4000),
        b"\x1a\x45\xdf\xa3" + np.random.default_rng(1).bytes(4000),
    ],
    ids=["mp4-header-then-garbage", "ebml-header-then-garbage"],
)
def test_garbage_behind_a_valid_signature_is_corrupt(data: bytes) -> None:
    _refused(data, "corrupt_media")


def test_corrupted_payload_is_corrupt(clip: np.ndarray) -> None:
    data = bytearray(encode_mp4(clip, 16))
    moov = data.find(b"moov")
    data[moov + 8 :] = np.random.default_rng(2).bytes(len(data) - moov - 8)  # trash the index
    _refused(bytes(data), "corrupt_media")


def test_read_mp4_decodes_our_own_files_without_limits() -> None:
    long_clip = gradient_clip(frames=40, height=48, width=64)
    video = read_mp4(encode_mp4(long_clip, 24))
    assert video.frames.shape == long_clip.shape
    assert video.fps == 24.0
    assert np.abs(video.frames[-1].astype(int) - long_clip[-1]).mean() < 3.0


def test_total_pixel_cap_bounds_decoded_memory() -> None:
    """A small file that would decode to more than ``max_total_pixels`` is refused while decoding."""
    import io as _io

    import av as _av
    import numpy as _np
    import pytest as _pytest

    from kinema.media.errors import MediaError as _MediaError
    from kinema.media.video_decode import decode_video as _decode

    buf = _io.BytesIO()
    with _av.open(buf, "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=8)
        stream.width, stream.height, stream.pix_fmt = 256, 256, "yuv420p"
        for _ in range(40):  # 40 x 65536 = 2.6 M pixels, a few KB as H.264
            for packet in stream.encode(_av.VideoFrame.from_ndarray(_np.zeros((256, 256, 3), _np.uint8), "rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    data = buf.getvalue()
    kwargs = {"max_bytes": 10**7, "max_pixels": 10**7, "max_frames": 1000, "max_seconds": 60}
    assert _decode(data, **kwargs).frames.shape[0] == 40
    with _pytest.raises(_MediaError) as err:
        _decode(data, **kwargs, max_total_pixels=20 * 65536)
    assert err.value.code == "video_too_long"


# -- budgets on every decoded frame's real size, and the scaling decoder (issue 9) ----------------------------


def test_a_resolution_switch_is_refused_at_the_first_changed_frame(monkeypatch: pytest.MonkeyPatch) -> None:
    # The outside tester's bomb: the header (and the first frame) say 16x16, then come 1080p frames.
    # Before, all of them were converted and kept (+2.7 GB) and the switch was noticed at the end.
    data = size_switch_webm(frames=60)
    assert len(data) < 20_000
    conversions = _count_conversions(monkeypatch)
    error = _refused(data, "unsupported_media_type", max_pixels=1920 * 1080, max_total_pixels=10**9)
    assert "resolution changes" in error.message
    assert len(conversions) == 1  # only the 16x16 frame


def test_the_pixel_budget_stops_at_the_frame_that_would_exceed_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # WebM carries no frame count, so only the running budget can stop this clip, and it must do so
    # before converting the frame that does not fit.
    data = repeated_frames_webm([(np.full((256, 256, 3), 90, np.uint8), 40)], fps=10)
    conversions = _count_conversions(monkeypatch)
    error = _refused(data, "video_too_long", max_total_pixels=20 * 256 * 256 + 100)
    assert len(conversions) == 20
    assert "at 256x256, at most 20 frames (2.0 s at 10 fps)" in error.message
    assert "decoding budget" in error.message
    assert len(_decode(data, max_total_pixels=40 * 256 * 256).frames) == 40


def test_the_pixel_budget_is_refused_from_a_truthful_header_before_decoding(
    clip: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    conversions = _count_conversions(monkeypatch)
    error = _refused(encode_mp4(clip, 16), "video_too_long", max_total_pixels=11 * 128 * 96)
    assert "at most 11 frames" in error.message
    assert conversions == []


@pytest.mark.parametrize(
    ("limit", "value", "named", "not_named"),
    [("max_frames", 5, "more than 5 frames", " s,"), ("max_seconds", 0.5, "more than 0.5 s", "frames")],
)
def test_the_too_long_error_names_the_limit_that_was_hit(
    clip: np.ndarray, limit: str, value: float, named: str, not_named: str
) -> None:
    # Before, a clip over one limit was told both ("at most N frames and 60 s"), even a 5 s clip.
    data = encode_with_pyav(clip, 12, container_format="webm", codec="libvpx-vp9")  # no header count
    error = _refused(data, "video_too_long", **{limit: value})
    assert named in error.message
    assert not_named not in error.message


def test_max_side_scales_every_frame_while_decoding() -> None:
    big = gradient_clip(frames=6, height=540, width=960)
    video = _decode(encode_mp4(big, 12), max_pixels=960 * 540, max_side=480)
    assert video.frames.shape == (6, 270, 480, 3)
    expected = np.stack([np.asarray(Image.fromarray(f).resize((480, 270), Image.Resampling.BOX)) for f in big])
    assert np.abs(video.frames.astype(int) - expected).mean() < 3.0
    # Smaller than max_side: untouched.
    assert _decode(encode_mp4(big, 12), max_pixels=960 * 540, max_side=960).frames.shape == big.shape


def test_max_side_applies_to_the_long_side_of_portrait_clips() -> None:
    # A phone's portrait clip: stored 128x96 with a display rotation, handed over upright and scaled.
    frames = gradient_clip(frames=4, height=96, width=128)
    data = encode_with_pyav(frames, 8, container_format="mp4", codec="libx264", rotation=90)
    video = _decode(data, max_side=64)
    assert video.frames.shape == (4, 64, 48, 3)


def test_the_budget_counts_frames_at_their_scaled_size() -> None:
    # 30 frames of 1280x720 scaled to 640x360: 6.9 M pixels kept, although 27.6 M were decoded.
    data = repeated_frames_webm([(np.full((720, 1280, 3), 128, np.uint8), 30)])
    kept = 30 * 640 * 360
    assert _decode(data, max_side=640, max_total_pixels=kept).frames.shape == (30, 360, 640, 3)
    _refused(data, "video_too_long", max_side=640, max_total_pixels=kept - 1)


def test_frames_are_not_copied_into_a_second_array() -> None:
    # The frames land in one buffer as they are decoded; np.stack over a list would double the peak.
    data = repeated_frames_webm([(np.full((64, 64, 3), 128, np.uint8), 8)])
    video = _decode(data, max_total_pixels=100 * 64 * 64)
    assert video.frames.shape == (8, 64, 64, 3)
    assert video.frames.base is not None and video.frames.base.shape[0] == 100


def _webm_with_a_millisecond_rate(fps: int, frames: int) -> bytes:
    """A WebM like a browser's MediaRecorder writes: no real frame rate in the header (1 ms units, so FFmpeg
    reports 1000 fps), frames stamped ``fps`` times a second."""
    import io
    from fractions import Fraction

    import av

    buffer = io.BytesIO()
    with av.open(buffer, "w", format="webm") as container:
        stream = container.add_stream("libvpx", rate=1000)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        for index in range(frames):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), index * 8, np.uint8), format="rgb24")
            frame.pts, frame.time_base = round(index * 1000 / fps), Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return buffer.getvalue()


def test_a_header_without_a_real_frame_rate_gets_the_rate_its_timestamps_show() -> None:
    data = _webm_with_a_millisecond_rate(fps=15, frames=30)
    decoded = _decode(data, max_total_pixels=10**8)
    assert decoded.frames.shape[0] == 30
    assert decoded.fps == pytest.approx(15, rel=0.01)  # not the header's 1000


def test_a_truthful_header_rate_is_kept(clip: np.ndarray) -> None:
    decoded = _decode(encode_with_pyav(clip, 12, container_format="webm", codec="libvpx"), max_total_pixels=10**8)
    assert decoded.fps == 12
