"""Recognise upload formats from their leading bytes (never from a filename or Content-Type).

Both functions are deliberately strict allowlists: anything they don't recognise is
``None``, and callers refuse it before any decoder library looks at the data.
"""

from __future__ import annotations

from typing import Literal

ImageKind = Literal["JPEG", "PNG", "WEBP"]
"""Values match Pillow's format names, so they can be passed to ``Image.open(formats=...)``."""

VideoContainer = Literal["mov", "matroska"]
"""Values are FFmpeg demuxer names: ``mov`` reads MP4/MOV, ``matroska`` reads MKV/WebM."""

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_SOI = b"\xff\xd8\xff"
_WEBP_CHUNKS = (b"VP8 ", b"VP8L", b"VP8X")
_EBML_MAGIC = b"\x1a\x45\xdf\xa3"

# QuickTime files from old cameras may start with one of these atoms instead of 'ftyp'.
_QUICKTIME_FIRST_ATOMS = (b"moov", b"mdat", b"wide", b"free", b"skip")

# ISO-BMFF brands of still-image formats (HEIF/HEIC, AVIF). FFmpeg's mov demuxer can open
# them (as one or many tile streams), but they are images, not videos.
_IMAGE_BRANDS = frozenset({b"mif1", b"msf1", b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"avif", b"avis"})


def sniff_image(data: bytes) -> ImageKind | None:
    """Return the image format the bytes start like, or ``None`` if not JPEG/PNG/WebP."""
    if data.startswith(_JPEG_SOI):
        return "JPEG"
    if data.startswith(_PNG_SIGNATURE):
        return "PNG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP" and data[12:16] in _WEBP_CHUNKS:
        return "WEBP"
    return None


def sniff_video(data: bytes) -> VideoContainer | None:
    """Return the demuxer for an MP4/MOV or Matroska/WebM file, or ``None`` for anything else.

    HEIF/AVIF still images (ISO-BMFF like MP4) are ``None``.
    """
    if data.startswith(_EBML_MAGIC):
        return "matroska"
    box_type = data[4:8]
    if box_type == b"ftyp":
        box_size = int.from_bytes(data[0:4], "big")
        major_brand = data[8:12]
        if box_size < 16 or len(major_brand) < 4 or major_brand in _IMAGE_BRANDS:
            return None
        return "mov"
    if box_type in _QUICKTIME_FIRST_ATOMS:
        return "mov"
    return None
