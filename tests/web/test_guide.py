"""``POST /likeness/guide``, the live face guide of webcam enrolment, against a real ``kinema serve``: real test
photographs as JPEG frames, a signed-in session (cookie + CSRF token) from the real sign-in, and the refusals
(no session, another user's token, oversize, not an image, too many pixels, too many frames a second), none of
which changes anything. The page's use of it is in test_studio.py (the webcam enrolment test)."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from kinema.web.guide import GUIDE_PATH, GUIDE_PER_SECOND, MAX_FRAME_BYTES
from testkit.faces.photos import faces_dir, photo, scaled
from testkit.server import OWNER_EMAIL, PASSWORD
from tests.web.browser import OTHER_EMAIL, Studio

pytestmark = pytest.mark.slow


def jpeg(image: np.ndarray, quality: int = 80) -> bytes:
    out = io.BytesIO()
    Image.fromarray(image).save(out, format="JPEG", quality=quality)
    return out.getvalue()


def webcam_frame(name: str = "obama_1", width: int = 320) -> bytes:
    """A test photograph cut to a 4:3 webcam picture around the face and sent 320 px wide, as the page does."""
    image = photo(name)
    h, w = image.shape[:2]
    crop = image[: min(h, w * 3 // 4)]
    return jpeg(scaled(crop, width / w))


@pytest.fixture(scope="module", autouse=True)
def _photos() -> None:
    if not (faces_dir() / "obama_1.jpg").is_file():
        pytest.skip(f"face test photographs not found at {faces_dir()} (set KINEMA_TEST_FACES)")


def signed_in(studio: Studio, email: str) -> tuple[httpx.Client, str]:
    """A client holding ``email``'s session cookie, and the session's CSRF token."""
    client = httpx.Client(base_url=studio.base, timeout=60)
    r = client.post("/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return client, r.json()["csrf_token"]


@pytest.fixture(scope="module")
def owner(studio: Studio) -> Iterator[tuple[httpx.Client, str]]:
    client, csrf = signed_in(studio, OWNER_EMAIL)
    with closing(client):
        yield client, csrf


def send(
    client: httpx.Client,
    csrf: str | None,
    body: bytes,
    query: str = "",
    ctype: str = "image/jpeg",
    *,
    paced: bool = True,
) -> httpx.Response:
    """One frame; ``paced``: first waiting long enough that no second holds more frames than the limit."""
    if paced:
        time.sleep(1.05 / GUIDE_PER_SECOND)
    headers = {"Content-Type": ctype, **({"X-CSRF-Token": csrf} if csrf is not None else {})}
    return client.post(GUIDE_PATH + query, content=body, headers=headers)


def stored_files(studio: Studio) -> list[Path]:
    """Every file under the server's data folder but the database's and the log's (which change anyway)."""
    data = studio.server.data_dir
    assert data is not None
    return sorted(p for p in data.rglob("*") if p.is_file() and not p.name.endswith((".db", "-wal", "-shm", ".log")))


def test_a_real_face_gets_a_box_and_a_sensible_hint(studio: Studio, owner: tuple[httpx.Client, str]) -> None:
    client, csrf = owner
    r = send(client, csrf, webcam_frame())
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "enrolment.guide"
    assert body["hint"] == "hold" and body["message"] == "Hold still."
    box = body["box"]
    assert 0 <= box["left"] < box["right"] <= 1 and 0 <= box["top"] < box["bottom"] <= 1
    assert 0.3 < (box["left"] + box["right"]) / 2 < 0.7
    assert abs(body["yaw"]) < 0.08
    assert r.headers["cache-control"] == "no-store"
    # Turned to the person's own left (obama_3): good for "left" from the frontal resting pose, not for "right".
    rest = f"&rest={body['yaw']:.4f}"
    turned = jpeg(scaled(photo("obama_3"), 320 / photo("obama_3").shape[1]))
    left = send(client, csrf, turned, "?target=left" + rest).json()
    assert left["hint"] == "good", left
    right = send(client, csrf, turned, "?target=right" + rest).json()
    assert right["hint"] == "turn_further" and right["message"] == "Turn your head further to your right."


def test_a_picture_without_a_face_says_so(studio: Studio, owner: tuple[httpx.Client, str]) -> None:
    client, csrf = owner
    wall = np.full((240, 320, 3), (200, 180, 160), dtype=np.uint8)
    wall[:, ::20] = 40  # stripes, not a face
    r = send(client, csrf, jpeg(wall))
    assert r.status_code == 200, r.text
    assert r.json()["hint"] == "no_face" and r.json()["box"] is None and r.json()["yaw"] is None
    assert r.json()["message"].startswith("No face found")


def test_without_a_session_or_with_another_users_token_it_is_refused(
    studio: Studio, owner: tuple[httpx.Client, str]
) -> None:
    client, csrf = owner
    frame = webcam_frame()
    anonymous = httpx.post(f"{studio.base}{GUIDE_PATH}", content=frame, headers={"X-CSRF-Token": csrf})
    assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "not_signed_in"
    # An API key is not a studio session.
    keyed = httpx.post(
        f"{studio.base}{GUIDE_PATH}", content=frame, headers={"Authorization": f"Bearer {studio.server.api_key}"}
    )
    assert keyed.status_code == 401
    other, other_csrf = signed_in(studio, OTHER_EMAIL)
    with closing(other):
        assert other_csrf != csrf
        forged = send(client, other_csrf, frame)  # the owner's cookie with the other user's token
        assert forged.status_code == 403 and forged.json()["error"]["code"] == "csrf_failed"
        assert send(client, None, frame).status_code == 403
        assert send(client, "", frame).status_code == 403
        assert send(other, other_csrf, frame).status_code == 200  # the other user's own pair works
    assert send(client, csrf, frame).status_code == 200  # and the refusals did not end the owner's session


def test_bad_frames_get_a_clear_error_and_nothing_is_kept(studio: Studio, owner: tuple[httpx.Client, str]) -> None:
    client, csrf = owner
    before = stored_files(studio)
    big = send(client, csrf, b"\xff\xd8\xff" + b"\0" * MAX_FRAME_BYTES)
    assert big.status_code == 413 and big.json()["error"]["code"] == "file_too_large"
    text = send(client, csrf, b"<html>not a picture</html>", ctype="text/html")
    assert text.status_code == 415 and text.json()["error"]["code"] == "unsupported_media_type"
    assert text.json()["error"]["param"] == "frame"
    broken = send(client, csrf, webcam_frame()[:400])
    assert broken.status_code == 400 and broken.json()["error"]["code"] == "corrupt_media"
    for shape in ((700, 1000, 3), (200, 800, 3)):  # too many pixels; few pixels but too wide
        huge = send(client, csrf, jpeg(np.zeros(shape, dtype=np.uint8), quality=30))
        assert huge.status_code == 400 and huge.json()["error"]["code"] == "too_many_pixels", huge.text
    empty = send(client, csrf, b"")
    assert empty.status_code == 400 and empty.json()["error"]["code"] == "no_frame"
    for query, param in (("?target=up", "target"), ("?rest=nan", "rest"), ("?rest=5", "rest")):
        r = send(client, csrf, webcam_frame(), query)
        assert r.status_code == 400 and r.json()["error"]["param"] == param, r.text
    send(client, csrf, webcam_frame())
    assert stored_files(studio) == before  # frames are analysed in memory and dropped


def test_too_many_frames_a_second_are_refused_per_user(studio: Studio, owner: tuple[httpx.Client, str]) -> None:
    client, csrf = owner
    # Cheap refused bodies, as fast as they go: the limit is counted before the frame is read.
    codes = []
    for _ in range(20 * GUIDE_PER_SECOND):
        r = send(client, csrf, b"x", ctype="text/plain", paced=False)
        codes.append(r.status_code)
        if r.status_code == 429:
            assert int(r.headers["retry-after"]) >= 1
            assert r.json()["error"]["code"] == "rate_limit_exceeded"
            break
    assert codes[-1] == 429, f"no 429 in {len(codes)} quick frames: {set(codes)}"
    assert set(codes[:-1]) == {415}
    # Another user is not held back by the owner's frames.
    other, other_csrf = signed_in(studio, OTHER_EMAIL)
    with closing(other):
        assert send(other, other_csrf, b"x", ctype="text/plain").status_code == 415
