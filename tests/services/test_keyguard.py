"""The shared-key defense against real databases (SQLite and PostgreSQL): a leaked key used from many
networks or programs, or too fast, is suspended once, its owner alerted and the suspension audited."""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from kinema.audit.checkpoint import CheckpointSigner
from kinema.audit.log import AuditEntryRow, AuditLog
from kinema.db.models import AlertRow, ApiKeyRow, KeySightingRow, UserRow
from kinema.db.session import make_engine, make_session_factory, upgrade_to_head
from kinema.services.auth import ClientInfo, Principal, key_hash, new_api_key, new_id
from kinema.services.errors import Unauthorized
from kinema.services.keyguard import KeyGuard

IP_TEXT = re.compile(r"\d{1,3}\.\d{1,3}\.\d{1,3}|[0-9a-f]{1,4}:[0-9a-f]{0,4}:", re.IGNORECASE)


class Clock:
    def __init__(self, t: float = 1_800_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@dataclass
class Env:
    engine: Engine
    sessions: sessionmaker[Session]
    audit: AuditLog
    clock: Clock
    user_id: str
    key_a: str  # the key that leaks
    key_b: str  # the owner's other key
    principal_a: Principal
    principal_b: Principal
    guard: Callable[..., KeyGuard]

    def key(self, key_id: str) -> ApiKeyRow:
        with self.sessions() as s:
            row = s.get(ApiKeyRow, key_id)
            assert row is not None
            return row

    def alerts(self) -> list[AlertRow]:
        with self.sessions() as s:
            return list(s.scalars(select(AlertRow).order_by(AlertRow.created_at)))

    def suspensions(self) -> list[AuditEntryRow]:
        with self.sessions() as s:
            return list(s.scalars(select(AuditEntryRow).where(AuditEntryRow.action == "key.suspend")))

    def sightings(self, key_id: str, kind: str) -> list[KeySightingRow]:
        with self.sessions() as s:
            q = select(KeySightingRow).where(KeySightingRow.key_id == key_id, KeySightingRow.kind == kind)
            return list(s.scalars(q))


def _add_key(s: Session, owner: str, name: str, now: float) -> str:
    key_id = new_id("key")
    token = new_api_key()
    s.add(ApiKeyRow(id=key_id, owner_id=owner, name=name, key_hash=key_hash(token), hint=token[:8], created_at=now))
    return key_id


@pytest.fixture
def env(db_url: str, tmp_path: Path) -> Iterator[Env]:
    engine = make_engine(db_url)
    upgrade_to_head(engine)
    sessions = make_session_factory(engine)
    audit = AuditLog(sessions, CheckpointSigner.load_or_create(tmp_path / "audit.key"))
    clock = Clock()
    user_id = new_id("user")
    with sessions() as s, s.begin():
        s.add(UserRow(id=user_id, email=f"{user_id}@example.com", created_at=clock.t))
        key_a = _add_key(s, user_id, "ci", clock.t)
        key_b = _add_key(s, user_id, "laptop", clock.t)

    def guard(**overrides: object) -> KeyGuard:
        kw: dict = dict(window_seconds=3600, max_networks=4, max_agents=4, max_requests_per_minute=1000, clock=clock)
        kw.update(overrides)
        return KeyGuard(sessions, audit, **kw)

    yield Env(
        engine,
        sessions,
        audit,
        clock,
        user_id,
        key_a,
        key_b,
        Principal(id=user_id, key_id=key_a),
        Principal(id=user_id, key_id=key_b),
        guard,
    )
    engine.dispose()


def _no_ip_text(entry: AuditEntryRow) -> None:
    blob = json.dumps({"actor": entry.actor, "target": entry.target, "details": entry.details})
    assert not IP_TEXT.search(blob), blob
    assert "curl" not in blob and "Mozilla" not in blob and "kin_" not in blob


def test_leaked_key_suspended_owner_alerted_other_key_unaffected(env: Env) -> None:
    guard = env.guard()
    refused_at = None
    for i in range(20):
        client = ClientInfo(f"203.0.{i}.{10 + i}", "python-httpx/0.27")
        try:
            guard.observe(env.principal_a, client)
        except Unauthorized as exc:
            assert exc.code == "api_key_suspended" and exc.status == 401
            assert "suspended automatically" in exc.message and "more than 4 different networks" in exc.message
            assert "203.0." not in exc.message
            refused_at = i if refused_at is None else refused_at
        else:
            assert refused_at is None, "a suspended key passed"
        # the owner's other key, from its one network, keeps passing throughout
        guard.observe(env.principal_b, ClientInfo("198.51.100.20", "kinema-cli/1.0"))
    assert refused_at == 4  # the fifth distinct /24

    key = env.key(env.key_a)
    assert key.suspended_at is not None and key.revoked_at is None
    assert key.suspend_reason and "more than 4 different networks within 1 hour" in key.suspend_reason
    other = env.key(env.key_b)
    assert other.suspended_at is None and other.suspend_reason is None

    alerts = env.alerts()
    assert len(alerts) == 1
    (alert,) = alerts
    assert (alert.user_id, alert.kind, alert.subject) == (env.user_id, "key_suspended", env.key_a)
    assert "create a new key" in alert.message and "networks" in alert.message
    assert "203.0." not in alert.message

    entries = env.suspensions()
    assert len(entries) == 1
    (entry,) = entries
    assert entry.actor is None and entry.target == env.key_a
    assert entry.details == {"reason": "networks", "owner": env.user_id, "networks": 5, "agents": 1}
    _no_ip_text(entry)
    assert env.audit.verify().ok

    # (the authenticator refuses a suspended key before observe; here every later call was refused too)
    assert len(env.sightings(env.key_a, "net")) == 20
    assert len(env.sightings(env.key_b, "net")) == 1


def test_too_many_user_agents(env: Env) -> None:
    guard = env.guard(max_agents=3)
    for i in range(3):
        guard.observe(env.principal_a, ClientInfo("198.51.100.7", f"curl/8.{i}"))
    guard.observe(env.principal_a, ClientInfo("198.51.100.8", "curl/8.0"))  # same /24, seen agent
    with pytest.raises(Unauthorized):
        guard.observe(env.principal_a, ClientInfo("198.51.100.9", ""))  # counts as "(none)": the fourth
    agents = {s.value for s in env.sightings(env.key_a, "agent")}
    assert env.key(env.key_a).suspended_at is not None  # ...which is over three
    assert agents == {"curl/8.0", "curl/8.1", "curl/8.2", "(none)"}
    assert [e.details["reason"] for e in env.suspensions()] == ["agents"]
    _no_ip_text(env.suspensions()[0])
    assert len(env.alerts()) == 1


def test_too_many_user_agents_raises(env: Env) -> None:
    guard = env.guard(max_agents=2)
    guard.observe(env.principal_a, ClientInfo("198.51.100.7", "a" * 1000))
    guard.observe(env.principal_a, ClientInfo("198.51.100.7", "Mozilla/5.0"))
    with pytest.raises(Unauthorized) as err:
        guard.observe(env.principal_a, ClientInfo("198.51.100.7", "Mozilla/5.0 (X11)"))
    assert err.value.code == "api_key_suspended" and "client programs" in err.value.message
    assert max(len(s.value) for s in env.sightings(env.key_a, "agent")) == 256
    (entry,) = env.suspensions()
    assert entry.details == {"reason": "agents", "owner": env.user_id, "networks": 1, "agents": 3}
    _no_ip_text(entry)


def test_normal_use_under_thresholds_passes(env: Env) -> None:
    guard = env.guard()
    agents = ["openai-python/1.50", "kinema-cli/1.0", "Mozilla/5.0", "curl/8.5"]  # four: at, not over
    nets = ["198.51.100.7", "198.51.100.200", "203.0.113.5", "192.0.2.44", "2001:db8:1::1", "2001:db8:1:2::9"]
    for i in range(300):
        env.clock.t += 1
        guard.observe(env.principal_a, ClientInfo(nets[i % len(nets)], agents[i % len(agents)]))
    guard.observe(Principal(id=env.user_id), ClientInfo("1.2.3.4"))  # a browser session: no key, ignored
    assert env.key(env.key_a).suspended_at is None
    assert {s.value for s in env.sightings(env.key_a, "net")} == {
        "198.51.100.0/24", "203.0.113.0/24", "192.0.2.0/24", "2001:db8:1::/48"
    }  # fmt: skip
    assert env.alerts() == [] and env.suspensions() == []


def test_sightings_written_at_most_every_tenth_window(env: Env) -> None:
    guard = env.guard(window_seconds=1000)
    t0 = env.clock.t
    client = ClientInfo("198.51.100.7", "curl/8")
    guard.observe(env.principal_a, client)
    env.clock.t = t0 + 99
    guard.observe(env.principal_a, client)
    (net,) = env.sightings(env.key_a, "net")
    assert net.first_seen == net.last_seen == t0  # not rewritten within window/10
    env.clock.t = t0 + 101
    guard.observe(env.principal_a, client)
    (net,) = env.sightings(env.key_a, "net")
    assert (net.first_seen, net.last_seen) == (t0, t0 + 101)
    # another process (a fresh guard) writes it regardless of this one's memory
    env.clock.t = t0 + 102
    env.guard(window_seconds=1000).observe(env.principal_a, client)
    (net,) = env.sightings(env.key_a, "net")
    assert net.last_seen == t0 + 102


def test_window_expiry_and_revived_sightings(env: Env) -> None:
    guard = env.guard(window_seconds=1000, max_networks=4)
    for i in range(4):
        guard.observe(env.principal_a, ClientInfo(f"198.51.{i}.1", "curl/8"))
    env.clock.t += 1001  # the first four drop out of the window
    for i in range(4, 8):
        guard.observe(env.principal_a, ClientInfo(f"198.51.{i}.1", "curl/8"))
    assert env.key(env.key_a).suspended_at is None
    # an old network seen again counts again: five within the window now
    with pytest.raises(Unauthorized):
        guard.observe(env.principal_a, ClientInfo("198.51.0.1", "curl/8"))
    (entry,) = env.suspensions()
    assert entry.details["networks"] == 5


def test_request_rate(env: Env) -> None:
    guard = env.guard(max_requests_per_minute=30)
    client = ClientInfo("198.51.100.7", "curl/8")
    for _ in range(30):
        guard.observe(env.principal_a, client)
        guard.observe(env.principal_b, client)  # counted per key: the other key is at 30, not 60
    assert env.key(env.key_a).suspended_at is None
    with pytest.raises(Unauthorized) as err:
        guard.observe(env.principal_a, client)
    assert err.value.code == "api_key_suspended" and "more than 30 requests in a minute" in err.value.message
    assert env.key(env.key_b).suspended_at is None
    (entry,) = env.suspensions()
    assert entry.details == {"reason": "rate", "owner": env.user_id, "networks": 1, "agents": 1}
    assert len(env.alerts()) == 1


def test_request_rate_shared_through_redis(env: Env) -> None:
    redis = pytest.importorskip("redis")
    try:
        redis.Redis.from_url("redis://127.0.0.1:6379/0", socket_connect_timeout=1).ping()
    except Exception:
        pytest.skip("Redis not reachable at 127.0.0.1:6379")
    ns = f"test-{uuid.uuid4().hex}"  # keys of earlier runs or other tests never collide
    uri = "redis://127.0.0.1:6379/0"
    one, two = (env.guard(max_requests_per_minute=10, limiter_storage_uri=uri, namespace=ns) for _ in range(2))
    client = ClientInfo("198.51.100.7", "curl/8")
    for i in range(10):  # two API processes share the count
        (one if i % 2 else two).observe(env.principal_a, client)
    with pytest.raises(Unauthorized):
        one.observe(env.principal_a, client)
    assert [e.details["reason"] for e in env.suspensions()] == ["rate"]


def test_limiter_outage_fails_open(env: Env) -> None:
    guard = env.guard(max_requests_per_minute=2, limiter_storage_uri="redis://127.0.0.1:1/0")
    for _ in range(5):
        guard.observe(env.principal_a, ClientInfo("198.51.100.7", "curl/8"))
    assert env.key(env.key_a).suspended_at is None


def test_concurrent_new_networks_one_suspension(env: Env) -> None:
    guard = env.guard(max_networks=4)
    barrier = threading.Barrier(10)
    refused: list[Unauthorized] = []
    errors: list[BaseException] = []

    def hit(i: int) -> None:
        barrier.wait()
        try:
            guard.observe(env.principal_a, ClientInfo(f"203.0.{100 + i}.1", "curl/8"))
        except Unauthorized as exc:
            refused.append(exc)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=hit, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert refused and all(e.code == "api_key_suspended" for e in refused)
    assert len(env.sightings(env.key_a, "net")) == 10
    assert env.key(env.key_a).suspended_at is not None
    assert len(env.alerts()) == 1
    assert len(env.suspensions()) == 1
    with env.sessions() as s:
        assert s.scalar(select(func.count()).select_from(AlertRow)) == 1
    assert env.audit.verify().ok


def test_concurrent_same_sighting_from_processes(env: Env) -> None:
    # ten "processes" (guards without shared memory) insert the same new sighting at once: one row
    guards = [env.guard() for _ in range(10)]
    barrier = threading.Barrier(10)
    errors: list[BaseException] = []

    def hit(g: KeyGuard) -> None:
        barrier.wait()
        try:
            g.observe(env.principal_a, ClientInfo("198.51.100.7", "curl/8"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=hit, args=(g,)) for g in guards]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert len(env.sightings(env.key_a, "net")) == 1 and len(env.sightings(env.key_a, "agent")) == 1
    assert env.key(env.key_a).suspended_at is None


def test_revoked_key_not_suspended(env: Env) -> None:
    with env.sessions() as s, s.begin():
        row = s.get(ApiKeyRow, env.key_a)
        assert row is not None
        row.revoked_at = env.clock.t
    guard = env.guard(max_networks=1)
    guard.observe(env.principal_a, ClientInfo("198.51.100.7", "curl/8"))
    with pytest.raises(Unauthorized) as err:  # revoked between authentication and this check
        guard.observe(env.principal_a, ClientInfo("203.0.113.7", "curl/8"))
    assert err.value.code == "invalid_api_key"
    assert env.key(env.key_a).suspended_at is None
    assert env.alerts() == [] and env.suspensions() == []
