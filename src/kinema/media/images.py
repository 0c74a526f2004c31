"""Bounded, allowlisted decoding of user-uploaded images (JPEG, PNG, WebP)."""

from __future__ import annotations

import io
import struct
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import numpy as np
from PIL import Image

from kinema.media.errors import MediaError
from kinema.media.luma import add_reduced, centre_window
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
_RESAMPLEABLE: Final = frozenset({"RGB", "RGBA", "L"})

WORKING_SIDE: Final = 2048
"""Longest side an uploaded image is reduced to right after decoding (``decode_image(max_side=...)``).

Nothing downstream needs more: the largest video any model generates is 1280x720 (an ``input_reference`` is
scaled and cropped to it), and face analysis runs on a smaller copy still. A 12 MP phone photo decoded at full
size is 36 MB of RGB; at 2048 px it is 9 MB, and a JPEG is decoded straight at a reduced scale (see below)."""

WEBP_SHARE: Final = 4
"""A WebP may have this fraction of ``max_pixels`` at most. Pillow decodes every WebP through libwebp's animation
decoder, which keeps two RGBA canvases besides the frame it hands over: about 15 bytes a pixel at the peak
(250 MB for a 16.8 MP WebP) where a PNG needs 4 to 7 and a JPEG, decoded at reduced scale, less."""

# EXIF orientation -> the transpose that makes the picture upright (as ImageOps.exif_transpose does).
_ORIENTATIONS: Final[dict[int, Image.Transpose]] = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def decode_image(data: bytes, *, max_bytes: int, max_pixels: int, max_side: int | None = None) -> Image.Image:
    """Decode an uploaded image into a fully loaded RGB ``PIL.Image``, or raise ``MediaError``.

    Checks, in order, each before any more work is done:

    1. ``len(data) > max_bytes`` -> ``file_too_large``.
    2. The content must be JPEG, PNG or WebP by its magic bytes (names and Content-Type are
       ignored), and Pillow must agree -> else ``unsupported_media_type``.
    3. ``width * height > max_pixels`` (a quarter of it for WebP, see ``WEBP_SHARE``), read from
       the header before pixels are decoded, or Pillow's own decompression-bomb error/warning
       -> ``too_many_pixels``.
    4. Truncated or otherwise undecodable data -> ``corrupt_media``.

    Then the EXIF orientation is applied (a phone's portrait photo comes out upright; an
    unreadable EXIF block is ignored rather than refused) and the result is converted to RGB.
    Transparent areas are composited onto white. Animated PNG/WebP: the first frame. The
    result carries pixels only: ``.info`` (EXIF with GPS and device, ICC, text chunks) is empty.

    With ``max_side``, the picture is reduced (aspect kept) so that neither side exceeds it, right after
    decoding and before anything else is made from it: a JPEG is decoded by libjpeg at 1/2, 1/4 or 1/8
    scale when that still leaves at least ``max_side`` (Pillow's draft mode), so a 12 MP photo never exists
    at full size; other formats are decoded once at full size (at most ``max_pixels``) and reduced at once.
    Without it, the full size is kept (the watermark check needs every pixel).
    """
    if len(data) > max_bytes:
        raise MediaError(f"The image is larger than the {max_bytes}-byte limit.", "file_too_large")
    kind = _checked_kind(data, max_pixels)
    try:
        # Pillow's own bomb guard warns above Image.MAX_IMAGE_PIXELS and raises above twice
        # that; make the warning an error so both become too_many_pixels. (catch_warnings is
        # not thread-safe before Python 3.14, but a lost or leaked filter only changes whether
        # Pillow's guard warns or raises; our own max_pixels check below does not depend on it.)
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with _open(data, kind, max_pixels, max_side) as image:
                orientation = _orientation(image)
                rgb = _to_rgb(_upright(_reduce(_resampleable(image), max_side), orientation))
            rgb.info = {}
            return rgb
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise MediaError("The image has too many pixels.", "too_many_pixels") from exc
    except MediaError:
        raise
    except _DECODE_ERRORS as exc:
        raise MediaError("The image file is corrupt.", "corrupt_media") from exc


@dataclass(frozen=True)
class ReducedLuma:
    """An image's luma, box-reduced by ``factor`` while it was read (see :func:`decode_luma`)."""

    luma: np.ndarray
    """float32 ``(height // factor, width // factor)``, upright; BT.709 luma of the RGB the image shows."""
    width: int
    """Full width of the upright image."""
    height: int
    """Full height of the upright image."""
    factor: int


def decode_luma(
    data: bytes,
    *,
    max_bytes: int,
    max_pixels: int,
    factor_for: Callable[[int, int], int],
    max_side: int | None = None,
) -> ReducedLuma:
    """Decode an uploaded image to its luma, reduced by ``factor_for(height, width)``, or raise ``MediaError``.

    The same checks, in the same order, as :func:`decode_image` (size in bytes, kind by magic bytes, pixels
    from the header, WebP's smaller cap, corrupt data), and the same picture: EXIF orientation applied,
    transparency over white. What differs is what is made of the pixels: never a full-size RGB or float copy.
    A JPEG is decoded by libjpeg straight to its luma (Y) plane, at 1/2, 1/4 or 1/8 scale when that divides
    the factor (DCT scaling: a 16 MP JPEG at factor 8 is decoded as 512x512); other formats are decoded once in
    their own mode and converted and averaged in bands of rows (:func:`kinema.media.luma.add_reduced`).
    With ``max_side``, only the centre of a longer side is read, so that neither side of ``luma`` exceeds it
    (:func:`kinema.media.luma.centre_window`).
    """
    if len(data) > max_bytes:
        raise MediaError(f"The image is larger than the {max_bytes}-byte limit.", "file_too_large")
    kind = _checked_kind(data, max_pixels)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=[kind])
            with image:
                if image.format not in _PILLOW_FORMATS[kind]:
                    raise MediaError("Only JPEG, PNG and WebP images are accepted.", "unsupported_media_type")
                _check_pixels(image.size, max_pixels)
                width, height = image.size
                orientation = _orientation(image)
                factor = max(1, int(factor_for(height, width)))
                scale = 1
                if kind == "JPEG":
                    scale = next(d for d in (8, 4, 2, 1) if factor % d == 0)
                    # Luma only (Y, no colour conversion), at 1/scale by libjpeg's DCT scaling.
                    image.draft("L", (-(-width // scale), -(-height // scale)))
                    scale = max(1, round(width / image.size[0]))
                    if factor % scale:  # libjpeg chose another scale than asked: take the pixels as they come
                        scale = 1
                image.load()
                luma = _reduced_luma(_resampleable(image), factor // scale, max_side)
        luma = _upright_array(luma, orientation)
        if orientation in (5, 6, 7, 8):  # a quarter turn (or a transpose): the sides swap
            width, height = height, width
        return ReducedLuma(luma, width, height, factor)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise MediaError("The image has too many pixels.", "too_many_pixels") from exc
    except MediaError:
        raise
    except _DECODE_ERRORS as exc:
        raise MediaError("The image file is corrupt.", "corrupt_media") from exc


def _reduced_luma(image: Image.Image, factor: int, max_side: int | None) -> np.ndarray:
    """The luma of ``image`` (RGB, RGBA or L) box-reduced by ``factor``, converted a band of rows at a time;
    at most ``max_side`` on either side (the centre)."""
    rows, cols = centre_window(image.size[1], image.size[0], factor, max_side)
    out = np.zeros(((rows.stop - rows.start) // factor, (cols.stop - cols.start) // factor), np.float32)
    step = max(1, (1 << 20) // max(1, (cols.stop - cols.start) * factor)) * factor
    for top in range(rows.start, rows.stop, step):
        bottom = min(top + step, rows.stop)
        band = image.crop((cols.start, top, cols.stop, bottom))
        if band.mode == "RGBA":
            band = _to_rgb(band)
        first = (top - rows.start) // factor
        add_reduced(out[first : first + (bottom - top) // factor], np.asarray(band), factor)
    return out


def _upright_array(luma: np.ndarray, orientation: int) -> np.ndarray:
    """``luma`` turned as EXIF ``orientation`` says (as :func:`_upright` turns an image)."""
    method = _ORIENTATIONS.get(orientation)
    if method is None:
        return luma
    turned = Image.fromarray(luma, "F").transpose(method)
    return np.asarray(turned, np.float32).copy()


def _checked_kind(data: bytes, max_pixels: int) -> ImageKind:
    """The image's kind by its magic bytes; for a WebP, its canvas checked against the caps from the header."""
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
        if size[0] * size[1] > max_pixels // WEBP_SHARE:
            raise MediaError(
                f"The WebP image is {size[0]}x{size[1]}; WebP takes {WEBP_SHARE} times the memory of other "
                f"formats to decode, so at most {max_pixels // WEBP_SHARE} pixels are accepted as WebP. "
                "Send it as JPEG or PNG, or smaller.",
                "too_many_pixels",
            )
    return kind


def _open(data: bytes, kind: ImageKind, max_pixels: int, max_side: int | None) -> Image.Image:
    """Open lazily, check format and size from the header, then decode the pixels."""
    # formats=[kind]: only the plugin for the sniffed format may parse the data.
    image = Image.open(io.BytesIO(data), formats=[kind])
    if image.format not in _PILLOW_FORMATS[kind]:
        raise MediaError("Only JPEG, PNG and WebP images are accepted.", "unsupported_media_type")
    _check_pixels(image.size, max_pixels)
    if max_side is not None and kind == "JPEG":
        # libjpeg's DCT scaling: the largest of 1/2, 1/4, 1/8 that still leaves max_side on the long side.
        width, height = image.size
        longest = max(width, height)
        if longest > max_side:
            image.draft(None, (max(1, width * max_side // longest), max(1, height * max_side // longest)))
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


def _orientation(image: Image.Image) -> int:
    """The EXIF orientation (1 = upright), read before the pixels are reduced."""
    try:
        value = image.getexif().get(0x0112, 1)
    except _DECODE_ERRORS:
        # A malformed EXIF block is common in edited photos; the pixels are still fine.
        return 1
    return value if isinstance(value, int) else 1


def _upright(image: Image.Image, orientation: int) -> Image.Image:
    method = _ORIENTATIONS.get(orientation)
    return image.transpose(method) if method is not None else image


def _resampleable(image: Image.Image) -> Image.Image:
    """The pixels in a mode that can be scaled smoothly (RGB, RGBA or L), converting as little as possible."""
    if image.mode in _SIXTEEN_BIT_GREY:
        # 16-bit greyscale PNG: convert("L") would clip every level above 255 to white
        # instead of scaling; keep the top 8 bits.
        levels = np.asarray(image)
        return Image.fromarray(np.clip(levels >> 8, 0, 255).astype(np.uint8))
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
    if has_alpha:
        # Before scaling: a palette's or tRNS chunk's transparent colour must not be blended into its neighbours.
        return image if image.mode == "RGBA" else image.convert("RGBA")
    if image.mode in ("RGB", "L"):
        return image
    return image.convert("L" if image.mode == "1" else "RGB")


def _reduce(image: Image.Image, max_side: int | None) -> Image.Image:
    """``image`` scaled down (aspect kept) so that neither side exceeds ``max_side``."""
    width, height = image.size
    if max_side is None or max(width, height) <= max_side:
        return image
    scale = max_side / max(width, height)
    size = (max(1, min(max_side, round(width * scale))), max(1, min(max_side, round(height * scale))))
    # reducing_gap: a fast integer box reduction first, then Lanczos over the last factor of 3 or less.
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def _to_rgb(image: Image.Image) -> Image.Image:
    """RGB, always a new image (the caller closes the decoded one); transparency composited onto white."""
    if image.mode != "RGBA":
        return image.convert("RGB")
    # Dropping alpha would expose whatever colour transparent pixels happen to store
    # (often black); white is what a viewer shows behind them.
    background = Image.new("RGBA", image.size, _BACKGROUND + (255,))
    return Image.alpha_composite(background, image).convert("RGB")


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
