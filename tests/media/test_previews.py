"""Thumbnail (WebP) and spritesheet (JPEG): decode them with Pillow and check size and content."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from kinema.media.previews import make_spritesheet, make_thumbnail, spritesheet_grid
from testkit.media import solid_clip

# Distinct, well separated colours so a tile or thumbnail can be traced back to its frame.
PALETTE = [(int(r), int(g), int(b)) for r, g, b in np.random.default_rng(7).integers(0, 256, (81, 3))]


def _open(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def _closest_frame(pixel: np.ndarray, colours: list[tuple[int, int, int]]) -> int:
    return int(np.argmin([np.abs(pixel - np.array(c)).sum() for c in colours]))


def test_thumbnail_is_a_full_size_webp_of_the_middle_frame() -> None:
    colours = PALETTE[:9]
    image = _open(make_thumbnail(solid_clip(colours, height=48, width=80)))
    assert image.format == "WEBP"
    assert image.size == (80, 48)
    centre = np.asarray(image.convert("RGB"))[24, 40].astype(int)
    assert _closest_frame(centre, colours) == 4


def test_thumbnail_of_a_single_frame() -> None:
    image = _open(make_thumbnail(solid_clip([(10, 200, 10)])))
    assert image.format == "WEBP"
    assert image.size == (64, 48)


@pytest.mark.parametrize(
    ("count", "grid"), [(1, (1, 1)), (2, (2, 1)), (4, (2, 2)), (5, (3, 2)), (10, (4, 3)), (16, (4, 4))]
)
def test_grid_layout(count: int, grid: tuple[int, int]) -> None:
    assert spritesheet_grid(count) == grid


def test_spritesheet_of_81_frames_at_832x480_is_4x4_tiles_of_160x92() -> None:
    clip = np.zeros((81, 480, 832, 3), np.uint8)
    clip[:] = np.array(PALETTE, np.uint8)[:, None, None, :]
    image = _open(make_spritesheet(clip))
    assert image.format == "JPEG"
    assert image.size == (4 * 160, 4 * 92)
    # Tiles are frames round(linspace(0, 80, 16)), left to right, top to bottom.
    pixels = np.asarray(image).astype(int)
    expected = np.linspace(0, 80, 16).round().astype(int)
    for position, frame_index in enumerate(expected):
        row, column = divmod(position, 4)
        centre = pixels[row * 92 + 46, column * 160 + 80]
        assert _closest_frame(centre, PALETTE) == frame_index


def test_fewer_frames_than_tiles_gives_fewer_tiles_and_black_spare_cells() -> None:
    colours = [(220, 40, 40), (40, 220, 40), (40, 40, 220), (220, 220, 40), (220, 40, 220)]
    image = _open(make_spritesheet(solid_clip(colours, height=48, width=64), tiles=16, tile_width=32))
    assert image.size == (3 * 32, 2 * 24)  # 5 tiles: 3 columns x 2 rows
    pixels = np.asarray(image).astype(int)
    for position, colour in enumerate(colours):
        row, column = divmod(position, 3)
        assert np.abs(pixels[row * 24 + 12, column * 32 + 16] - colour).max() < 20
    assert pixels[36, 80].max() < 20  # the sixth cell is empty


def test_custom_tile_count_and_width() -> None:
    clip = solid_clip(PALETTE[:30], height=90, width=160)
    image = _open(make_spritesheet(clip, tiles=6, tile_width=100))
    assert image.size == (3 * 100, 2 * 56)  # round(100 * 90 / 160) = 56


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError):
        make_spritesheet(solid_clip(PALETTE[:3]), tiles=0)
    with pytest.raises(ValueError):
        make_thumbnail(np.zeros((0, 8, 8, 3), np.uint8))
