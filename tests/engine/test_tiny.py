"""The tiny-wan miniatures: what is on disk, and that it loads like a real Wan checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kinema.engine.frames import fit_image, fit_video, to_uint8
from kinema.engine.layout import BUILT_MARKER
from kinema.engine.tiny import TINY_BUILD_VERSION, build_tiny_models, tiny_models_built


def test_build_layout_marker_and_readme(models_dir: Path) -> None:
    root = models_dir / "tiny-wan"
    for task in ("t2v", "i2v", "vace"):
        assert (root / task / "model_index.json").is_file()
    assert json.loads((root / BUILT_MARKER).read_text())["version"] == TINY_BUILD_VERSION
    readme = (root / "README.txt").read_text()
    assert "RANDOM WEIGHTS" in readme and "NOT MEANINGFUL" in readme


def test_a_complete_build_is_not_rebuilt(models_dir: Path) -> None:
    marker = models_dir / "tiny-wan" / BUILT_MARKER
    before = marker.stat().st_mtime_ns
    assert build_tiny_models(models_dir) is False
    assert marker.stat().st_mtime_ns == before
    assert tiny_models_built(models_dir)


def test_a_build_of_another_version_does_not_count(models_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "tiny-wan").mkdir()
    for task in ("t2v", "i2v", "vace"):
        (tmp_path / "tiny-wan" / task).mkdir()
        (tmp_path / "tiny-wan" / task / "model_index.json").write_text("{}")
    (tmp_path / "tiny-wan" / BUILT_MARKER).write_text(json.dumps({"version": TINY_BUILD_VERSION - 1}))
    assert not tiny_models_built(tmp_path)


def test_checkpoints_load_as_the_real_wan_classes(models_dir: Path) -> None:
    import torch
    from diffusers import WanImageToVideoPipeline

    pipe = WanImageToVideoPipeline.from_pretrained(models_dir / "tiny-wan" / "i2v", local_files_only=True)
    assert type(pipe.transformer).__name__ == "WanTransformer3DModel"
    assert type(pipe.vae).__name__ == "AutoencoderKLWan"
    assert type(pipe.text_encoder).__name__ == "UMT5EncoderModel"
    assert type(pipe.image_encoder).__name__ == "CLIPVisionModel"
    assert type(pipe.scheduler).__name__ == "UniPCMultistepScheduler"
    assert pipe.transformer.config.image_dim == pipe.image_encoder.config.hidden_size
    # the in-code tokenizer came back through from_pretrained and behaves like UMT5's: ids end with </s>,
    # padding is id 0, unknown characters map to <unk>
    ids = pipe.tokenizer("A cat on the beach", padding="max_length", max_length=12, return_tensors="pt")
    assert ids.input_ids.shape == (1, 12)
    row = ids.input_ids[0].tolist()
    eos = row.index(1)
    assert row[eos + 1 :] == [0] * (len(row) - eos - 1)
    assert pipe.tokenizer.convert_ids_to_tokens(row[:2]) == ["\u2581a", "\u2581cat"]
    assert 2 in pipe.tokenizer("\u732b").input_ids  # a character outside the vocabulary
    assert torch.equal(ids.attention_mask[0], (ids.input_ids[0] != 0).long())


def test_fit_image_crops_to_cover_without_stretching() -> None:
    wide = Image.new("RGB", (300, 100), (0, 0, 0))
    wide.paste((255, 255, 255), (100, 0, 200, 100))  # a white square in the middle
    fitted = fit_image(wide, 96, 64)
    assert fitted.size == (96, 64)
    # covering 96x64 from 300x100 keeps the centre 150x100: the white square fills 2/3 of the width
    row = np.asarray(fitted)[32, :, 0]
    assert (row > 128).sum() == pytest.approx(64, abs=2)


def test_fit_video_trims_long_clips_and_holds_the_last_frame_of_short_ones() -> None:
    frames = [Image.new("RGB", (10, 10), (i, i, i)) for i in range(5)]
    assert [f.getpixel((0, 0))[0] for f in fit_video(frames, 3, 16, 16)] == [0, 1, 2]
    assert [f.getpixel((0, 0))[0] for f in fit_video(frames, 7, 16, 16)] == [0, 1, 2, 3, 4, 4, 4]
    with pytest.raises(ValueError):
        fit_video([], 3, 16, 16)


def test_to_uint8_rounds_and_clips() -> None:
    out = to_uint8(np.array([-0.5, 0.0, 0.5, 1.0, 1.5], dtype=np.float32))
    assert out.dtype == np.uint8
    assert out.tolist() == [0, 0, 128, 255, 255]
