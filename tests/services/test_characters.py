"""The likeness service in process, on a real database and real face photos: a revocation between
enqueue and a worker's start stops the job, retention sweeps shred, restrictions bind other users,
and the key rotation keeps likenesses readable."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import update

from kinema.config import Settings
from kinema.container import Container
from kinema.crypto import CryptoError
from kinema.db.models import CharacterRow
from kinema.media.encode import encode_mp4
from kinema.queue.worker import JobContext
from kinema.services.auth import Principal
from kinema.services.characters import CONSENT_VERSION, ConsentInput, Permissions
from kinema.services.moderation import ModerationBlocked
from kinema.services.options import CreateVideo, GenerationOptions
from tests.faces.photos import clip, faces_dir, photo

TURNED = {"left": "obama_3", "right": "obama_2"}
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
    row = c.accounts.create_user(email, "a long enough password")
    return Principal(row.id, cohort=row.cohort)


def _enrol(c: Container, who: Principal, name: str) -> CharacterRow:
    challenge = c.characters.new_challenge(who)
    frames = clip(
        [photo("obama_1"), photo(TURNED[challenge.moves[0]]), photo("obama_1"), photo(TURNED[challenge.moves[1]])]
    )
    return c.characters.enrol(
        who,
        name=name,
        video=encode_mp4(frames, 6),
        challenge_id=challenge.id,
        consent=ConsentInput(CONSENT_VERSION, ["generation", "matching"], 365, "Barack Obama"),
    )


def test_revocation_after_enqueue_stops_the_job_at_the_worker(container: Container) -> None:
    c = container
    alice, bob = _user(c, "alice@example.com"), _user(c, "bob@example.com")
    likeness = _enrol(c, alice, "barack")
    c.characters.set_permissions(alice, likeness.id, Permissions(visibility="users", allowed_users=[bob.id]))
    video = c.videos.create(bob, CreateVideo(prompt="@barack on a boat", seconds="1", options=FAST))
    assert video.characters == [likeness.id] and video.task == "i2v"
    # A worker claims it, then the owner revokes before the model runs.
    lease = c.queue.claim("w")
    assert lease is not None
    c.characters.revoke(alice, likeness.id)
    assert c.videos.get(bob.id, video.id).cancel_requested  # a running job is told to stop at its next step
    c.runner.run(JobContext(c.queue, lease, 0.05))
    row = c.videos.get(bob.id, video.id)
    assert (row.status, row.error_code) == ("failed", "likeness_not_permitted")


def test_revocation_cancels_queued_jobs_and_refunds(container: Container) -> None:
    c = container
    alice, bob = _user(c, "alice@example.com"), _user(c, "bob@example.com")
    likeness = _enrol(c, alice, "barack")
    c.characters.set_permissions(alice, likeness.id, Permissions(visibility="everyone"))
    queued = c.videos.create(bob, CreateVideo(prompt="@barack waves", seconds="1", options=FAST))
    unrelated = c.videos.create(bob, CreateVideo(prompt="a beach", seconds="1", options=FAST))
    c.characters.set_permissions(alice, likeness.id, Permissions(visibility="private"))
    assert c.videos.get(bob.id, queued.id).error_code == "likeness_not_permitted"
    assert c.videos.get(bob.id, unrelated.id).status == "queued"


def test_restrictions_bind_other_users_not_the_owner(container: Container) -> None:
    c = container
    alice, bob = _user(c, "alice@example.com"), _user(c, "bob@example.com")
    likeness = _enrol(c, alice, "barack")
    c.characters.set_permissions(
        alice, likeness.id, Permissions(visibility="everyone", restrictions="politics, election campaign")
    )
    with pytest.raises(ModerationBlocked) as err:
        c.videos.create(bob, CreateVideo(prompt="@barack at an Election  C4mpaign rally", seconds="1", options=FAST))
    assert "likeness_restriction" in err.value.message
    ok = c.videos.create(bob, CreateVideo(prompt="@barack walks a dog", seconds="1", options=FAST))
    mine = c.videos.create(alice, CreateVideo(prompt="@barack talks politics", seconds="1", options=FAST))
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
        c.characters.vault.decrypt(likeness.id, saved, "descriptor")
    assert not list((c.settings.data_dir / "blobs").glob("characters/*"))


def test_master_key_rotation_keeps_likenesses_readable(container: Container, tmp_path: Path) -> None:
    from kinema.crypto import SqliteDataKeyStore, open_file_vault, rotate_master_key_file

    c = container
    alice = _user(c, "alice@example.com")
    likeness = _enrol(c, alice, "barack")
    before = c.characters.vault.decrypt(likeness.id, likeness.descriptor, "descriptor")
    old_key = c.settings.resolved_master_key.read_bytes()
    _, _, n = rotate_master_key_file(c.settings.resolved_master_key, SqliteDataKeyStore(c.settings.resolved_key_store))
    assert n == 1 and c.settings.resolved_master_key.read_bytes() != old_key
    fresh = open_file_vault(c.settings.resolved_master_key, SqliteDataKeyStore(c.settings.resolved_key_store))
    assert fresh.decrypt(likeness.id, likeness.descriptor, "descriptor") == before
