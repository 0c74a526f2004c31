"""The likeness service in process, on a real database and real face photos: a revocation between
enqueue and a worker's start stops the job, retention sweeps shred, restrictions bind other users,
the key rotation keeps likenesses readable; uploads showing a likeness are sealed under its key,
deleting it deletes every video that used it (anyone's; the owner's kept on request), and no copy of
its data is left in SQLite's files or the key store."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select, update

from kinema.config import Settings
from kinema.container import Container
from kinema.crypto import CryptoError
from kinema.db.models import CharacterRow
from kinema.queue.worker import JobContext
from kinema.services.auth import Principal
from kinema.services.characters import CONSENT_VERSION, ConsentInput, Permissions
from kinema.services.moderation import ModerationBlocked
from kinema.services.options import CreateVideo, GenerationOptions
from testkit.faces.clips import encode_h264, head_turn_clip
from testkit.faces.photos import faces_dir, photo
from tests.factories import SMALL

FAST = GenerationOptions(num_inference_steps=1)


@pytest.fixture
def container(tmp_path: Path, models_dir: Path) -> Iterator[Container]:
    if not (faces_dir() / "obama_1.jpg").is_file():
        pytest.skip(f"face test photographs not found at {faces_dir()} (set KINEMA_TEST_FACES)")
    c = Container.from_settings(
        Settings(
            data_dir=tmp_path,
            database_url=f"sqlite:///{tmp_path / 'k.db'}",
            models_dir=models_dir,
            default_model="tiny-wan",
            password_hash_memory_kib=19456,
            password_hash_time_cost=2,
        )
    )
    yield c
    c.close()


def _user(c: Container, email: str) -> Principal:
    row = c.users.create_user(email, "a long enough password")
    return Principal(row.id, cohort=row.cohort)


def _enrol(c: Container, who: Principal, name: str) -> CharacterRow:
    challenge = c.enrolment.new_challenge(who)
    # An honest head turn rendered in 3D from one photograph (testkit/faces/clips.py, a stand-in for real footage).
    frames = head_turn_clip(challenge.moves, "obama_1", seconds=3.5, fps=15, seed=3, amplitudes=(30, 30))
    return c.enrolment.enrol(
        who,
        name=name,
        video=encode_h264(frames, 15),
        challenge_id=challenge.id,
        consent=ConsentInput(CONSENT_VERSION, ["generation", "matching"], 365, "Barack Obama"),
    )


def test_revocation_after_enqueue_stops_the_job_at_the_worker(container: Container) -> None:
    c = container
    alice, bob = _user(c, "alice@example.com"), _user(c, "bob@example.com")
    likeness = _enrol(c, alice, "barack")
    c.likenesses.set_permissions(alice, likeness.id, Permissions(visibility="users", allowed_users=[bob.id]))
    video = c.videos.create(bob, CreateVideo(prompt="@barack on a boat", size=SMALL, seconds="1", options=FAST))
    assert video.characters == [likeness.id] and video.task == "vace"  # tiny-wan puts the likeness in the scene
    # A worker claims it, then the owner revokes before the model runs.
    lease = c.queue.claim("w")
    assert lease is not None
    c.likenesses.revoke(alice, likeness.id)
    assert c.videos.get(bob.id, video.id).cancel_requested  # a running job is told to stop at its next step
    c.runner.run(JobContext(c.queue, lease, 0.05))
    row = c.videos.get(bob.id, video.id)
    assert (row.status, row.error_code) == ("failed", "likeness_not_permitted")


def test_revocation_cancels_queued_jobs_and_refunds(container: Container) -> None:
    c = container
    alice, bob = _user(c, "alice@example.com"), _user(c, "bob@example.com")
    likeness = _enrol(c, alice, "barack")
    c.likenesses.set_permissions(alice, likeness.id, Permissions(visibility="everyone"))
    queued = c.videos.create(bob, CreateVideo(prompt="@barack waves", size=SMALL, seconds="1", options=FAST))
    unrelated = c.videos.create(bob, CreateVideo(prompt="a beach", size=SMALL, seconds="1", options=FAST))
    c.likenesses.set_permissions(alice, likeness.id, Permissions(visibility="private"))
    assert c.videos.get(bob.id, queued.id).error_code == "likeness_not_permitted"
    assert c.videos.get(bob.id, unrelated.id).status == "queued"


def test_restrictions_bind_other_users_not_the_owner(container: Container) -> None:
    c = container
    alice, bob = _user(c, "alice@example.com"), _user(c, "bob@example.com")
    likeness = _enrol(c, alice, "barack")
    c.likenesses.set_permissions(
        alice, likeness.id, Permissions(visibility="everyone", restrictions="politics, election campaign")
    )
    with pytest.raises(ModerationBlocked) as err:
        c.videos.create(
            bob, CreateVideo(prompt="@barack at an Election  C4mpaign rally", size=SMALL, seconds="1", options=FAST)
        )
    assert "likeness_restriction" in err.value.message
    ok = c.videos.create(bob, CreateVideo(prompt="@barack walks a dog", size=SMALL, seconds="1", options=FAST))
    mine = c.videos.create(alice, CreateVideo(prompt="@barack talks politics", size=SMALL, seconds="1", options=FAST))
    assert ok.characters == mine.characters == [likeness.id]


def test_retention_sweep_shreds_unused_and_revoked_likenesses(container: Container) -> None:
    c = container
    alice = _user(c, "alice@example.com")
    likeness = _enrol(c, alice, "barack")
    saved = likeness.descriptor
    assert c.sweep() == []  # fresh: kept
    with c.sessions.begin() as s:  # as if last used 400 days ago
        s.execute(
            update(CharacterRow).where(CharacterRow.id == likeness.id).values(created_at=time.time() - 400 * 86400)
        )
    assert c.sweep() == [likeness.id]
    with pytest.raises(CryptoError):
        c.likeness_erasure.vault.decrypt(likeness.id, saved, "descriptor")
    assert not list((c.settings.data_dir / "blobs").glob("characters/*"))


def test_master_key_rotation_keeps_likenesses_readable(container: Container, tmp_path: Path) -> None:
    from kinema.crypto import SqliteDataKeyStore, open_file_vault, rotate_master_key_file

    c = container
    alice = _user(c, "alice@example.com")
    likeness = _enrol(c, alice, "barack")
    before = c.likeness_erasure.vault.decrypt(likeness.id, likeness.descriptor, "descriptor")
    old_key = c.settings.resolved_master_key.read_bytes()
    _, _, n = rotate_master_key_file(c.settings.resolved_master_key, SqliteDataKeyStore(c.settings.resolved_key_store))
    assert n == 1 and c.settings.resolved_master_key.read_bytes() != old_key
    fresh = open_file_vault(c.settings.resolved_master_key, SqliteDataKeyStore(c.settings.resolved_key_store))
    assert fresh.decrypt(likeness.id, likeness.descriptor, "descriptor") == before


# -- issue 9: inputs sealed under the likeness, deletion takes every video, SQLite keeps no copy --------------


def _png_of(name: str) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(photo(name)).save(buf, format="PNG")
    return buf.getvalue()


def _run_queued(c: Container) -> None:
    """Run every queued job with this process's runner (one at a time, like a worker thread)."""
    while (lease := c.queue.claim("w")) is not None:
        c.runner.run(JobContext(c.queue, lease, 0.05))


def _files(c: Container, prefix: str) -> list[Path]:
    root = c.settings.data_dir / "blobs" / prefix
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_an_upload_showing_a_likeness_is_sealed_under_its_key_and_shredded_with_it(container: Container) -> None:
    from kinema.services.characters import input_purpose
    from kinema.services.errors import NotFound

    c = container
    alice, bob, carol = _user(c, "alice@example.com"), _user(c, "bob@example.com"), _user(c, "carol@example.com")
    likeness = _enrol(c, alice, "barack")
    c.likenesses.set_permissions(alice, likeness.id, Permissions(visibility="everyone"))

    # Bob uploads a photo of the enrolled person: the face guard ties it to the likeness, and it is stored sealed.
    photo_video = c.videos.create(
        bob,
        CreateVideo(prompt="a portrait in the rain", size=SMALL, seconds="1", image=_png_of("obama_1"), options=FAST),
    )
    assert photo_video.characters == [likeness.id] and photo_video.inputs_sealed_by == [likeness.id]
    (stored,) = _files(c, f"inputs/{photo_video.id}")
    sealed = stored.read_bytes()
    assert PNG_SIGNATURE not in sealed and b"IHDR" not in sealed  # no image at rest, not even its header
    opened = c.likeness_erasure.vault.unseal(
        [likeness.id], sealed, input_purpose(f"inputs/{photo_video.id}/input_image.png")
    )
    assert opened.startswith(PNG_SIGNATURE)
    # Bound to its video and slot: the same ciphertext does not open as another video's input.
    with pytest.raises(CryptoError):
        c.likeness_erasure.vault.unseal([likeness.id], sealed, input_purpose("inputs/video_0/input_image.png"))

    _run_queued(c)  # the worker opens it in memory and generates
    assert c.videos.get(bob.id, photo_video.id).status == "completed"
    # A remix copies the input, sealed again under its own blob key.
    remix = c.videos.remix(bob, photo_video.id, "the same portrait at night", FAST)
    assert remix.inputs_sealed_by == [likeness.id]
    (remix_input,) = _files(c, f"inputs/{remix.id}")
    assert PNG_SIGNATURE not in remix_input.read_bytes()
    _run_queued(c)
    assert c.videos.get(bob.id, remix.id).status == "completed"
    # An extension of an uploaded clip of her: the clip is sealed too, and the worker opens it in memory.
    from kinema.media.encode import encode_mp4
    from kinema.services.options import ExtendVideo, VideoSource
    from testkit.faces.photos import clip

    upload = encode_mp4(clip([photo("obama_1")], repeat=6), 6)
    extension = c.videos.extend(
        bob, ExtendVideo(prompt="she walks on", seconds="1", source=VideoSource(upload=upload), options=FAST)
    )
    assert extension.inputs_sealed_by == [likeness.id]
    (clip_input,) = _files(c, f"inputs/{extension.id}")
    assert b"ftyp" not in clip_input.read_bytes()
    _run_queued(c)
    assert c.videos.get(bob.id, extension.id).status == "completed"

    # Alice's own video with her likeness, and Carol's video of nobody: both must survive keep_videos=true.
    own = c.videos.create(alice, CreateVideo(prompt="@barack waves", size=SMALL, seconds="1", options=FAST))
    unrelated = c.videos.create(carol, CreateVideo(prompt="a lighthouse", size=SMALL, seconds="1", options=FAST))
    _run_queued(c)

    done = c.likeness_erasure.delete(alice, likeness.id, keep_videos=True)
    assert (done.videos_deleted, done.videos_kept) == (3, 1)
    for gone in (photo_video, remix, extension):
        with pytest.raises(NotFound):
            c.videos.get(bob.id, gone.id)
        assert _files(c, f"inputs/{gone.id}") == [] and _files(c, f"videos/{gone.id}") == []
    # The saved ciphertext of the input is unreadable: its key is gone.
    with pytest.raises(CryptoError):
        c.likeness_erasure.vault.unseal(
            [likeness.id], sealed, input_purpose(f"inputs/{photo_video.id}/input_image.png")
        )
    assert c.videos.get(alice.id, own.id).status == "completed" and _files(c, f"videos/{own.id}")
    assert c.videos.get(carol.id, unrelated.id).status == "completed" and _files(c, f"videos/{unrelated.id}")


def test_deletion_without_keep_videos_takes_the_owners_videos_too_and_stops_queued_ones(container: Container) -> None:
    from kinema.services.errors import NotFound

    c = container
    alice, bob = _user(c, "alice@example.com"), _user(c, "bob@example.com")
    likeness = _enrol(c, alice, "barack")
    c.likenesses.set_permissions(alice, likeness.id, Permissions(visibility="users", allowed_users=[bob.id]))
    own = c.videos.create(alice, CreateVideo(prompt="@barack waves", size=SMALL, seconds="1", options=FAST))
    _run_queued(c)
    queued = c.videos.create(bob, CreateVideo(prompt="@barack sails", size=SMALL, seconds="1", options=FAST))
    running = c.videos.create(bob, CreateVideo(prompt="@barack rows", size=SMALL, seconds="1", options=FAST))
    lease = c.queue.claim("w")  # a worker holds `queued` (the oldest) when the likeness is deleted
    assert lease is not None and lease.video_id == queued.id

    done = c.likeness_erasure.delete(alice, likeness.id)
    assert (done.videos_deleted, done.videos_kept) == (3, 0)
    for owner, video in ((alice, own), (bob, queued), (bob, running)):
        with pytest.raises(NotFound):
            c.videos.get(owner.id, video.id)
    assert _files(c, "videos") == [] and _files(c, "inputs") == []
    # The claimed job finds its row gone: it stops and leaves nothing behind.
    c.runner.run(JobContext(c.queue, lease, 0.05))
    assert _files(c, "videos") == []
    assert c.queue.claim("w") is None


def test_retention_sweep_and_account_deletion_delete_other_users_videos_of_the_person(container: Container) -> None:
    from kinema.services.errors import NotFound

    c = container
    alice, bob = _user(c, "alice@example.com"), _user(c, "bob@example.com")
    likeness = _enrol(c, alice, "barack")
    c.likenesses.set_permissions(alice, likeness.id, Permissions(visibility="everyone"))
    bobs = c.videos.create(bob, CreateVideo(prompt="@barack on a bike", size=SMALL, seconds="1", options=FAST))
    long_ago = time.time() - 400 * 86400
    with c.sessions.begin() as s:  # as if made and last used 400 days ago
        s.execute(
            update(CharacterRow)
            .where(CharacterRow.id == likeness.id)
            .values(created_at=long_ago, last_used_at=long_ago)
        )
    assert c.sweep() == [likeness.id]
    with pytest.raises(NotFound):
        c.videos.get(bob.id, bobs.id)

    # Account deletion goes the same way: Bob's video made from an upload of Dave's face goes with Dave.
    c.users.create_user("admin@example.com", "a long enough password", role="admin")  # a real deployment's
    dave = _user(c, "dave@example.com")
    daves = _enrol(c, dave, "dave")
    c.likenesses.set_permissions(dave, daves.id, Permissions(visibility="everyone"))
    upload = c.videos.create(
        bob, CreateVideo(prompt="a portrait", size=SMALL, seconds="1", image=_png_of("obama_1"), options=FAST)
    )
    assert upload.inputs_sealed_by == [daves.id]
    c.privacy.delete_account(dave.id)
    with pytest.raises(NotFound):
        c.videos.get(bob.id, upload.id)
    assert _files(c, f"inputs/{upload.id}") == []


def test_deletion_leaves_no_copy_in_sqlite_files_or_the_key_store(container: Container) -> None:
    """secure_delete plus a WAL checkpoint: the descriptor ciphertext, the typed signature and the wrapped data
    key are not in the database, its WAL or the key store's files after the deletion (checked byte by byte)."""
    c = container
    alice = _user(c, "alice@example.com")
    likeness = _enrol(c, alice, "barack")
    signature = "Barack Obama"  # the typed name _enrol signs with
    stored = c.likeness_erasure.vault.store.get(likeness.id)
    assert stored is not None
    needles = {
        "descriptor ciphertext": bytes(likeness.descriptor)[-32:],
        "signature": signature.encode(),
        "wrapped data key": stored.wrapped_key[-32:],
    }
    db = Path(c.settings.resolved_database_url.split("///", 1)[1])
    key_store = c.settings.resolved_key_store

    def raw(*paths: Path) -> bytes:
        return b"".join(p.read_bytes() for base in paths for p in base.parent.glob(base.name + "*") if p.is_file())

    before = raw(db, key_store)
    assert all(n in before for n in needles.values())  # the scan can see them while they exist
    c.likeness_erasure.delete(alice, likeness.id)
    after = {"database": raw(db), "key store": raw(key_store)}
    leaks = [f"{what} in {where}" for what, n in needles.items() for where, data in after.items() if n in data]
    assert leaks == []
    wal = db.with_name(db.name + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0  # checkpointed and truncated


def test_deletion_finds_videos_through_uses_characters_and_sealed_inputs(
    db_url: str, tmp_path: Path, models_dir: Path
) -> None:
    """On SQLite and PostgreSQL, without faces: each of the three ways a video ties to a likeness is enough."""
    from kinema.db.models import CharacterUseRow, VideoRow
    from tests.factories import video_row

    c = Container.from_settings(
        Settings(data_dir=tmp_path, database_url=db_url, models_dir=models_dir, default_model="tiny-wan")
    )
    try:
        cid, other = "char_" + "a" * 24, "char_" + "b" * 24
        for likeness_id, owner in ((cid, "user_alice"), (other, "user_dave")):
            c.likeness_erasure.vault.create(likeness_id)
            with c.sessions.begin() as s:
                s.add(
                    CharacterRow(
                        id=likeness_id,
                        owner_id=owner,
                        name=owner.removeprefix("user_"),
                        status="active",
                        visibility="everyone",
                        allowed_users=[],
                        descriptor=b"x",
                        chip_count=0,
                        created_at=1.0,
                    )
                )
        videos = {
            "by_characters": video_row("video_" + "1" * 32, owner_id="user_bob", characters=[cid]),
            "by_sealed_input": video_row("video_" + "2" * 32, owner_id="user_bob", inputs_sealed_by=[other, cid]),
            "by_usage_log": video_row("video_" + "3" * 32, owner_id="user_carol", status="completed"),
            "owners_own": video_row(
                "video_" + "4" * 32,
                owner_id="user_alice",
                characters=[cid],
                inputs_sealed_by=[cid],
                input_image_key="inputs/video_" + "4" * 32 + "/input_image.png",
                status="completed",
            ),
            "someone_else": video_row("video_" + "5" * 32, owner_id="user_bob", characters=[other]),
        }
        with c.sessions.begin() as s:
            s.add_all(videos.values())
            s.add(
                CharacterUseRow(
                    character_id=cid, video_id=videos["by_usage_log"].id, user_id="user_carol", prompt="p", created_at=1
                )
            )
        for v in videos.values():
            c.blobs.put(f"inputs/{v.id}/input_image.png", b"sealed")
            c.blobs.put(f"videos/{v.id}/1/video.mp4", b"mp4")

        done = c.likeness_erasure.delete(Principal("user_alice"), cid, keep_videos=True)
        assert (done.videos_deleted, done.videos_kept) == (3, 1)
        with c.sessions() as s:
            left = {r.id: r for r in s.scalars(select(VideoRow))}
        assert set(left) == {videos["owners_own"].id, videos["someone_else"].id}
        kept = left[videos["owners_own"].id]
        assert (kept.input_image_key, kept.inputs_sealed_by) == (None, [])  # unreadable now, so gone
        assert _files(c, f"inputs/{kept.id}") == [] and _files(c, f"videos/{kept.id}")
        assert _files(c, f"inputs/{videos['someone_else'].id}") and _files(c, f"videos/{videos['someone_else'].id}")
        for name in ("by_characters", "by_sealed_input", "by_usage_log"):
            gone = videos[name].id
            assert _files(c, f"inputs/{gone}") == [] and _files(c, f"videos/{gone}") == [], name
        assert not c.likeness_erasure.vault.has_key(cid) and c.likeness_erasure.vault.has_key(other)
        # Not the owner: the same 404 as a missing likeness, whatever keep_videos says.
        from kinema.services.errors import NotFound

        with pytest.raises(NotFound):
            c.likeness_erasure.delete(Principal("user_bob"), other, keep_videos=True)
        assert c.likeness_erasure.vault.has_key(other)
    finally:
        c.close()
