"""No request leaves the deployment without an administrator who can sign in, and an admin cannot
revoke their own cohort (which would revoke the keys they are using).

Real server, real database (SQLite, and PostgreSQL when reachable). The paths that could remove the last
admin's way in: revoking a cohort, revoking a key, changing a role, disabling, deleting the account.
"""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select

from kinema.db.models import ApiKeyRow, UserRow
from kinema.db.session import make_engine, make_session_factory
from tests.conftest import PASSWORD, Proc, provision

pytestmark = pytest.mark.slow


def _refused(r: httpx.Response, code: str) -> None:
    assert r.status_code == 409, r.text
    assert r.json()["error"]["code"] == code, r.text
    assert r.headers["x-should-retry"] == "false"


def _me(server: Proc, key: str) -> dict[str, object]:
    r = httpx.get(f"{server.base_url}/v1/me", headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 200, r.text
    return dict(r.json())


def _user(server: Proc, email: str) -> UserRow:
    engine = make_engine(server.db_url)
    try:
        with make_session_factory(engine)() as s:
            row = s.scalar(select(UserRow).where(UserRow.email == email))
            assert row is not None
            return row
    finally:
        engine.dispose()


def _live_keys(server: Proc, user_id: str) -> int:
    engine = make_engine(server.db_url)
    try:
        with make_session_factory(engine)() as s:
            rows = s.scalars(select(ApiKeyRow).where(ApiKeyRow.owner_id == user_id, ApiKeyRow.revoked_at.is_(None)))
            return len(list(rows))
    finally:
        engine.dispose()


def test_the_last_admin_cannot_be_removed_by_any_path(db_url: str, kinema_server) -> None:  # type: ignore[no-untyped-def]
    server: Proc = kinema_server(db_url, workers=0)
    base = server.base_url
    # A deployment with no admin yet (members only) is not blocked: a member revokes a key of theirs.
    member = {"Authorization": f"Bearer {server.api_key}"}
    spare = httpx.post(f"{base}/v1/keys", headers=member, json={"name": "spare"})
    assert spare.status_code == 201, spare.text
    assert httpx.delete(f"{base}/v1/keys/{spare.json()['id']}", headers=member).status_code == 200
    # Like the dev account: an admin with no password, whose only way in is this key.
    dev_key = provision(server.data_dir, db_url, "dev@localhost", role="admin", password=None)  # type: ignore[arg-type]
    dev = {"Authorization": f"Bearer {dev_key}"}
    dev_me = _me(server, dev_key)
    dev_id, dev_key_id = dev_me["user"]["id"], dev_me["key_id"]  # type: ignore[index]

    _refused(httpx.post(f"{base}/v1/admin/cohorts/default/revoke", headers=dev), "own_cohort")
    _refused(httpx.delete(f"{base}/v1/keys/{dev_key_id}", headers=dev), "last_admin")
    _refused(httpx.post(f"{base}/v1/admin/keys/{dev_key_id}/revoke", headers=dev), "last_admin")
    _refused(httpx.patch(f"{base}/v1/admin/users/{dev_id}", headers=dev, json={"role": "member"}), "last_admin")
    _refused(httpx.patch(f"{base}/v1/admin/users/{dev_id}", headers=dev, json={"disabled": True}), "last_admin")
    # Nothing changed: the key works, the member's key too (the cohort was not revoked), still an admin.
    assert _me(server, dev_key)["user"]["role"] == "admin"  # type: ignore[index]
    assert _me(server, server.api_key)["via"] == "key"
    assert _user(server, "dev@localhost").disabled_at is None

    # A second admin with a password, in another cohort: now the dev admin's key may go, and its cohort.
    root_key = provision(server.data_dir, db_url, "root@example.com", role="admin", cohort="ops")
    root = {"Authorization": f"Bearer {root_key}"}
    _refused(httpx.post(f"{base}/v1/admin/cohorts/ops/revoke", headers=root), "own_cohort")
    r = httpx.post(f"{base}/v1/admin/cohorts/default/revoke", headers=root)
    assert r.status_code == 200 and r.json()["keys_revoked"] >= 2, r.text
    assert _live_keys(server, str(dev_id)) == 0
    assert httpx.get(f"{base}/v1/me", headers=dev).status_code == 401

    # Root is now the only admin who can sign in: it may not demote, disable or delete itself.
    root_id = _user(server, "root@example.com").id
    _refused(httpx.patch(f"{base}/v1/admin/users/{root_id}", headers=root, json={"role": "member"}), "last_admin")
    _refused(httpx.patch(f"{base}/v1/admin/users/{root_id}", headers=root, json={"disabled": True}), "last_admin")
    with httpx.Client(base_url=base) as browser:
        login = browser.post("/v1/auth/login", json={"email": "root@example.com", "password": PASSWORD})
        assert login.status_code == 200, login.text
        csrf = {"X-CSRF-Token": login.json()["csrf_token"]}
        _refused(
            browser.request(
                "DELETE", "/v1/me", headers=csrf, json={"password": PASSWORD, "confirm": "delete my account"}
            ),
            "last_admin",
        )
    assert _me(server, root_key)["user"]["role"] == "admin"  # type: ignore[index]

    # Demoting the other, locked-out admin is fine: root remains.
    r = httpx.patch(f"{base}/v1/admin/users/{dev_id}", headers=root, json={"role": "member"})
    assert r.status_code == 200 and r.json()["role"] == "member", r.text
