"""Bounded, allowlisted decoding of user-uploaded images (JPEG, PNG, WebP)."""

from __future__ import annotations

import io
import struct
import warnings
from typing import Final

import numpy as np
from PIL import Image, ImageOps

from kinema.media.errors import MediaError
from kinema.media.sniff import ImageKind, sniff_image

# What Pillow may report after opening each sniffed kind. Pillow opens some camera JPEGs
# (multi-picture, e.g. with a depth map) as "MPO"; the first picture is a plain JPEG.
_PILLOW_FORMATS: Final[dict[ImageKind, frozenset[str]]] = {
    "JPEG": frozenset({"JPEG", "MPO"}),
    "PNG": frozenset({"PNG"}),
    "WEBP": frozenset({"WEBP"}),
}

# What Pillow raises on malformed input varies by plugin; all of these mean "corrupt".
_DECODE_ERRORS: Final = (
    OSError,
    SyntaxError,
    ValueError,
    EOFError,
    IndexError,
    KeyError,
    TypeError,
    struct.error,
)

_BACKGROUND: Final = (255, 255, 255)
_SIXTEEN_BIT_GREY: Final = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N"})


def decode_image(data: bytes, *, max_bytes: int, max_pixels: int) -> Image.Image:
    """Decode an uploaded image into a fully loaded RGB ``PIL.Image``, or raise ``MediaError``.

    Checks, in order, each before any more work is done:

    1. ``len(data) > max_bytes`` -> ``file_too_large``.
    2. The content must be JPEG, PNG or WebP by its magic bytes (names and Content-Type are
       ignored), and Pillow must agree -> else ``unsupported_media_type``.
    3. ``width * height > max_pixels``, read from the header before pixels are decoded, or
       Pillow's own decompression-bomb error/warning -> ``too_many_pixels``.
    4. Truncated or otherwise undecodable data -> ``corrupt_media``.

    Then the EXIF orientation is applied (a phone's portrait photo comes out upright; an
    unreadable EXIF block is ignored rather than refused) and the result is converted to RGB.
    Transparent areas are composited onto white. Animated PNG/WebP: the first frame. The
    result carries pixels only: ``.info`` (EXIF with GPS and device, ICC, text chunks) is empty.
    """
    if len(data) > max_bytes:
        raise MediaError(f"The image is larger than the {max_bytes}-byte limit.", "file_too_large")
    kind = sniff_image(data)
    if kind is None:
        raise MediaError("Only JPEG, PNG and WebP images are accepted.", "unsupported_media_type")
    if kind == "WEBP":
        # Pillow's WebP plugin builds its decoder, which allocates the whole canvas, inside
        # Image.open; so the canvas size has to be checked from the header before that.
        size = _webp_canvas_size(data)
        if size is None:
            raise MediaError("The image file is corrupt.", "corrupt_media")
        _check_pixels(size, max_pixels)

    try:
        # Pillow's own bomb guard warns above Image.MAX_IMAGE_PIXELS and raises above twice
        # that; make the warning an error so both become too_many_pixels. (catch_warnings is
        # not thread-safe before Python 3.14, but a lost or leaked filter only changes whether
        # Pillow's guard warns or raises; our own max_pixels check below does not depend on it.)
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with _open(data, kind, max_pixels) as image:
                rgb = _to_rgb(_upright(image))
            rgb.info = {}
            return rgb
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise MediaError("The image has too many pixels.", "too_many_pixels") from exc
    except MediaError:
        raise
    except _DECODE_ERRORS as exc:
        raise MediaError("The image file is corrupt.", "corrupt_media") from exc


def _open(data: bytes, kind: ImageKind, max_pixels: int) -> Image.Image:
    """Open lazily, check format and size from the header, then decode the pixels."""
    # formats=[kind]: only the plugin for the sniffed format may parse the data.
    image = Image.open(io.BytesIO(data), formats=[kind])
    if image.format not in _PILLOW_FORMATS[kind]:
        raise MediaError("Only JPEG, PNG and WebP images are accepted.", "unsupported_media_type")
    _check_pixels(image.size, max_pixels)
    # The full decode. Raises on truncated data as long as ImageFile.LOAD_TRUNCATED_IMAGES
    # keeps Pillow's default (False); nothing in Kinema should change that global.
    image.load()
    return image


def _check_pixels(size: tuple[int, int], max_pixels: int) -> None:
    width, height = size
    if width < 1 or height < 1:
        raise MediaError("The image file is corrupt.", "corrupt_media")
    if width * height > max_pixels:
        raise MediaError(f"The image is {width}x{height}; at most {max_pixels} pixels are accepted.", "too_many_pixels")


def _upright(image: Image.Image) -> Image.Image:
    try:
        return ImageOps.exif_transpose(image)
    except _DECODE_ERRORS:
        # A malformed EXIF block is common in edited photos; the pixels are still fine.
        return image


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in _SIXTEEN_BIT_GREY:
        # 16-bit greyscale PNG: convert("RGB") would clip every level above 255 to white
        # instead of scaling; keep the top 8 bits.
        levels = np.clip(np.asarray(image).astype(np.int64) >> 8, 0, 255).astype(np.uint8)
        return Image.fromarray(levels).convert("RGB")
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
    if not has_alpha:
        return image.convert("RGB")
    # Dropping alpha would expose whatever colour transparent pixels happen to store
    # (often black); white is what a viewer shows behind them.
    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, _BACKGROUND + (255,))
    return Image.alpha_composite(background, rgba).convert("RGB")


def _webp_canvas_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from a WebP's first chunk header (lossy, lossless or extended)."""
    chunk = data[12:16]
    if chunk == b"VP8X" and len(data) >= 30:
        # 24-bit little-endian "canvas width/height minus one".
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    if chunk == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 " and len(data) >= 30 and data[23:26] == b"\x9d\x01\x2a":
        return int.from_bytes(data[26:28], "little") & 0x3FFF, int.from_bytes(data[28:30], "little") & 0x3FFF
    return None
