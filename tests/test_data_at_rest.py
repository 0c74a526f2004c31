"""Secrets at rest: the database and everything the server writes are its user's only, and session
CSRF tokens are stored as hashes.

A real server on a fresh data folder: the SQLite file, its WAL and SHM (which appear with the first
writes) and the blob folder are checked with os.stat; the web_sessions table is read back directly.
"""

from __future__ import annotations

import hashlib
import io
import secrets
import sqlite3
import stat
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.conftest import OWNER_EMAIL, PASSWORD, client_for, provision, start_server

pytestmark = pytest.mark.slow


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _png() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((64, 96, 3), 120, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def test_database_wal_and_blobs_are_private(tmp_path: Path, models_dir: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    db_url = f"sqlite:///{data / 'k.db'}"
    provision(data, db_url)  # the test process (umask 022) creates the database first, as the CLI would
    assert _mode(data / "k.db") == 0o600
    before = {p for p in data.rglob("*")}
    server = start_server(data, db_url, models_dir, workers=0)
    try:
        assert _mode(data / "k.db") == 0o600
        client = client_for(server)
        video = client.videos.create(prompt="a kite", input_reference=("kite.png", _png(), "image/png"))
        assert video.status == "queued"
        for name in ("k.db", "k.db-wal", "k.db-shm"):
            assert (data / name).exists(), name
            assert _mode(data / name) == 0o600, (name, oct(_mode(data / name)))
        created = [p for p in data.rglob("*") if p not in before and not p.name.endswith((".log", ".pub"))]
        blobs = [p for p in created if "blobs" in p.parts]
        assert any(p.is_file() for p in blobs), "the input image was not stored"
        for path in created:
            assert _mode(path) & 0o077 == 0, f"{path.relative_to(data)} is {oct(_mode(path))}"
    finally:
        server.stop()


def test_csrf_tokens_are_stored_hashed_and_old_plain_ones_end_the_session(tmp_path: Path, models_dir: Path) -> None:
    data = tmp_path / "data"
    server = start_server(data, f"sqlite:///{data / 'k.db'}", models_dir, workers=0)
    try:
        with httpx.Client(base_url=server.base_url) as browser:
            r = browser.post("/v1/auth/login", json={"email": OWNER_EMAIL, "password": PASSWORD})
            assert r.status_code == 200, r.text
            token = r.json()["csrf_token"]
            with sqlite3.connect(data / "k.db") as db:
                stored = [row[0] for row in db.execute("SELECT csrf_token FROM web_sessions")]
            assert stored == [hashlib.sha256(token.encode()).hexdigest()]
            assert token not in stored[0]
            assert browser.get("/v1/me").json()["csrf_token"] == token  # still given back to the browser
            wrong = browser.post("/v1/auth/logout", headers={"X-CSRF-Token": token[:-1] + "x"})
            assert wrong.status_code == 403 and wrong.json()["error"]["code"] == "csrf_failed"
            assert browser.post("/v1/auth/logout", headers={"X-CSRF-Token": token}).status_code == 204

        # A session stored the old way (token in plain) is ended: its user signs in again.
        cookie, plain = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        with sqlite3.connect(data / "k.db") as db:
            user_id = db.execute("SELECT id FROM users WHERE email = ?", (OWNER_EMAIL,)).fetchone()[0]
            now = time.time()
            db.execute(
                "INSERT INTO web_sessions (id_hash, user_id, csrf_token, created_at, last_seen_at) VALUES (?,?,?,?,?)",
                (hashlib.sha256(cookie.encode()).hexdigest(), user_id, plain, now, now),
            )
        r = httpx.get(f"{server.base_url}/v1/me", cookies={"kinema_session": cookie})
        assert r.status_code == 401 and r.json()["error"]["code"] == "session_invalid", r.text
        with sqlite3.connect(data / "k.db") as db:
            assert db.execute("SELECT count(*) FROM web_sessions").fetchone()[0] == 0
    finally:
        server.stop()
