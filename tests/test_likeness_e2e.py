"""Likenesses end to end on a real server with real face photos: consent, challenge (attempts per
challenge, mirrored recordings), enrolment through the SDK's ``create_character``, impersonation,
permissions, generation with a likeness, the usage log, the face guard on uploads (sealed under the
likeness's key), revocation, a raw-storage scan, and deletion: crypto-shredding and every video of the
person gone, whoever made it."""

from __future__ import annotations

import io
import os
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest
from PIL import Image
from sqlalchemy import select

from kinema.media.encode import encode_mp4
from testkit.faces.clips import encode_h264, head_turn_clip
from testkit.faces.photos import clip, faces_dir, photo
from tests.conftest import Proc, client_for, provision
from tests.factories import SMALL

pytestmark = pytest.mark.slow
FAST = {"num_inference_steps": 1}
# The person's own turns (unmirrored camera): "left" shows the nose toward the image's right.
TURNED = {"left": "obama_3", "right": "obama_2"}


def _photos_present() -> bool:
    return (faces_dir() / "obama_1.jpg").is_file()


@pytest.fixture(autouse=True)
def _photos() -> None:
    if not _photos_present():
        pytest.skip(f"face test photographs not found at {faces_dir()} (set KINEMA_TEST_FACES)")


def _clip_for(moves: list[str], person: str = "obama_1") -> bytes:
    # An honest head turn, rendered in 3D from one photograph (a synthetic stand-in for real footage; see
    # testkit/faces/clips.py): stitched photographs are now refused by liveness as a spliced clip.
    return encode_h264(head_turn_clip(moves, person, seconds=3.5, fps=15, seed=3, amplitudes=(30, 30)), 15)


def _still_clip() -> bytes:
    return encode_mp4(clip([photo("obama_1")], repeat=12), 6)


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _consent(server: Proc, key: str, name: str = "Barack Obama") -> dict[str, object]:
    text = httpx.get(f"{server.base_url}/v1/videos/characters/consent", headers=_auth(key)).json()
    return {
        "text_version": text["version"],
        "purposes": ["generation", "matching"],
        "retention_days": text["max_retention_days"],
        "signature": name,
    }


def _enrol(server: Proc, key: str, name: str, video: bytes | None = None, consent: bool = True):  # type: ignore[no-untyped-def]
    challenge = httpx.post(f"{server.base_url}/v1/videos/characters/challenges", headers=_auth(key)).json()
    body: dict[str, object] = {"challenge_id": challenge["id"]}
    if consent:
        body["consent"] = _consent(server, key)
    return client_for(server, key, timeout=120).videos.create_character(
        name=name, video=("me.mp4", video or _clip_for(challenge["moves"]), "video/mp4"), extra_body=body
    )


def _png(name: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(photo(name)).save(buf, format="PNG")
    return buf.getvalue()


def test_enrolment_refusals_store_nothing(tmp_path: Path, kinema_server) -> None:  # type: ignore[no-untyped-def]
    server = kinema_server(f"sqlite:///{tmp_path / 'k.db'}", workers=0)
    key = server.api_key
    with pytest.raises(openai.BadRequestError) as err:
        _enrol(server, key, "barack", consent=False)
    assert err.value.code == "consent_required"
    with pytest.raises(openai.BadRequestError) as err:
        _enrol(server, key, "barack", video=_still_clip())
    assert err.value.code in ("static_clip", "movement_not_seen")
    # The right movements in the wrong order fail too.
    challenge = httpx.post(f"{server.base_url}/v1/videos/characters/challenges", headers=_auth(key)).json()
    backwards = _clip_for(list(reversed(challenge["moves"])))
    with pytest.raises(openai.BadRequestError) as err:
        client_for(server, key, timeout=120).videos.create_character(
            name="barack",
            video=("me.mp4", backwards, "video/mp4"),
            extra_body={"challenge_id": challenge["id"], "consent": _consent(server, key)},
        )
    assert err.value.code == "movement_not_seen"
    mixed = encode_mp4(clip([photo("obama_1"), photo("biden_1"), photo("obama_3"), photo("obama_2")]), 6)
    with pytest.raises(openai.BadRequestError) as err:
        _enrol(server, key, "barack", video=mixed)
    assert err.value.code in ("face_changed", "multiple_faces")
    assert not (server.data_dir / "blobs" / "characters").exists()
    listed = httpx.get(f"{server.base_url}/v1/videos/characters", headers=_auth(key)).json()
    assert listed["data"] == []


def test_likeness_lifecycle(tmp_path: Path, kinema_server) -> None:  # type: ignore[no-untyped-def]
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    server = kinema_server(f"sqlite:///{tmp_path / 'k.db'}", workers=1, TMPDIR=str(tmp))
    alice_key = server.api_key  # "alice" enrols the Obama photos as her own likeness
    bob_key = provision(server.data_dir, server.db_url, "bob@example.com")
    alice, bob = client_for(server, alice_key, timeout=120), client_for(server, bob_key, timeout=120)
    base = server.base_url

    made = _enrol(server, alice_key, "barack")
    assert made.id and made.id.startswith("char_") and made.name == "barack"
    got = alice.videos.get_character(made.id)
    assert (got.id, got.name) == (made.id, "barack")
    # One likeness per account, and its own.
    with pytest.raises(openai.ConflictError) as err:
        _enrol(server, alice_key, "barack2")
    assert err.value.code == "likeness_exists"
    # Impersonation: Bob enrolling the same face is refused without saying whose it is.
    with pytest.raises(openai.ConflictError) as err:
        _enrol(server, bob_key, "notbarack")
    assert err.value.code == "face_already_enrolled"
    assert "barack" not in str(err.value.body) and made.id not in str(err.value.body)
    # Bob cannot see or use a private likeness: the same 404 as a missing one.
    with pytest.raises(openai.NotFoundError):
        bob.videos.get_character(made.id)
    with pytest.raises(openai.BadRequestError) as err:
        bob.videos.create(prompt="@barack waves", extra_body=FAST)
    assert err.value.code == "likeness_not_found"

    # Alice generates with her likeness: her encrypted reference crop is a reference image of a reference-to-video
    # (vace) job, so she appears inside the scene. A likeness_mode that is not one is refused, naming the field.
    own = alice.videos.create_and_poll(prompt="@barack waves at the sea", size=SMALL, seconds="1", extra_body=FAST)
    assert own.status == "completed", own.error
    assert _task(server, own.id) == "vace"
    with pytest.raises(openai.BadRequestError) as err:
        alice.videos.create(prompt="@barack waves", extra_body={**FAST, "likeness_mode": "inside"})
    assert err.value.param == "likeness_mode"

    # Alice allows Bob; Bob's use shows up in her usage log and as an alert.
    bob_id = httpx.get(f"{base}/v1/me", headers=_auth(bob_key)).json()["user"]["id"]
    r = httpx.post(
        f"{base}/v1/videos/characters/{made.id}/permissions",
        headers=_auth(alice_key),
        json={"visibility": "users", "allowed_users": [bob_id]},
    )
    assert r.status_code == 200 and r.json()["visibility"] == "users"
    assert bob.videos.get_character(made.id).name == "barack"
    theirs = bob.videos.create_and_poll(
        prompt="a portrait", size=SMALL, seconds="1", extra_body={**FAST, "characters": [made.id]}
    )
    assert theirs.status == "completed", theirs.error
    uses = httpx.get(f"{base}/v1/videos/characters/{made.id}/uses", headers=_auth(alice_key)).json()["data"]
    assert [(u["video_id"], u["user_id"]) for u in uses][:2] == [(theirs.id, bob_id), (own.id, uses[1]["user_id"])]
    alerts = httpx.get(f"{base}/v1/alerts", headers=_auth(alice_key)).json()["data"]
    assert any(a["kind"] == "likeness_used" and theirs.id in a["message"] for a in alerts)
    # Bob cannot read Alice's usage log.
    assert httpx.get(f"{base}/v1/videos/characters/{made.id}/uses", headers=_auth(bob_key)).status_code == 404
    # Alice can watch and delete the video Bob made of her.
    content = httpx.get(f"{base}/v1/videos/characters/{made.id}/uses/{theirs.id}/content", headers=_auth(alice_key))
    assert content.status_code == 200 and len(content.content) > 1000
    assert (
        httpx.delete(f"{base}/v1/videos/characters/{made.id}/uses/{theirs.id}", headers=_auth(alice_key)).status_code
        == 200
    )
    with pytest.raises(openai.NotFoundError):
        bob.videos.retrieve(theirs.id)

    # Uploads showing her face, by Bob (allowed): the face guard ties them to her likeness, and they are
    # stored sealed under its key (the raw-storage scan below covers blobs/inputs/), then shredded with it.
    face_ref = bob.videos.create_and_poll(
        prompt="a portrait in the rain",
        size=SMALL,
        seconds="1",
        input_reference=("o.png", _png("obama_1"), "image/png"),
        extra_body=FAST,
    )
    assert face_ref.status == "completed", face_ref.error
    face_edit = bob.videos.edit(
        prompt="make it snow", video=("o.mp4", encode_mp4(clip([photo("obama_1")], repeat=6), 6), "video/mp4")
    )
    inputs = server.data_dir / "blobs" / "inputs"
    assert _files_under(inputs / face_ref.id) and _files_under(inputs / face_edit.id)
    unrelated = bob.videos.create_and_poll(prompt="a lighthouse at dusk", size=SMALL, seconds="1", extra_body=FAST)
    assert unrelated.status == "completed", unrelated.error

    # Face guard: an unknown real face is refused by default.
    with pytest.raises(openai.PermissionDeniedError) as err:
        bob.videos.create(prompt="x", input_reference=("b.png", _png("biden_1"), "image/png"), extra_body=FAST)
    assert err.value.code == "unknown_face"

    # Revocation: Bob's permission ends; his upload of her face and his mention are refused.
    r = httpx.post(f"{base}/v1/videos/characters/{made.id}/revoke", headers=_auth(alice_key))
    assert r.status_code == 200 and r.json()["status"] == "revoked"
    with pytest.raises(openai.PermissionDeniedError) as err:
        bob.videos.create(prompt="x", input_reference=("o.png", _png("obama_2"), "image/png"), extra_body=FAST)
    assert err.value.code == "likeness_not_permitted"
    with pytest.raises((openai.NotFoundError, openai.PermissionDeniedError)):
        bob.videos.create(prompt="x", extra_body={**FAST, "characters": [made.id]})
    consents = httpx.get(f"{base}/v1/videos/characters/{made.id}/consents", headers=_auth(alice_key)).json()["data"]
    assert [c["change"]["op"] for c in consents] == ["enrol", "permissions", "revoke"]
    assert consents[0]["signature"] == "Barack Obama" and consents[0]["purposes"] == ["generation", "matching"]

    # Raw-storage scan: no face image bytes and no descriptor in plaintext anywhere at rest.
    descriptor = _decrypted_descriptor(server, made.id)
    leaks = _scan(server, tmp, descriptor)
    assert leaks == [], leaks
    sprites = list((server.data_dir / "blobs" / "videos").rglob("spritesheet.jpg"))
    assert sprites and any(sig in sprites[0].read_bytes()[:4] for sig in (b"\xff\xd8\xff\xe0", b"\xff\xd8\xff\xe1"))

    # Deletion shreds the key: saved ciphertext is unreadable even with the master key. Only the owner may
    # delete it (keep_videos or not), and every video of the person goes with it, Bob's included.
    saved_descriptor, saved_chip = _ciphertexts(server, made.id)
    saved_input = _files_under(inputs / face_ref.id)[0].read_bytes()
    url = f"{base}/v1/videos/characters/{made.id}"
    assert httpx.delete(url, params={"keep_videos": "true"}, headers=_auth(bob_key)).status_code == 404
    bad = httpx.delete(url, params={"keep_videos": "maybe"}, headers=_auth(alice_key))
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "keep_videos"
    assert alice.videos.get_character(made.id).status == "revoked"  # a refused request changed nothing
    r = httpx.delete(url, params={"keep_videos": "true"}, headers=_auth(alice_key))
    assert r.status_code == 200 and r.json()["deleted"] is True
    assert (r.json()["videos_deleted"], r.json()["videos_kept"]) == (2, 1)
    blobs = server.data_dir / "blobs"
    for gone in (face_ref.id, face_edit.id):
        with pytest.raises(openai.NotFoundError):
            bob.videos.retrieve(gone)
        assert _files_under(blobs / "inputs" / gone) == [] and _files_under(blobs / "videos" / gone) == []
    assert alice.videos.retrieve(own.id).status == "completed"  # keep_videos: her own video stays
    assert len(alice.videos.download_content(own.id).read()) > 1000
    assert bob.videos.retrieve(unrelated.id).status == "completed"  # a video of nobody stays
    from kinema.crypto import CryptoError

    vault = _vault(server)
    with pytest.raises(CryptoError):
        vault.decrypt(made.id, saved_descriptor, "descriptor")
    with pytest.raises(CryptoError):
        vault.decrypt(made.id, saved_chip, "chip:0")
    with pytest.raises(CryptoError):
        vault.unseal([made.id], saved_input, f"input:inputs/{face_ref.id}/input_image.png")
    assert not (server.data_dir / "blobs" / "characters" / made.id).exists()
    with pytest.raises(openai.NotFoundError):
        alice.videos.get_character(made.id)


def _files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def _vault(server: Proc):  # type: ignore[no-untyped-def]
    from kinema.crypto import SqliteDataKeyStore, open_file_vault

    keys = server.data_dir / "keys"
    return open_file_vault(keys / "master.key", SqliteDataKeyStore(keys / "datakeys.db"))


def _task(server: Proc, video_id: str) -> str | None:
    from kinema.db.models import VideoRow
    from kinema.db.session import make_engine, make_session_factory

    engine = make_engine(server.db_url)
    try:
        with make_session_factory(engine)() as s:
            return s.scalar(select(VideoRow.task).where(VideoRow.id == video_id))
    finally:
        engine.dispose()


def _ciphertexts(server: Proc, character_id: str) -> tuple[bytes, bytes]:
    from kinema.db.models import CharacterRow
    from kinema.db.session import make_engine, make_session_factory

    engine = make_engine(server.db_url)
    try:
        with make_session_factory(engine)() as s:
            descriptor = s.scalar(select(CharacterRow.descriptor).where(CharacterRow.id == character_id))
    finally:
        engine.dispose()
    chip = (server.data_dir / "blobs" / "characters" / character_id / "chip-0.bin").read_bytes()
    assert descriptor
    return bytes(descriptor), chip


def _decrypted_descriptor(server: Proc, character_id: str) -> np.ndarray:
    descriptor, _ = _ciphertexts(server, character_id)
    return np.frombuffer(_vault(server).decrypt(character_id, descriptor, "descriptor"), dtype=np.float32)


def _scan(server: Proc, tmp: Path, descriptor: np.ndarray) -> list[str]:
    """Files at rest (data folder: database, blobs with the jobs' inputs, keys, logs; and the server's temp
    folder) that hold image or video file signatures outside generated outputs, or the descriptor's values in
    plaintext."""
    images = {
        "png": b"\x89PNG\r\n\x1a\n",
        "jpeg": b"\xff\xd8\xff\xe0",
        "jpeg-exif": b"\xff\xd8\xff\xe1",
        "mp4": b"ftypisom",  # an uploaded clip kept in plain (blobs/inputs/)
    }
    values = {"descriptor-bytes": descriptor[:8].tobytes(), "descriptor-text": f"{float(descriptor[0]):.6f}".encode()}
    outputs = server.data_dir / "blobs" / "videos"  # generated videos and their previews: not stored face data
    leaks = []
    for root in (server.data_dir, tmp):
        for dirpath, _, names in os.walk(root):
            for n in names:
                path = Path(dirpath) / n
                data = path.read_bytes()
                checks = values if outputs in path.parents else {**images, **values}
                leaks += [f"{path}: {what}" for what, needle in checks.items() if needle in data]
    return leaks


def test_export_and_account_deletion_shred_everything(tmp_path: Path, kinema_server) -> None:  # type: ignore[no-untyped-def]
    import json
    import zipfile

    from tests.conftest import OWNER_EMAIL, PASSWORD

    server = kinema_server(
        f"sqlite:///{tmp_path / 'k.db'}",
        workers=1,
        KINEMA_LIKENESS_RETENTION_DAYS="90",
        KINEMA_WEBHOOK_ALLOW_HTTP="true",
        KINEMA_WEBHOOK_ALLOW_PRIVATE="true",
    )
    base, key = server.base_url, server.api_key
    made = _enrol(server, key, "barack")
    hook = client_for(server, key).webhooks.create(
        name="mine", url="http://127.0.0.1:9/hook?token=t0ken", event_types=["video.failed"]
    )
    video = client_for(server, key, timeout=120).videos.create_and_poll(
        prompt="@barack smiles", size=SMALL, seconds="1", extra_body=FAST
    )
    assert video.status == "completed"

    # The published policy is public and comes from the live settings.
    policy = httpx.get(f"{base}/v1/policy/retention").json()
    assert policy["limits"]["likeness_retention_days"] == 90
    page = httpx.get(f"{base}/policy/retention")
    assert page.status_code == 200 and "at most 90 days" in page.text

    # Export and deletion need a signed-in session (a leaked key cannot take the face data or the account).
    assert httpx.get(f"{base}/v1/me/export", headers=_auth(key)).status_code == 403
    browser = httpx.Client(base_url=base)
    csrf = browser.post("/v1/auth/login", json={"email": OWNER_EMAIL, "password": PASSWORD}).json()["csrf_token"]
    r = browser.get("/v1/me/export")
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(r.content)) as z:
        names = set(z.namelist())
        doc = json.loads(z.read("me.json"))
        reference = z.read("likeness/reference-0.png")
    assert {"me.json", f"videos/{video.id}.mp4", "likeness/reference-0.png"} <= names
    assert doc["account"]["email"] == OWNER_EMAIL and "password_hash" not in doc["account"]
    assert doc["likeness"]["id"] == made.id and "descriptor" not in doc["likeness"]
    assert [c["change"]["op"] for c in doc["likeness"]["consent_history"]] == ["enrol"]
    assert [u["video_id"] for u in doc["likeness"]["usage_log"]] == [video.id]
    assert all("key_hash" not in k for k in doc["api_keys"])
    # Webhook endpoints are the user's data too (without their sealed secrets), and their creation is audited
    # with the host only: the token in the URL stays out of the log.
    assert [(h["id"], h["url"]) for h in doc["webhook_endpoints"]] == [(hook.id, hook.url)]
    assert not {"secret", "old_secret"} & set(doc["webhook_endpoints"][0])
    created = [e for e in doc["security_events"] if e["action"] == "webhook.create"]
    assert [(e["target"], e["details"]["host"]) for e in created] == [(hook.id, "127.0.0.1")]
    assert "t0ken" not in json.dumps(doc["security_events"])
    assert Image.open(io.BytesIO(reference)).size == (256, 256)

    saved_descriptor, saved_chip = _ciphertexts(server, made.id)
    wrong = browser.request(
        "DELETE",
        "/v1/me",
        json={"password": "not it at all", "confirm": "delete my account"},
        headers={"X-CSRF-Token": csrf},
    )
    assert wrong.status_code == 400 and wrong.json()["error"]["code"] == "wrong_password"
    r = browser.request(
        "DELETE", "/v1/me", json={"password": PASSWORD, "confirm": "delete my account"}, headers={"X-CSRF-Token": csrf}
    )
    assert r.status_code == 200 and r.json()["deleted"] is True and r.json()["videos"] == 1

    assert httpx.get(f"{base}/v1/videos", headers=_auth(key)).status_code == 401
    assert browser.get("/v1/me").status_code == 401
    from kinema.crypto import CryptoError

    with pytest.raises(CryptoError):
        _vault(server).decrypt(made.id, saved_descriptor, "descriptor")
    with pytest.raises(CryptoError):
        _vault(server).decrypt(made.id, saved_chip, "chip:0")
    blobs = server.data_dir / "blobs"
    assert not list(blobs.glob(f"videos/{video.id}/**/*.mp4")) and not (blobs / "characters" / made.id).exists()


def _mirror(video: bytes) -> bytes:
    """The same clip stored mirrored, as front cameras store it."""
    from kinema.media.video_decode import read_mp4

    decoded = read_mp4(video)
    return encode_mp4(np.ascontiguousarray(decoded.frames[:, :, ::-1]), max(1, round(decoded.fps)))


def test_challenge_attempts_are_limited_and_mirrored_recordings_enrol(tmp_path: Path, kinema_server) -> None:  # type: ignore[no-untyped-def]
    server = kinema_server(f"sqlite:///{tmp_path / 'k.db'}", workers=0)
    base, key = server.base_url, server.api_key
    bob_key = provision(server.data_dir, server.db_url, "bob@example.com")
    alice = client_for(server, key, timeout=120)
    consent = _consent(server, key)

    def attempt(client: openai.OpenAI, challenge_id: str, video: bytes, **extra: object) -> openai.APIStatusError:
        with pytest.raises(openai.APIStatusError) as err:
            client.videos.create_character(
                name="barack",
                video=("me.mp4", video, "video/mp4"),
                extra_body={"challenge_id": challenge_id, "consent": consent, **extra},
            )
        return err.value

    challenge = httpx.post(f"{base}/v1/videos/characters/challenges", headers=_auth(key)).json()
    # Someone else's challenge is refused, and does not spend an attempt of its owner's.
    wrong = attempt(client_for(server, bob_key, timeout=120), challenge["id"], _still_clip())
    assert (wrong.status_code, wrong.code) == (400, "challenge_invalid")

    # Every refused upload counts, though the request is refused; the message says how many are left.
    left = []
    for _ in range(3):
        refused = attempt(alice, challenge["id"], _still_clip())
        assert refused.status_code == 400 and refused.code and not refused.code.startswith("challenge_")
        left.append(str(refused.body))
    assert "2 more attempts" in left[0] and "1 more attempt " in left[1] and "last attempt" in left[2]
    # Spent: even the right clip is refused now, until the caller asks for a new challenge.
    spent = attempt(alice, challenge["id"], _clip_for(challenge["moves"]))
    assert (spent.status_code, spent.code) == (400, "challenge_exhausted")
    assert spent.param == "challenge_id" and "new one" in spent.message
    assert httpx.get(f"{base}/v1/videos/characters", headers=_auth(key)).json()["data"] == []

    # A front camera's mirrored recording: refused as the wrong turns without `mirrored`, enrolled with it.
    challenge = httpx.post(f"{base}/v1/videos/characters/challenges", headers=_auth(key)).json()
    mirrored = _mirror(_clip_for(challenge["moves"]))
    unflagged = attempt(alice, challenge["id"], mirrored)
    assert (unflagged.status_code, unflagged.code) == (400, "movement_not_seen")
    made = alice.videos.create_character(
        name="barack",
        video=("me.mp4", mirrored, "video/mp4"),
        extra_body={"challenge_id": challenge["id"], "consent": consent, "mirrored": True},
    )
    assert made.id.startswith("char_") and made.name == "barack"
    bad = httpx.post(
        f"{base}/v1/videos/characters",
        headers=_auth(key),
        files={"video": ("me.mp4", mirrored, "video/mp4")},
        data={"name": "x2", "challenge_id": challenge["id"], "mirrored": "sideways"},
    )
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "mirrored"
