"""The video service on a real database and blob folder: ownership, and what a refusal leaves behind."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kinema.config import Settings
from kinema.container import Container
from kinema.services.auth import Principal
from kinema.services.errors import InvalidRequest, NotFound
from kinema.services.options import CreateVideo, EditVideo, ExtendVideo, GenerationOptions, VideoSource


@pytest.fixture
def container(tmp_path: Path, db_url: str, models_dir: Path) -> Container:
    c = Container.from_settings(
        Settings(mode="dev", data_dir=tmp_path, database_url=db_url, models_dir=models_dir, default_model="tiny-wan")
    )
    yield c  # type: ignore[misc]
    c.close()


def png() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((64, 96, 3), 200, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def test_another_owner_sees_nothing(container: Container) -> None:
    videos = container.videos
    mine = videos.create(Principal("alice"), CreateVideo(prompt="alice's", seconds="1", image=png()))
    bob = Principal("bob")
    for attempt in (
        lambda: videos.get("bob", mine.id),
        lambda: videos.delete("bob", mine.id),
        lambda: videos.cancel("bob", mine.id),
        lambda: videos.content_key("bob", mine.id, "video"),
        lambda: videos.remix(bob, mine.id, "bob's", GenerationOptions()),
        lambda: videos.edit(bob, EditVideo(prompt="x", source=VideoSource(video_id=mine.id))),
        lambda: videos.extend(bob, ExtendVideo(prompt="x", seconds="1", source=VideoSource(video_id=mine.id))),
    ):
        with pytest.raises(NotFound) as err:
            attempt()
        assert err.value.status == 404 and mine.id in err.value.message  # the same as a missing id
    assert videos.list("bob", after=None, limit=10, order="desc").rows == []
    assert videos.list("bob", after=mine.id, limit=10, order="asc").rows == []  # paging after it shows nothing
    assert videos.get("alice", mine.id).status == "queued"  # bob's attempts changed nothing


def test_pages_continue_after_a_deleted_video(container: Container) -> None:
    ids = [container.videos.create(Principal("alice"), CreateVideo(prompt=f"p{i}", seconds="1")).id for i in range(5)]
    first = container.videos.list("alice", after=None, limit=2, order="desc")
    assert [r.id for r in first.rows] == ids[::-1][:2] and first.has_more
    container.videos.delete("alice", first.rows[-1].id)  # the page's last id is gone before the next call
    rest = container.videos.list("alice", after=first.rows[-1].id, limit=10, order="desc")
    assert [r.id for r in rest.rows] == ids[::-1][2:] and not rest.has_more


def test_malformed_ids_are_simply_not_found(container: Container) -> None:
    for bad in ("video_\x00abc", "../etc", "video_" + "g" * 32, ""):
        with pytest.raises(NotFound):
            container.videos.get("alice", bad)
    with pytest.raises(InvalidRequest):
        container.videos.list("alice", after="video_\x00", limit=10, order="desc")


def test_delete_removes_row_and_inputs(container: Container) -> None:
    row = container.videos.create(Principal("alice"), CreateVideo(prompt="p", seconds="1", image=png()))
    assert row.input_image_key and container.blobs.exists(row.input_image_key)
    container.videos.delete("alice", row.id)
    with pytest.raises(NotFound):
        container.videos.get("alice", row.id)
    assert not container.blobs.exists(row.input_image_key)


def test_stored_input_image_is_pixels_only(container: Container) -> None:
    img = Image.fromarray(np.full((64, 96, 3), 120, np.uint8))
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"  # Make
    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif.tobytes())
    assert b"SecretCam" in buf.getvalue()
    row = container.videos.create(Principal("alice"), CreateVideo(prompt="p", seconds="1", image=buf.getvalue()))
    assert row.input_image_key is not None
    stored = container.blobs.get(row.input_image_key)
    assert stored.startswith(b"\x89PNG") and b"SecretCam" not in stored


def test_verification_names_the_video_only_to_its_owner(container: Container) -> None:
    from kinema.media.encode import encode_mp4
    from kinema.queue.store import Lease, Outputs

    row = container.videos.create(Principal("alice"), CreateVideo(prompt="p", seconds="1"))
    marks = container.provenance.marks(row.id)
    frames = container.provenance.watermark(np.full((9, 64, 96, 3), 128, np.uint8), marks)
    mp4 = container.provenance.sign(encode_mp4(frames, 8), "video/mp4", model="tiny-wan", marks=marks, created_at=0.0)
    lease = container.queue.claim("w")
    assert lease is not None and lease.video_id == row.id
    assert container.queue.complete(lease, Outputs("a", "b", "c", marks.job_ref, marks.watermark_tag))

    for_alice = container.verification.verify(mp4, owner_id="alice")
    for_bob = container.verification.verify(mp4, owner_id="bob")
    assert for_alice.video_id == row.id and for_alice.verification.c2pa.state == "trusted"
    assert for_bob.video_id is None and for_bob.traced  # bob learns it was made here, not which video
    assert isinstance(lease, Lease)


def test_ids_increase_even_within_a_millisecond() -> None:
    from kinema.services.videos import VIDEO_ID, new_video_id

    ids = [new_video_id() for _ in range(5000)]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert all(VIDEO_ID.match(i) for i in ids)


def test_verify_refuses_an_undecodable_file_as_a_client_error(container: Container) -> None:
    from kinema.media.encode import encode_mp4
    from kinema.services.errors import ServiceError

    mp4 = encode_mp4(np.full((9, 64, 96, 3), 90, np.uint8), 8)
    broken = mp4[:64] + b"\0" * 4000  # an MP4 header, then nothing decodable
    with pytest.raises(ServiceError) as err:
        container.verification.verify(broken, owner_id="alice")
    assert 400 <= err.value.status < 500 and err.value.param == "file"
