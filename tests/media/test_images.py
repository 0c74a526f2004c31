"""decode_image: real files in every allowed format, and each way an upload is refused."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageFile, JpegImagePlugin

from kinema.media.errors import MediaError
from kinema.media.images import decode_image
from testkit.media import huge_black_png, image_bytes, webp_header_claiming

LIMITS = {"max_bytes": 10_000_000, "max_pixels": 4096 * 4096}


def _picture(width: int = 64, height: int = 48) -> Image.Image:
    """Left half red, right half blue: survives lossy codecs and shows rotations."""
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[:, : width // 2] = (220, 30, 30)
    pixels[:, width // 2 :] = (30, 30, 220)
    return Image.fromarray(pixels)


def _refused(data: bytes, code: str, **limits: int) -> MediaError:
    with pytest.raises(MediaError) as caught:
        decode_image(data, **{**LIMITS, **limits})
    assert caught.value.code == code, caught.value
    return caught.value


@pytest.mark.parametrize(
    ("fmt", "mode", "options"),
    [
        ("JPEG", "RGB", {"quality": 95}),
        ("PNG", "RGB", {}),
        ("PNG", "L", {}),
        ("PNG", "P", {}),
        ("WEBP", "RGB", {"quality": 95}),
        ("WEBP", "RGB", {"lossless": True}),
    ],
)
def test_accepted_formats_decode_to_rgb(fmt: str, mode: str, options: dict) -> None:
    source = _picture().convert(mode)
    image = decode_image(image_bytes(source, fmt, **options), **LIMITS)
    assert image.mode == "RGB"
    assert image.size == (64, 48)
    expected = np.asarray(source.convert("RGB")).astype(int)
    assert np.abs(np.asarray(image).astype(int) - expected).mean() < 6


def test_sixteen_bit_greyscale_png_is_scaled_not_clipped() -> None:
    levels = np.linspace(0, 65535, 64 * 48).reshape(48, 64).astype(np.uint16)
    image = decode_image(image_bytes(Image.fromarray(levels), "PNG"), **LIMITS)
    pixels = np.asarray(image).astype(int)
    assert np.abs(pixels[..., 0] - (levels >> 8)).max() <= 1
    assert pixels[24, 32].tolist() == [pixels[24, 32, 0]] * 3  # grey stays grey


def test_transparency_is_composited_on_white() -> None:
    rgba = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    rgba.putpixel((0, 0), (255, 0, 0, 255))
    image = decode_image(image_bytes(rgba, "PNG"), **LIMITS)
    assert image.getpixel((0, 0)) == (255, 0, 0)
    assert image.getpixel((5, 5)) == (255, 255, 255)


@pytest.mark.parametrize("fmt", ["GIF", "BMP", "TIFF", "ICO", "PPM"])
def test_other_image_formats_are_refused_by_content(fmt: str) -> None:
    # The caller may well have been told "photo.png"; only the bytes count.
    error = _refused(image_bytes(_picture(), fmt), "unsupported_media_type")
    assert "JPEG, PNG and WebP" in error.message


@pytest.mark.parametrize(
    "data",
    [
        b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>',
        b"just some text, saved as photo.png",
        b"",
        b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00",  # HEIC
    ],
)
def test_non_images_are_refused(data: bytes) -> None:
    _refused(data, "unsupported_media_type")


def test_oversized_bytes_are_refused_before_anything_else() -> None:
    data = image_bytes(_picture(), "PNG")
    _refused(data, "file_too_large", max_bytes=len(data) - 1)
    _refused(b"GIF89a" + bytes(100), "file_too_large", max_bytes=50)  # size beats format
    assert decode_image(data, **{**LIMITS, "max_bytes": len(data)}).size == (64, 48)


def test_pixel_cap_uses_the_header_and_never_decodes(monkeypatch: pytest.MonkeyPatch) -> None:
    bomb = huge_black_png(20_000, 20_000)
    assert len(bomb) < 100_000  # a small file ...
    # ... that would be 400 megapixels; loading it must never happen. Also show that we
    # don't lean on Pillow's global guard.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)

    def no_decoding(self: ImageFile.ImageFile) -> None:
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    error = _refused(bomb, "too_many_pixels")
    assert "20000x20000" in error.message


def test_pixel_cap_boundary() -> None:
    data = image_bytes(_picture(64, 48), "PNG")
    assert decode_image(data, **{**LIMITS, "max_pixels": 64 * 48}).size == (64, 48)
    _refused(data, "too_many_pixels", max_pixels=64 * 48 - 1)


@pytest.mark.parametrize(
    "size",
    [
        (20_000, 20_000),  # beyond twice Image.MAX_IMAGE_PIXELS: Pillow raises its error
        (10_000, 10_000),  # beyond Image.MAX_IMAGE_PIXELS only: Pillow merely warns
    ],
)
def test_pillows_own_bomb_guard_also_maps_to_too_many_pixels(size: tuple[int, int]) -> None:
    # With a caller limit above Pillow's, it is Pillow's guard that trips.
    _refused(huge_black_png(*size), "too_many_pixels", max_pixels=10**10)


def test_webp_canvas_is_checked_before_pillow_allocates_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # Pillow's WebP decoder allocates the canvas inside Image.open; only our header check
    # stands between a 16384x16384 claim and ~1 GB (Pillow's global guard is off here).
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    error = _refused(webp_header_claiming(16_384, 16_384), "too_many_pixels")
    assert "16384x16384" in error.message


def test_truncated_jpeg_is_corrupt() -> None:
    data = image_bytes(_picture(256, 256), "JPEG", quality=90)
    _refused(data[: len(data) // 2], "corrupt_media")


@pytest.mark.parametrize("magic", [b"\xff\xd8\xff\xe0", b"\x89PNG\r\n\x1a\n", b"RIFF\x00\x01\x00\x00WEBPVP8 "])
def test_garbage_behind_a_valid_signature_is_corrupt(magic: bytes) -> None:
    _refused(magic + np.random.default_rng(1).bytes(2000), "corrupt_media")


def test_exif_orientation_6_is_applied() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    data = image_bytes(_picture(64, 32), "JPEG", quality=95, exif=exif.tobytes())
    image = decode_image(data, **LIMITS)
    assert image.size == (32, 64)
    pixels = np.asarray(image).astype(int)
    # Turning clockwise puts the red left half on top.
    assert np.abs(pixels[8, 16] - (220, 30, 30)).max() < 20
    assert np.abs(pixels[56, 16] - (30, 30, 220)).max() < 20


def test_metadata_is_not_carried_over() -> None:
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # camera make
    image = decode_image(image_bytes(_picture(), "JPEG", exif=exif.tobytes()), **LIMITS)
    assert image.info == {}
    assert image.getexif().get(0x010F) is None


# -- the working size (issue 9): reduced right after decoding, JPEG decoded at reduced scale -------------------


def _photo(width: int, height: int) -> Image.Image:
    """A smooth picture with a red left half and a blue right half, any size, cheaply."""
    return _picture(64, 48).resize((width, height), Image.Resampling.BILINEAR)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_max_side_reduces_the_long_side_and_keeps_the_aspect(fmt: str) -> None:
    image = decode_image(image_bytes(_photo(2400, 1200), fmt), **LIMITS, max_side=1024)
    assert image.size == (1024, 512)
    assert image.mode == "RGB"
    pixels = np.asarray(image).astype(int)
    assert np.abs(pixels[256, 100] - (220, 30, 30)).max() < 30
    assert np.abs(pixels[256, 900] - (30, 30, 220)).max() < 30
    # Already small enough: untouched.
    assert decode_image(image_bytes(_photo(800, 400), fmt), **LIMITS, max_side=1024).size == (800, 400)


def test_a_jpeg_is_decoded_at_a_reduced_scale_not_at_full_size(monkeypatch: pytest.MonkeyPatch) -> None:
    # A 4000x3000 (12 MP) photo for a 1024 working size is decoded by libjpeg at 1/2 scale (2000x1500):
    # the largest of 1/2, 1/4, 1/8 that still leaves 1024 px; the 36 MB full-size RGB never exists.
    decoded_at: list[tuple[int, int]] = []
    real_load = JpegImagePlugin.JpegImageFile.load

    def spy(self: JpegImagePlugin.JpegImageFile) -> object:
        decoded_at.append(self.size)
        return real_load(self)

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "load", spy)
    image = decode_image(image_bytes(_photo(4000, 3000), "JPEG"), **LIMITS, max_side=1024)
    assert decoded_at[0] == (2000, 1500)
    assert image.size == (1024, 768)


def test_exif_orientation_is_applied_after_reducing() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    data = image_bytes(_photo(2000, 1000), "JPEG", quality=95, exif=exif.tobytes())
    image = decode_image(data, **LIMITS, max_side=500)
    assert image.size == (250, 500)
    pixels = np.asarray(image).astype(int)
    assert np.abs(pixels[60, 125] - (220, 30, 30)).max() < 30  # red on top
    assert np.abs(pixels[440, 125] - (30, 30, 220)).max() < 30


def test_a_zero_png_bomb_under_the_cap_comes_out_at_the_working_size() -> None:
    # The outside tester's bomb, scaled down to keep the test light: a 1-bit all-zero PNG, tiny on disk.
    bomb = huge_black_png(4096, 4096)
    assert len(bomb) < 30_000
    image = decode_image(bomb, max_bytes=10**6, max_pixels=4096 * 4096, max_side=2048)
    assert image.size == (2048, 2048)
    assert np.asarray(image).max() == 0


def test_sixteen_bit_greyscale_is_scaled_when_reduced() -> None:
    levels = np.full((400, 800), 40_000, np.uint16)
    image = decode_image(image_bytes(Image.fromarray(levels), "PNG"), **LIMITS, max_side=200)
    assert image.size == (200, 100)
    assert np.abs(np.asarray(image).astype(int) - (40_000 >> 8)).max() <= 1


def test_palette_transparency_is_white_after_reducing() -> None:
    rgba = Image.new("RGBA", (800, 400), (0, 0, 0, 0))
    rgba.paste((255, 0, 0, 255), (0, 0, 400, 400))
    palette = rgba.convert("P", palette=Image.Palette.ADAPTIVE)
    palette.info["transparency"] = palette.getpixel((799, 399))
    image = decode_image(image_bytes(palette, "PNG", transparency=palette.info["transparency"]), **LIMITS, max_side=200)
    assert image.size == (200, 100)
    assert np.abs(np.asarray(image.getpixel((20, 50))) - (255, 0, 0)).max() < 10
    assert image.getpixel((180, 50)) == (255, 255, 255)


def test_webp_has_a_quarter_of_the_pixel_cap() -> None:
    # Pillow's WebP decoder holds about 15 bytes a pixel (two RGBA canvases and the frame): a 16.8 MP WebP
    # peaked at +250 MB where the same PNG took +110 MB and the JPEG +30 MB.
    error = _refused(webp_header_claiming(2049, 2048), "too_many_pixels", max_pixels=4 * 2048 * 2048)
    assert "2049x2048" in error.message and "as WebP" in error.message and "JPEG or PNG" in error.message
    data = image_bytes(_photo(2048, 2048), "WEBP", quality=80)
    assert decode_image(data, **{**LIMITS, "max_pixels": 4 * 2048 * 2048}).size == (2048, 2048)
