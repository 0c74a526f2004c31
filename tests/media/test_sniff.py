"""Format recognition from leading bytes."""

from __future__ import annotations

import pytest

from kinema.media.sniff import sniff_image, sniff_video


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "JPEG"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "PNG"),
        (b"RIFF\x24\x00\x00\x00WEBPVP8L", "WEBP"),
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", None),  # RIFF, but audio
        (b"GIF89a\x01\x00", None),
        (b"BM\x00\x00", None),
        (b"\x89PNG", None),  # a prefix of the signature is not enough
    ],
)
def test_sniff_image(data: bytes, expected: str | None) -> None:
    assert sniff_image(data) == expected


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2", "mov"),
        (b"\x00\x00\x00\x14ftypqt  \x00\x00\x00\x00", "mov"),
        (b"\x00\x00\x00\x08wide\x00\x00\x00\x00mdat", "mov"),  # old QuickTime, no ftyp
        (b"\x1a\x45\xdf\xa3\x9fB\x86\x81\x01", "matroska"),
        (b"\x00\x00\x00\x18ftypavif\x00\x00\x00\x00", None),  # AVIF still image
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00", None),  # HEIC still image
        (b"\x00\x00\x00\x08ftyp", None),  # box too short to hold a brand
        (b"\x00\x00\x01\xba", None),  # MPEG-PS: not allowed
        (b"#EXTM3U\n", None),
    ],
)
def test_sniff_video(data: bytes, expected: str | None) -> None:
    assert sniff_video(data) == expected
