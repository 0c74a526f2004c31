"""The typed job payload: the JSON rows have always stored reads back, and the service writes the same JSON."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import update

from kinema.config import Settings
from kinema.container import Container
from kinema.db.models import VideoRow
from kinema.engine.base import DEFAULT_STRENGTH, GenerationRequest
from kinema.media.encode import encode_mp4
from kinema.services.auth import Principal
from kinema.services.jobparams import JobParams
from kinema.services.options import CreateVideo, EditVideo, ExtendVideo, GenerationOptions, VideoSource
from tests.factories import SMALL

# Rows as the service stored them before the payload was typed (same keys, same values).
CREATED = {"seed": 7, "speed": "exact", "num_inference_steps": 2, "guidance_scale": 5.0, "requested_seconds": "1"}
EDITED = {**CREATED, "strength": 0.7, "source_frames": 9, "source_fps": 8.0}
EXTENDED = {**CREATED, "negative_prompt": "blur", "stitch": True, "source_frames": 9, "source_fps": 8.0}


def test_a_payload_round_trips() -> None:
    full = JobParams(
        num_inference_steps=3,
        guidance_scale=1.0,
        seed=11,
        negative_prompt="blur",
        speed="turbo",
        strength=0.4,
        stitch=True,
        requested_seconds="2",
        source_frames=17,
        source_fps=24.0,
    )
    assert JobParams.from_json(full.to_json()) == full
    bare = JobParams(num_inference_steps=3, guidance_scale=1.0)
    assert JobParams.from_json(bare.to_json()) == bare


@pytest.mark.parametrize("stored", [CREATED, EDITED, EXTENDED], ids=["create", "edit", "extend"])
def test_rows_stored_today_read_back_and_write_the_same_json(stored: dict[str, Any]) -> None:
    assert JobParams.from_json(stored).to_json() == stored


def test_an_old_row_without_the_newer_keys_gets_the_defaults() -> None:
    old = JobParams.from_json({"seed": 7, "num_inference_steps": 2, "guidance_scale": 5.0})
    assert old == JobParams(num_inference_steps=2, guidance_scale=5.0, seed=7)
    assert (old.speed, old.strength, old.stitch, old.requested_seconds) == ("exact", None, False, None)
    assert old.edit_strength == DEFAULT_STRENGTH


def test_unknown_keys_are_ignored_so_rows_of_other_versions_still_run() -> None:
    # "fps" is a request option the service never stores; "future" stands for a key a newer version adds.
    read = JobParams.from_json({**CREATED, "fps": 8, "future": [1, 2]})
    assert read == JobParams.from_json(CREATED)
    assert "future" not in read.to_json()


def test_a_row_without_steps_or_with_an_unknown_speed_is_refused() -> None:
    with pytest.raises(KeyError, match="num_inference_steps"):
        JobParams.from_json({"guidance_scale": 5.0})
    with pytest.raises(ValueError, match="'warp'"):
        JobParams.from_json({**CREATED, "speed": "warp"})


def test_the_edit_strength_default_has_one_source() -> None:
    request_default = {f.name: f.default for f in dataclasses.fields(GenerationRequest)}["strength"]
    assert request_default == DEFAULT_STRENGTH
    assert JobParams(num_inference_steps=1, guidance_scale=1.0).edit_strength == DEFAULT_STRENGTH
    assert JobParams(num_inference_steps=1, guidance_scale=1.0, strength=0.2).edit_strength == 0.2


# -- what the video service stores ------------------------------------------------------------------------------


@pytest.fixture
def container(tmp_path: Path, db_url: str, models_dir: Path) -> Iterator[Container]:
    c = Container.from_settings(
        Settings(mode="dev", data_dir=tmp_path, database_url=db_url, models_dir=models_dir, default_model="tiny-wan")
    )
    yield c
    c.close()


def _clip() -> bytes:
    return encode_mp4(np.full((9, 64, 96, 3), 120, np.uint8), 8)


def _complete(c: Container, video_id: str) -> None:
    with c.sessions.begin() as s:
        s.execute(update(VideoRow).where(VideoRow.id == video_id).values(status="completed"))


def test_the_service_stores_each_kind_of_job_as_before(container: Container) -> None:
    videos, alice = container.videos, Principal("alice")
    steps = GenerationOptions(num_inference_steps=3, seed=5)
    created = videos.create(alice, CreateVideo(prompt="a kite", size=SMALL, seconds="1", options=steps))
    assert created.params == {
        "seed": 5,
        "num_inference_steps": 3,
        "guidance_scale": 5.0,
        "speed": "exact",
        "requested_seconds": "1",
    }
    edit = videos.edit(alice, EditVideo(prompt="snow", source=VideoSource(upload=_clip()), options=steps))
    assert set(edit.params) == {*created.params, "strength", "source_frames", "source_fps"}
    assert (edit.params["strength"], edit.params["source_frames"]) == (DEFAULT_STRENGTH, 9)
    extension = videos.extend(
        alice, ExtendVideo(prompt="on", seconds="1", source=VideoSource(upload=_clip()), options=steps)
    )
    assert set(extension.params) == {*created.params, "stitch", "source_frames", "source_fps"}
    assert extension.params["stitch"] is True

    # A remix keeps what the source job was and its settings; a new preset brings its own steps.
    _complete(container, edit.id)
    same = videos.remix(alice, edit.id, "rain", GenerationOptions())
    assert same.params == edit.params
    faster = videos.remix(alice, edit.id, "rain", GenerationOptions(speed="fast"))
    assert faster.params == {**edit.params, "speed": "fast", "num_inference_steps": 4}
