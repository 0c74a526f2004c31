"""Authorization matrices generated from the application's route table, so new routes are covered.

- Ownership: for every route that takes an object id, user B gets 404 (never 403) on user A's object,
  and A's object is untouched.
- Admin: every /v1/admin route answers 403 to a member's key and 401 without credentials.
- Every other /v1 route needs credentials, and declares the scope it needs.

A route whose id parameter has no factory below fails the test: add one when adding such a route.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.routing import RouteContext, iter_route_contexts

from kinema.api.app import create_app
from kinema.api.deps import require_admin, require_session
from kinema.config import Settings
from kinema.container import Container
from tests.conftest import Proc, client_for, provision
from tests.factories import SMALL

pytestmark = pytest.mark.slow

PUBLIC = {("POST", "/v1/auth/signup"), ("POST", "/v1/auth/login"), ("GET", "/v1/policy/retention")}
FAST = {"num_inference_steps": 1}
# A valid body where the route validates one before it looks the object up (else: {"prompt": ...}).
BODIES = {
    "/v1/videos/characters/{character_id}/permissions": {"visibility": "everyone"},
    "/v1/webhook_endpoints/{webhook_endpoint_id}": {"name": "matrix"},
    "/v1/webhook_endpoints/{webhook_endpoint_id}/rotate_secret": {},
    "/v1/webhook_endpoints/{webhook_endpoint_id}/test": {"event_type": "video.completed"},
}


@pytest.fixture(scope="module")
def routes(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[list[tuple[str, str, RouteContext]]]:
    """(method, path, route) for every /v1 route of a real application."""
    d = tmp_path_factory.mktemp("routes")
    container = Container.from_settings(
        Settings(data_dir=d, database_url=f"sqlite:///{d / 'k.db'}", models_dir=models_dir, default_model="tiny-wan")
    )
    try:
        app = create_app(container)
        found = [
            (method, r.path, r)
            for r in iter_route_contexts(app.routes)  # FastAPI's view of included routers' effective routes
            if r.path and r.path.startswith("/v1/") and hasattr(r, "dependant")
            for method in sorted(r.methods or ())
        ]
    finally:
        container.close()
    assert len(found) > 20
    yield found


def _dependency_calls(route: RouteContext) -> list[Callable[..., object]]:
    calls: list[Callable[..., object]] = []
    stack = list(route.dependant.dependencies)
    while stack:
        dep = stack.pop()
        if dep.call is not None:
            calls.append(dep.call)
        stack.extend(dep.dependencies)
    return calls


def test_admin_routes_deny_by_default_and_others_declare_a_scope(routes: list[tuple[str, str, RouteContext]]) -> None:
    for method, path, route in routes:
        calls = _dependency_calls(route)
        if path.startswith("/v1/admin/"):
            assert require_admin in calls, f"{method} {path} is not admin-only"
        elif require_session in calls:
            continue  # a signed-in browser only (password, export, account deletion, logout): no key at all
        elif (method, path) not in PUBLIC and (method, path) != ("GET", "/v1/me"):
            scopes = [getattr(c, "required_scope", None) for c in calls]
            assert any(scopes), f"{method} {path} declares no scope"
            if path.startswith("/v1/videos/characters") and method != "GET":
                assert "characters:write" in scopes, f"{method} {path} changes a likeness without characters:write"
            elif path.startswith("/v1/videos") and method != "GET":
                assert "videos:write" in scopes, f"{method} {path} changes videos without videos:write"
            elif path.startswith("/v1/webhook_endpoints") and method != "GET":
                assert "webhooks:write" in scopes, f"{method} {path} changes webhooks without webhooks:write"


def test_every_id_route_hides_other_users_objects(
    routes: list[tuple[str, str, RouteContext]], tmp_path: Path, kinema_server
) -> None:  # type: ignore[no-untyped-def]
    # Webhook endpoints on 127.0.0.1 over http are allowed here, so Alice can have one.
    hooks = {"KINEMA_WEBHOOK_ALLOW_PRIVATE": "true", "KINEMA_WEBHOOK_ALLOW_HTTP": "true"}
    server = kinema_server(f"sqlite:///{tmp_path / 'k.db'}", workers=1, **hooks)
    alice = server.api_key
    bob = provision(server.data_dir, server.db_url, "bob@example.com")
    a = client_for(server, alice)
    a_key = alice

    video = a.videos.create_and_poll(prompt="alice's kite", size=SMALL, seconds="1", extra_body=FAST)
    assert video.status == "completed"
    a_auth = {"Authorization": f"Bearer {alice}"}
    key_id = httpx.get(f"{server.base_url}/v1/keys", headers=a_auth).json()["data"][0]["id"]
    alert_id = _insert_alert(server, key_id)

    character_id = _enrol_alice(server, a_key)
    endpoint = a.webhooks.create(name="alice's", url="http://127.0.0.1:9/hook", event_types=["video.completed"])
    objects = {
        "video_id": video.id,
        "key_id": key_id,
        "alert_id": alert_id,
        "character_id": character_id,
        "webhook_endpoint_id": endpoint.id,
    }
    b_auth = {"Authorization": f"Bearer {bob}"}
    checked = []
    for method, path, _ in routes:
        params = re.findall(r"{(\w+)}", path)
        if not params or path.startswith("/v1/admin/"):
            continue
        missing = [p for p in params if p not in objects]
        assert not missing, f"{method} {path}: no factory for {missing}; add one to this test"
        url = server.base_url + path.format(**objects)
        body = BODIES.get(path, {"prompt": "matrix"}) if method == "POST" else None
        r = httpx.request(method, url, headers=b_auth, json=body)
        assert r.status_code == 404, f"{method} {path}: {r.status_code} {r.text}"
        assert r.json()["error"]["code"] == "not_found", f"{method} {path}: {r.text}"
        checked.append((method, path))
    assert len(checked) >= 15, checked
    # Ids in a body rather than the path: edits and extensions of another user's video.
    for path in ("/v1/videos/edits", "/v1/videos/extensions"):
        body = {"prompt": "matrix", "video": {"id": video.id}, "seconds": "1"}
        if path.endswith("edits"):
            body.pop("seconds")
        r = httpx.post(server.base_url + path, headers=b_auth, json=body)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", f"{path}: {r.text}"

    # Alice's objects are untouched and still hers.
    assert a.videos.retrieve(video.id).status == "completed"
    assert len(a.videos.download_content(video.id).content) > 1000
    assert httpx.get(f"{server.base_url}/v1/keys/{key_id}", headers=a_auth).json()["status"] == "active"
    alerts = httpx.get(f"{server.base_url}/v1/alerts", headers=a_auth).json()["data"]
    assert [x["id"] for x in alerts] == [alert_id] and alerts[0]["read_at"] is None
    assert a.videos.get_character(character_id).name == "alice"
    assert a.webhooks.retrieve(endpoint.id).name == "alice's"


def _enrol_alice(server: Proc, key: str) -> str:
    """Alice's own likeness (real face photos), enrolled through the API as a person would."""
    from tests.test_likeness_e2e import _enrol, _photos_present

    if not _photos_present():
        pytest.skip("face test photographs not found (set KINEMA_TEST_FACES)")
    return str(_enrol(server, key, "alice").id)


def _insert_alert(server: Proc, key_id: str) -> str:
    """An alert for Alice, as the shared-key defense would write it (no public route creates one)."""
    from sqlalchemy import select

    from kinema.db.models import AlertRow, ApiKeyRow
    from kinema.db.session import make_engine, make_session_factory
    from kinema.services.auth import new_id

    engine = make_engine(server.db_url)
    try:
        with make_session_factory(engine).begin() as s:
            owner = s.scalar(select(ApiKeyRow.owner_id).where(ApiKeyRow.id == key_id))
            alert = AlertRow(
                id=new_id("alert"), user_id=owner, kind="test", subject=key_id, message="m", created_at=time.time()
            )
            s.add(alert)
        return alert.id
    finally:
        engine.dispose()


def test_every_admin_route_refuses_members_and_anonymous(
    routes: list[tuple[str, str, RouteContext]], tmp_path: Path, kinema_server
) -> None:  # type: ignore[no-untyped-def]
    server = kinema_server(f"sqlite:///{tmp_path / 'k.db'}", workers=0)
    member = {"Authorization": f"Bearer {server.api_key}"}
    admin_key = provision(server.data_dir, server.db_url, "root@example.com", role="admin")
    admin = {"Authorization": f"Bearer {admin_key}"}
    fill = {
        "user_id": "user_" + "0" * 24,
        "invite_id": "inv_" + "0" * 24,
        "key_id": "key_" + "0" * 24,
        "name": "early-access",
    }
    admin_routes = [(m, p) for m, p, _ in routes if p.startswith("/v1/admin/")]
    assert len(admin_routes) >= 15
    for method, path in admin_routes:
        url = server.base_url + path.format(**fill)
        r = httpx.request(method, url, headers=member, json={})
        assert r.status_code == 403 and r.json()["error"]["code"] == "admin_required", f"{method} {path}: {r.text}"
        r = httpx.request(method, url, json={})
        assert r.status_code == 401, f"{method} {path}: {r.text}"
    # Not vacuous: the admin gets past the check on a read route.
    assert httpx.get(f"{server.base_url}/v1/admin/users", headers=admin).status_code == 200
    # An admin's key without the admin scope is not an admin key.
    narrow = provision(server.data_dir, server.db_url, "root@example.com", role="admin", scopes=["videos:read"])
    r = httpx.get(f"{server.base_url}/v1/admin/users", headers={"Authorization": f"Bearer {narrow}"})
    assert r.status_code == 403


def test_every_other_route_needs_credentials(
    routes: list[tuple[str, str, RouteContext]], tmp_path: Path, kinema_server
) -> None:  # type: ignore[no-untyped-def]
    server = kinema_server(f"sqlite:///{tmp_path / 'k.db'}", workers=0)
    fill = {
        "video_id": "video_" + "0" * 32,
        "key_id": "key_" + "0" * 24,
        "alert_id": "alert_" + "0" * 24,
        "character_id": "char_" + "0" * 24,
        "webhook_endpoint_id": "we_" + "0" * 24,
    }
    for method, path, _ in routes:
        if path.startswith("/v1/admin/") or (method, path) in PUBLIC:
            continue
        r = httpx.request(method, server.base_url + path.format(**fill), json={})
        assert r.status_code == 401, f"{method} {path}: {r.status_code}"
        assert r.json()["error"]["code"] in ("invalid_api_key",), r.text
