"""Webhooks against real databases (SQLite and PostgreSQL) and a real HTTP receiver on 127.0.0.1.

The only stand-in is the DNS resolver in the address tests (no DNS is reachable here): a function that
answers chosen addresses, including one that changes its answer between the check and the delivery.
"""

from __future__ import annotations

import base64
import http.server
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import openai
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from kinema.audit.checkpoint import CheckpointSigner
from kinema.audit.log import AuditLog
from kinema.config import Settings
from kinema.container import webhook_policy
from kinema.crypto import SqliteDataKeyStore, open_file_vault
from kinema.db.models import AlertRow, AuditEntryRow, WebhookEndpointRow, WebhookOutboxRow
from kinema.db.session import make_engine, make_session_factory, upgrade_to_head
from kinema.netaddr import IPAddress, parse_address
from kinema.queue.store import JobQueue, Outputs
from kinema.services.errors import InvalidRequest, NotFound
from kinema.services.webhooks import (
    DeliveryPolicy,
    Target,
    UnsafeTarget,
    WebhookService,
    check_target,
    is_public,
    post,
    record_video_events,
    sign,
)
from tests.factories import video_row

SDK = openai.OpenAI(api_key="unused", base_url="http://127.0.0.1:9/v1")


# -- a receiver: one per module, its behaviour chosen by path ---------------------------------------


@dataclass
class Receiver:
    """Records every POST; ``/fail-N`` answers 500 to its first N requests, ``/slow`` stalls, ``/redirect`` 302s."""

    port: int = 0
    got: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def at(self, path: str) -> list[tuple[dict[str, str], bytes]]:
        with self.lock:
            return [(h, b) for p, h, b in self.got if p == path]


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    rec = Receiver()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (the stdlib's name)
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            with rec.lock:
                rec.got.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                seen = sum(1 for p, _, _ in rec.got if p == self.path)
            status = 200
            if self.path.startswith("/fail-"):
                status = 500 if seen <= int(self.path.split("-")[1]) else 200
            elif self.path == "/slow":
                time.sleep(3)
            elif self.path == "/redirect":
                self.send_response(302)
                self.send_header("Location", "/ok-after-redirect")
                self.end_headers()
                return
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.handle_error = lambda request, address: None  # type: ignore[method-assign]  # /slow's client hung up
    rec.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield rec
    server.shutdown()
    server.server_close()


def uniq(prefix: str) -> str:
    """A receiver path of its own (the receiver is shared by the module, each test runs on two databases)."""
    return f"{prefix}-{time.time_ns()}"


# -- the service on a real database ------------------------------------------------------------------


def resolver_to(*answers: str):  # type: ignore[no-untyped-def]
    """A DNS stand-in answering ``answers`` for every name (an IP literal answers itself)."""

    def resolve(host: str, port: int) -> list[IPAddress]:
        literal = parse_address(host)
        if literal is not None:
            return [literal]
        return [a for a in (parse_address(x) for x in answers) if a is not None]

    return resolve


@dataclass
class Env:
    sessions: sessionmaker[Session]
    service: WebhookService
    queue: JobQueue
    audit: AuditLog


@pytest.fixture
def env(db_url: str, tmp_path: Path) -> Iterator[Env]:
    engine = make_engine(db_url)
    upgrade_to_head(engine)
    sessions = make_session_factory(engine)
    vault = open_file_vault(tmp_path / "master.key", SqliteDataKeyStore(tmp_path / "keys.db"))
    policy = DeliveryPolicy(
        allow_http=True, allow_private=True, backoff_seconds=0.01, backoff_max_seconds=0.02, timeout_seconds=1.0
    )
    queue = JobQueue(sessions, lease_seconds=30, max_attempts=3, on_settled=record_video_events)
    audit = AuditLog(sessions, CheckpointSigner.load_or_create(tmp_path / "audit.key"))
    yield Env(sessions, WebhookService(sessions, vault, policy, audit=audit), queue, audit)
    engine.dispose()


def test_endpoint_changes_are_audited_with_the_host_only(env: Env) -> None:
    """Create, update, rotate and delete each leave an audit entry by the owner; a token in the URL does not."""
    made = env.service.create(
        "user_a", name="n", url="http://127.0.0.1:8080/in?token=t0ken", event_types=["video.failed"]
    )
    env.service.update("user_a", made.row.id, name="n")  # no change: no entry
    env.service.update("user_a", made.row.id, event_types=["video.failed", "video.completed"])
    env.service.rotate_secret("user_a", made.row.id)
    with pytest.raises(NotFound):
        env.service.delete("user_b", made.row.id)  # someone else's: refused, and not audited
    env.service.delete("user_a", made.row.id)
    with env.sessions() as s:
        entries = list(
            s.scalars(select(AuditEntryRow).where(AuditEntryRow.target == made.row.id).order_by(AuditEntryRow.seq))
        )
    assert [(e.action, e.actor) for e in entries] == [
        ("webhook.create", "user_a"),
        ("webhook.update", "user_a"),
        ("webhook.rotate_secret", "user_a"),
        ("webhook.delete", "user_a"),
    ]
    assert {e.details["host"] for e in entries} == {"127.0.0.1"}
    assert entries[1].details["event_types"] == ["video.completed", "video.failed"]
    assert all("t0ken" not in json.dumps(e.details) for e in entries)
    assert env.audit.verify().ok


def _settle(env: Env, owner: str, *, fail: bool = False, stale: bool = False) -> str:
    """A video of ``owner`` claimed and settled through the real queue; returns its id."""
    with env.sessions.begin() as s:
        row = video_row(f"video_{time.time_ns()}", owner_id=owner)
        s.add(row)
        vid = row.id
    lease = env.queue.claim("w1")
    assert lease is not None and lease.video_id == vid
    if stale:
        lease = type(lease)(lease.video_id, lease.token - 1, lease.attempt, lease.worker_id)
    if fail:
        env.queue.fail(lease, "generation_failed", "boom")
    else:
        env.queue.complete(lease, Outputs("v", "t", "s"))
    return vid


def _outbox(env: Env) -> list[WebhookOutboxRow]:
    with env.sessions() as s:
        return list(s.scalars(select(WebhookOutboxRow).order_by(WebhookOutboxRow.id)))


def _drain(service: WebhookService, until: Callable[[], bool], timeout: float = 20.0) -> None:
    """Run delivery rounds, as the worker's loop does, until ``until()`` (fail after ``timeout`` s)."""
    deadline = time.monotonic() + timeout
    while not until():
        assert time.monotonic() < deadline, "timed out delivering"
        service.deliver_due()
        time.sleep(0.02)


def test_outbox_is_written_with_the_final_state_and_only_then(env: Env, receiver: Receiver) -> None:
    done = env.service.create("alice", name="a", url=receiver.url("/ok"), event_types=["video.completed"])
    both = env.service.create(
        "alice", name="b", url=receiver.url("/ok"), event_types=["video.failed", "video.completed"]
    )
    env.service.create("bob", name="c", url=receiver.url("/ok"), event_types=["video.completed"])
    completed = _settle(env, "alice")
    failed = _settle(env, "alice", fail=True)
    rows = _outbox(env)
    assert sorted((r.endpoint_id, r.event_type) for r in rows) == sorted(
        [(done.row.id, "video.completed"), (both.row.id, "video.completed"), (both.row.id, "video.failed")]
    )
    first = json.loads(rows[0].payload)
    assert first == {
        "id": rows[0].event_id,
        "object": "event",
        "type": "video.completed",
        "created_at": first["created_at"],
        "data": {"id": completed},
    }
    assert json.loads(rows[-1].payload)["data"] == {"id": failed}
    # One event id per video, shared by its endpoints.
    assert rows[0].event_id == rows[1].event_id != rows[2].event_id
    # A stale lease settles nothing, so writes no event.
    _settle(env, "alice", stale=True)
    assert len(_outbox(env)) == 3


def test_flaky_receiver_gets_the_event_exactly_once_more_with_the_same_id(env: Env, receiver: Receiver) -> None:
    path = uniq("/fail-3")  # fails 3 times, then 200
    ep = env.service.create("carol", name="flaky", url=receiver.url(path), event_types=["video.completed"])
    vid = _settle(env, "carol")
    _drain(env.service, until=lambda: len(receiver.at(path)) >= 4 and _outbox(env)[0].delivered_at is not None)
    got = receiver.at(path)
    assert len(got) == 4, [h.get("webhook-id") for h, _ in got]
    assert len({h["webhook-id"] for h, _ in got}) == 1 and len({b for _, b in got}) == 1
    headers, body = got[-1]
    event = SDK.webhooks.unwrap(body, headers, secret=ep.secret)
    assert event.type == "video.completed" and event.data.id == vid  # type: ignore[union-attr]
    [row] = _outbox(env)
    assert row.delivered_at is not None and row.attempts == 4 and row.last_status == 200
    log = env.service.deliveries("carol", ep.row.id)
    assert [(d.attempt, d.status_code) for d in reversed(log)] == [(1, 500), (2, 500), (3, 500), (4, 200)]
    for _ in range(5):
        env.service.deliver_due()
    assert len(receiver.at(path)) == 4  # delivered: never again


def test_an_endpoint_failing_in_a_row_is_disabled_once_with_one_alert(env: Env, receiver: Receiver) -> None:
    policy = DeliveryPolicy(
        allow_http=True, allow_private=True, backoff_seconds=0.01, backoff_max_seconds=0.01, disable_after_failures=2
    )
    service = WebhookService(env.sessions, env.service._vault, policy)
    path = uniq("/fail-99")
    ep = service.create("dave", name="down", url=receiver.url(path), event_types=["video.completed"])
    _settle(env, "dave")
    _drain(service, until=lambda: not service.get("dave", ep.row.id).enabled)
    row = service.get("dave", ep.row.id)
    assert not row.enabled and row.disabled_reason == "2 deliveries in a row failed"
    assert len(receiver.at(path)) == 2
    with env.sessions() as s:
        alerts = list(s.scalars(select(AlertRow).where(AlertRow.user_id == "dave")))
    assert [(a.kind, a.subject) for a in alerts] == [("webhook_endpoint_disabled", ep.row.id)]
    # Re-enabled by its owner: the kept event goes out.
    service.update("dave", ep.row.id, enabled=True)
    assert service.get("dave", ep.row.id).consecutive_failures == 0
    service.deliver_due()
    assert len(receiver.at(path)) == 3


def test_private_targets_refused_at_create_and_at_delivery(env: Env, receiver: Receiver) -> None:
    strict = DeliveryPolicy(allow_http=True, allow_private=False, timeout_seconds=1.0)
    answers = ["93.184.215.14"]  # public at create...

    def flipping(host: str, port: int) -> list[IPAddress]:
        return resolver_to(*answers)(host, port)  # type: ignore[no-any-return]

    service = WebhookService(env.sessions, env.service._vault, strict, resolver=flipping)
    with pytest.raises(InvalidRequest) as err:
        service.create("erin", name="x", url=receiver.url("/ok"), event_types=["video.completed"])
    assert err.value.param == "url" and "127.0.0.1" in err.value.message
    path = uniq("/rebound")
    ep = service.create(
        "erin", name="x", url=f"http://hooks.example:{receiver.port}{path}", event_types=["video.completed"]
    )
    answers[:] = ["127.0.0.1"]  # ... and the name now points at this machine (DNS rebinding)
    _settle(env, "erin")
    service.deliver_due()
    assert receiver.at(path) == []
    [d] = service.deliveries("erin", ep.row.id)
    assert d.status_code is None and d.error is not None and d.error.startswith("refused:") and "127.0.0.1" in d.error


def test_default_settings_refuse_plain_http_and_private_targets(env: Env, tmp_path: Path) -> None:
    policy = webhook_policy(Settings(data_dir=tmp_path))
    assert (policy.allow_private, policy.allow_http) == (False, False)
    service = WebhookService(env.sessions, env.service._vault, policy)  # the real resolver
    for url, why in (
        ("http://hooks.example/x", "https://"),
        ("https://127.0.0.1/x", "127.0.0.1"),
        ("https://localhost/x", "not a public address"),
        ("https://169.254.169.254/latest/meta-data", "169.254.169.254"),
        ("https://[::1]/x", "::1"),
        ("https://10.0.0.7/x", "10.0.0.7"),
        ("https://[::ffff:192.168.0.1]/x", "192.168.0.1"),
    ):
        with pytest.raises(InvalidRequest) as err:
            service.create("ivy", name="x", url=url, event_types=["video.completed"])
        assert err.value.param == "url" and why in err.value.message, (url, err.value.message)
    assert service.page("ivy") == ([], False)


def test_delivery_connects_to_the_checked_address_not_a_new_lookup(env: Env, receiver: Receiver) -> None:
    # The name does not resolve on this machine at all: only the checked address can have been used.
    service = WebhookService(env.sessions, env.service._vault, env.service.policy, resolver=resolver_to("127.0.0.1"))
    path = uniq("/pinned")
    ep = service.create(
        "fay", name="x", url=f"http://no-such-host.invalid:{receiver.port}{path}", event_types=["video.failed"]
    )
    result = service.test("fay", ep.row.id, "video.failed")
    assert result.status == 200
    [(headers, body)] = receiver.at(path)
    assert headers["host"] == f"no-such-host.invalid:{receiver.port}"
    assert SDK.webhooks.unwrap(body, headers, secret=ep.secret).type == "video.failed"


def test_endpoints_are_their_owners_and_secrets_stay_sealed(env: Env, receiver: Receiver) -> None:
    path = uniq("/ok")
    ep = env.service.create("gus", name="mine", url=receiver.url(path), event_types=["video.completed"])
    for call in (
        lambda: env.service.get("hal", ep.row.id),
        lambda: env.service.update("hal", ep.row.id, name="theirs"),
        lambda: env.service.rotate_secret("hal", ep.row.id),
        lambda: env.service.delete("hal", ep.row.id),
    ):
        with pytest.raises(NotFound):
            call()
    assert env.service.page("hal") == ([], False)
    # Pages in creation order; the cursor still works after its endpoint is deleted.
    more = [
        env.service.create("gus", name=f"n{i}", url=receiver.url(path), event_types=["video.failed"]) for i in range(2)
    ]
    first, has_more = env.service.page("gus", limit=2)
    assert [r.id for r in first] == [ep.row.id, more[0].row.id] and has_more
    env.service.delete("gus", more[0].row.id)
    rest, has_more = env.service.page("gus", after=more[0].row.id, limit=2)
    assert [r.id for r in rest] == [more[1].row.id] and not has_more
    with env.sessions() as s:
        stored = s.get(WebhookEndpointRow, ep.row.id)
    assert stored is not None and ep.secret.encode() not in stored.secret
    assert base64.b64decode(ep.secret[6:]) not in stored.secret
    # Rotation keeping the old secret: both signatures are sent, and both verify.
    rotated = env.service.rotate_secret("gus", ep.row.id, keep_old_for_24_hours=True)
    env.service.test("gus", ep.row.id, "video.completed")
    [(headers, body)] = receiver.at(path)
    assert len(headers["webhook-signature"].split()) == 2
    SDK.webhooks.unwrap(body, headers, secret=rotated.secret)
    SDK.webhooks.unwrap(body, headers, secret=ep.secret)
    # Deleted: its data key is shredded, so the sealed secret is unreadable anywhere.
    env.service.delete("gus", ep.row.id)
    assert not env.service._vault.has_key(ep.row.id)


# -- pure parts --------------------------------------------------------------------------------------


def test_signature_is_what_the_openai_sdk_verifies_and_tampering_fails() -> None:
    secret = "whsec_" + base64.b64encode(b"k" * 32).decode()
    body = b'{"id":"evt_1","object":"event","type":"video.completed","created_at":1,"data":{"id":"video_1"}}'
    now = int(time.time())
    headers = {
        "webhook-id": "evt_1",
        "webhook-timestamp": str(now),
        "webhook-signature": sign(secret, "evt_1", now, body),
    }
    assert SDK.webhooks.unwrap(body, headers, secret=secret).type == "video.completed"
    for bad_body, bad_headers in (
        (body.replace(b"video_1", b"video_2"), headers),
        (body, {**headers, "webhook-id": "evt_2"}),
        (body, {**headers, "webhook-timestamp": str(now - 3600)}),
    ):
        with pytest.raises(openai.InvalidWebhookSignatureError):
            SDK.webhooks.unwrap(bad_body, bad_headers, secret=secret)


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0",
        "224.0.0.1", "240.0.0.1", "255.255.255.255", "192.0.2.1", "::1", "::", "fe80::1", "fc00::1",
        "ff02::1", "::ffff:127.0.0.1", "2002:7f00:1::1", "2001:db8::1", "64:ff9b::7f00:1",
    ],
)  # fmt: skip
def test_non_public_addresses_are_refused(address: str) -> None:
    addr = parse_address(address)
    assert addr is not None and not is_public(addr)
    with pytest.raises(UnsafeTarget):
        check_target("https://hooks.example/x", allow_http=False, allow_private=False, resolver=resolver_to(address))


def test_public_addresses_pass_and_urls_are_checked() -> None:
    for address in ("93.184.215.14", "2606:4700:4700::1111"):
        t = check_target(
            "https://hooks.example/x?a=1", allow_http=False, allow_private=False, resolver=resolver_to(address)
        )
        assert (t.host, t.port, t.path, str(t.address)) == ("hooks.example", 443, "/x?a=1", address)
    public = resolver_to("93.184.215.14")
    for url in ("http://hooks.example/x", "ftp://hooks.example/", "https://user:pw@hooks.example/", "https:///x"):
        with pytest.raises(UnsafeTarget):
            check_target(url, allow_http=False, allow_private=False, resolver=public)
    # A name with one private address among public ones is refused whatever order they come in.
    with pytest.raises(UnsafeTarget):
        check_target(
            "https://h.example/",
            allow_http=False,
            allow_private=False,
            resolver=resolver_to("93.184.215.14", "10.0.0.1"),
        )
    assert (
        check_target("http://h.example/", allow_http=True, allow_private=True, resolver=resolver_to("10.0.0.1")).port
        == 80
    )


def test_post_is_bounded_and_follows_no_redirect(receiver: Receiver) -> None:
    loopback = parse_address("127.0.0.1")
    assert loopback is not None
    started = time.monotonic()
    slow = post(
        Target("http", "127.0.0.1", receiver.port, "/slow", loopback), b"{}", {}, timeout=0.3, max_response_bytes=10
    )
    assert slow.status is None and slow.error is not None and time.monotonic() - started < 1.5
    moved = post(
        Target("http", "127.0.0.1", receiver.port, "/redirect", loopback), b"{}", {}, timeout=1, max_response_bytes=10
    )
    assert moved.status == 302 and not moved.ok and receiver.at("/ok-after-redirect") == []
