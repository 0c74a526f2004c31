"""Accounts end to end on a real server: invites and sign-up, sessions (rotation, logout, timeouts,
CSRF), argon2id parameters and rehash, API keys (create, scopes, revoke, expiry, checksum, IP
allowlist) and privileged fields in bodies."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
import openai
import pytest
from sqlalchemy import select, update

from kinema.db.models import ApiKeyRow, UserRow
from kinema.db.session import make_engine, make_session_factory
from kinema.services.auth import key_well_formed
from tests.conftest import PASSWORD, Proc, provision

pytestmark = pytest.mark.slow


def _admin(server: Proc) -> dict[str, str]:
    key = provision(server.data_dir, server.db_url, "root@example.com", role="admin")
    return {"Authorization": f"Bearer {key}"}


def _db(server: Proc):  # type: ignore[no-untyped-def]
    return make_session_factory(make_engine(server.db_url))


def _invite(server: Proc, email: str, cohort: str = "early-access") -> str:
    r = httpx.post(
        f"{server.base_url}/v1/admin/invites", headers=_admin(server), json={"email": email, "cohort": cohort}
    )
    assert r.status_code == 201, r.text
    return str(r.json()["code"])


def _login(server: Proc, email: str, password: str, client: httpx.Client | None = None) -> tuple[httpx.Client, str]:
    c = client or httpx.Client(base_url=server.base_url)
    r = c.post("/v1/auth/login", json={"email": email, "password": password})
    assert r.status_code == 200, r.text
    return c, str(r.json()["csrf_token"])


def test_invite_signup_is_single_use_and_bound_to_the_email(db_url: str, kinema_server) -> None:  # type: ignore[no-untyped-def]
    server = kinema_server(db_url, workers=0)
    code = _invite(server, "new@example.com")
    url = f"{server.base_url}/v1/auth/signup"
    r = httpx.post(url, json={"invite_code": code, "email": "other@example.com", "password": PASSWORD})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_invite"
    r = httpx.post(url, json={"invite_code": code, "email": "new@example.com", "password": "short"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "password"
    r = httpx.post(url, json={"invite_code": code, "email": "New@Example.com", "password": PASSWORD})
    assert r.status_code == 201, r.text
    assert r.json()["cohort"] == "early-access" and r.json()["role"] == "member"
    again = httpx.post(url, json={"invite_code": code, "email": "new@example.com", "password": PASSWORD})
    assert again.status_code == 400 and again.json()["error"]["code"] == "invalid_invite"
    # Escalation through the body is refused by name.
    code2 = _invite(server, "sneaky@example.com")
    r = httpx.post(
        url, json={"invite_code": code2, "email": "sneaky@example.com", "password": PASSWORD, "role": "admin"}
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "forbidden_parameter"
    assert r.json()["error"]["param"] == "role"
    # A revoked invite no longer works.
    invites = httpx.get(f"{server.base_url}/v1/admin/invites", headers=_admin(server)).json()["data"]
    pending = next(i for i in invites if i["email"] == "sneaky@example.com")
    assert (
        httpx.delete(f"{server.base_url}/v1/admin/invites/{pending['id']}", headers=_admin(server)).status_code == 200
    )
    r = httpx.post(url, json={"invite_code": code2, "email": "sneaky@example.com", "password": PASSWORD})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_invite"


def test_password_hashes_are_argon2id_at_or_above_the_minimum_and_upgraded_at_login(
    tmp_path: Path, kinema_server
) -> None:  # type: ignore[no-untyped-def]
    db = f"sqlite:///{tmp_path / 'k.db'}"
    server = kinema_server(db, workers=0)
    sessions = _db(server)
    with sessions() as s:
        stored = s.scalar(select(UserRow.password_hash).where(UserRow.email == "owner@example.com"))
    m = re.match(r"^\$argon2id\$v=19\$m=(\d+),t=(\d+),p=(\d+)\$", stored or "")
    assert m, stored
    assert int(m[1]) >= 19456 and int(m[2]) >= 2
    assert PASSWORD not in (stored or "")
    server.stop()
    # The deployment raises the cost: the next login re-hashes with it.
    stronger = kinema_server(db, workers=0, KINEMA_PASSWORD_HASH_MEMORY_KIB="24576", KINEMA_PASSWORD_HASH_TIME_COST="3")
    _login(stronger, "owner@example.com", PASSWORD)
    with sessions() as s:
        upgraded = s.scalar(select(UserRow.password_hash).where(UserRow.email == "owner@example.com"))
    assert upgraded and upgraded.startswith("$argon2id$v=19$m=24576,t=3,")


def test_sessions_rotate_on_login_end_on_logout_and_password_change(db_url: str, kinema_server) -> None:  # type: ignore[no-untyped-def]
    server = kinema_server(db_url, workers=0)
    browser = httpx.Client(base_url=server.base_url)
    r = browser.post("/v1/auth/login", json={"email": "owner@example.com", "password": "wrong password!"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_credentials"
    r = browser.post("/v1/auth/login", json={"email": "nobody@example.com", "password": PASSWORD})
    assert r.status_code == 401 and r.json()["error"]["message"] == "Wrong email or password."

    _, csrf = _login(server, "owner@example.com", PASSWORD, browser)
    header = browser.cookies.jar and next(iter(browser.cookies.jar))
    first = browser.cookies["kinema_session"]
    assert header.has_nonstandard_attr("HttpOnly") and not header.secure
    assert browser.get("/v1/me").json()["via"] == "session"

    # A new id on every login; the previous one stops working.
    _, csrf = _login(server, "owner@example.com", PASSWORD, browser)
    second = browser.cookies["kinema_session"]
    assert second != first
    stale = httpx.get(f"{server.base_url}/v1/me", cookies={"kinema_session": first})
    assert stale.status_code == 401

    # CSRF: a cookie-authenticated change needs the session's token.
    no_csrf = browser.post("/v1/videos", json={"prompt": "a kite"})
    assert no_csrf.status_code == 403 and no_csrf.json()["error"]["code"] == "csrf_failed"
    wrong = browser.post("/v1/videos", json={"prompt": "a kite"}, headers={"X-CSRF-Token": "x" + csrf[1:]})
    assert wrong.status_code == 403
    ok = browser.post("/v1/videos", json={"prompt": "a kite"}, headers={"X-CSRF-Token": csrf})
    assert ok.status_code == 200, ok.text
    assert browser.get("/v1/videos").status_code == 200  # reads need no token

    # Password change ends every session, including other browsers, and gives this one a new session.
    other, _ = _login(server, "owner@example.com", PASSWORD)
    new_password = "another long passphrase"
    r = browser.post(
        "/v1/me/password",
        json={"current_password": PASSWORD, "new_password": new_password},
        headers={"X-CSRF-Token": csrf},
    )
    assert r.status_code == 200, r.text
    assert other.get("/v1/me").status_code == 401
    assert browser.get("/v1/me").status_code == 200
    csrf = r.json()["csrf_token"]

    # An API key cannot change the password.
    r = httpx.post(
        f"{server.base_url}/v1/me/password",
        json={"current_password": new_password, "new_password": "yet another passphrase"},
        headers={"Authorization": f"Bearer {server.api_key}"},
    )
    assert r.status_code == 403 and r.json()["error"]["code"] == "session_required"

    # Logout: the cookie is dead even if replayed.
    kept = browser.cookies["kinema_session"]
    assert browser.post("/v1/auth/logout", headers={"X-CSRF-Token": csrf}).status_code == 204
    assert httpx.get(f"{server.base_url}/v1/me", cookies={"kinema_session": kept}).status_code == 401


def test_session_idle_and_absolute_timeouts(tmp_path: Path, kinema_server) -> None:  # type: ignore[no-untyped-def]
    # Generous margins: a loaded machine must not make this flaky (exact timing: tests/services/test_accounts.py).
    idle_server = kinema_server(f"sqlite:///{tmp_path / 'i.db'}", workers=0, KINEMA_SESSION_IDLE_SECONDS="2")
    idle, _ = _login(idle_server, "owner@example.com", PASSWORD)
    assert idle.get("/v1/me").status_code == 200
    time.sleep(3.0)
    r = idle.get("/v1/me")
    assert r.status_code == 401 and r.json()["error"]["code"] == "session_expired"

    absolute_server = kinema_server(
        f"sqlite:///{tmp_path / 'a.db'}", workers=0, KINEMA_SESSION_ABSOLUTE_SECONDS="3", data_dir=tmp_path / "a"
    )
    busy, _ = _login(absolute_server, "owner@example.com", PASSWORD)
    assert busy.get("/v1/me").status_code == 200
    cookie = busy.cookies["kinema_session"]
    time.sleep(4.0)
    # The cookie's Max-Age is the absolute timeout too, so a browser drops it; replay it to test the server.
    r = httpx.get(f"{absolute_server.base_url}/v1/me", cookies={"kinema_session": cookie})
    assert r.status_code == 401 and r.json()["error"]["code"] == "session_expired"


def test_api_keys_refused_for_each_reason_with_its_code(db_url: str, kinema_server) -> None:  # type: ignore[no-untyped-def]
    server = kinema_server(db_url, workers=0)
    base = server.base_url
    owner = {"Authorization": f"Bearer {server.api_key}"}

    # Create through the API (the default member key holds keys:write); the secret is shown once.
    r = httpx.post(f"{base}/v1/keys", headers=owner, json={"name": "reader", "scopes": ["videos:read"]})
    assert r.status_code == 201, r.text
    reader = r.json()
    assert key_well_formed(reader["key"]) and reader["key"].startswith("kin_") and reader["hint"] == reader["key"][:8]
    listed = httpx.get(f"{base}/v1/keys", headers=owner).json()["data"]
    assert reader["id"] in {k["id"] for k in listed} and all("key" not in k for k in listed)
    sessions = _db(server)
    with sessions() as s:
        stored = s.scalar(select(ApiKeyRow.key_hash).where(ApiKeyRow.id == reader["id"]))
    assert stored and reader["key"] not in stored

    # The SDK authenticates with it; a write needs videos:write.
    sdk = openai.OpenAI(base_url=f"{base}/v1", api_key=reader["key"], max_retries=0)
    assert sdk.videos.list().data == []
    with pytest.raises(openai.PermissionDeniedError) as denied:
        sdk.videos.create(prompt="a kite")
    assert denied.value.code == "insufficient_scope"
    # A key cannot mint a stronger key, and a member cannot hold admin.
    r = httpx.post(
        f"{base}/v1/keys",
        headers={"Authorization": f"Bearer {reader['key']}"},
        json={"name": "x", "scopes": ["videos:write"]},
    )
    assert r.status_code == 403
    r = httpx.post(f"{base}/v1/keys", headers=owner, json={"name": "x", "scopes": ["admin"]})
    assert r.status_code == 403 and r.json()["error"]["code"] == "insufficient_scope"
    r = httpx.post(f"{base}/v1/keys", headers=owner, json={"name": "x", "owner_id": "user_" + "0" * 24})
    assert r.status_code == 400 and r.json()["error"]["code"] == "forbidden_parameter"

    def refused(key: str) -> tuple[int, str]:
        resp = httpx.get(f"{base}/v1/videos", headers={"Authorization": f"Bearer {key}"})
        return resp.status_code, resp.json()["error"]["code"]

    # Bad checksum: one character changed.
    k = reader["key"]
    tampered = k[:-1] + ("A" if k[-1] != "A" else "B")
    assert refused(tampered) == (401, "invalid_api_key")
    assert refused("sk-" + "a" * 48) == (401, "invalid_api_key")
    # Well-formed but unknown.
    from kinema.services.auth import new_api_key

    assert refused(new_api_key()) == (401, "invalid_api_key")

    # Expired (moved into the past in the database: waiting a minute is no test).
    expiring = httpx.post(f"{base}/v1/keys", headers=owner, json={"name": "soon", "expires_in": 60}).json()
    assert httpx.get(f"{base}/v1/videos", headers={"Authorization": f"Bearer {expiring['key']}"}).status_code == 200
    with sessions.begin() as s:
        s.execute(update(ApiKeyRow).where(ApiKeyRow.id == expiring["id"]).values(expires_at=time.time() - 1))
    assert refused(expiring["key"]) == (401, "api_key_expired")

    # Outside the IP allowlist (the test client is 127.0.0.1).
    fenced = httpx.post(
        f"{base}/v1/keys", headers=owner, json={"name": "office", "ip_allowlist": ["10.0.0.0/8"]}
    ).json()
    assert refused(fenced["key"]) == (403, "ip_not_allowed")
    local = httpx.post(f"{base}/v1/keys", headers=owner, json={"name": "here", "ip_allowlist": ["127.0.0.1"]}).json()
    assert httpx.get(f"{base}/v1/videos", headers={"Authorization": f"Bearer {local['key']}"}).status_code == 200
    bad = httpx.post(f"{base}/v1/keys", headers=owner, json={"name": "bad", "ip_allowlist": ["not-an-ip"]})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "ip_allowlist"

    # A key mints no key freer than itself: expiry, allowlist and limits carry over.
    parent = httpx.post(
        f"{base}/v1/keys",
        headers=owner,
        json={
            "name": "ci",
            "scopes": ["keys:write", "videos:read"],
            "expires_in": 3600,
            "ip_allowlist": ["127.0.0.0/24"],
        },
    ).json()
    by_parent = {"Authorization": f"Bearer {parent['key']}"}
    child = httpx.post(f"{base}/v1/keys", headers=by_parent, json={"name": "child", "scopes": ["videos:read"]}).json()
    assert child["ip_allowlist"] == ["127.0.0.0/24"] and child["expires_at"] <= parent["expires_at"]
    wider = httpx.post(
        f"{base}/v1/keys",
        headers=by_parent,
        json={"name": "w", "scopes": ["videos:read"], "ip_allowlist": ["0.0.0.0/0"]},
    )
    assert wider.status_code == 403
    longer = httpx.post(
        f"{base}/v1/keys", headers=by_parent, json={"name": "l", "scopes": ["videos:read"], "expires_in": 10**7}
    ).json()
    assert longer["expires_at"] == parent["expires_at"]

    # Revoked: at once, and for good.
    assert httpx.delete(f"{base}/v1/keys/{reader['id']}", headers=owner).json()["status"] == "revoked"
    assert refused(reader["key"]) == (401, "api_key_revoked")
    # The owner's other keys keep working.
    assert httpx.get(f"{base}/v1/videos", headers=owner).status_code == 200


def test_privileged_fields_in_video_bodies_are_refused(tmp_path: Path, kinema_server) -> None:  # type: ignore[no-untyped-def]
    server = kinema_server(f"sqlite:///{tmp_path / 'k.db'}", workers=0)
    client = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key=server.api_key, max_retries=0)
    for field in ("owner", "is_admin", "quota"):
        with pytest.raises(openai.BadRequestError) as err:
            client.videos.create(prompt="a kite", extra_body={field: "x"})
        assert err.value.code == "forbidden_parameter" and err.value.param == field
    assert client.videos.list().data == []
