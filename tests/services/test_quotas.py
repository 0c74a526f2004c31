"""Quotas on real databases (SQLite and PostgreSQL) and rate limits in memory and in Redis."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from kinema.db.models import UsageChargeRow, UserRow, VideoRow
from kinema.db.session import make_engine, make_session_factory, upgrade_to_head
from kinema.db.usage import refund_in, used_seconds
from kinema.services.auth import Limits, Principal
from kinema.services.errors import RateLimited
from kinema.services.quotas import Admission, RateLimiter, usage
from tests.factories import video_row

REDIS_URL = "redis://127.0.0.1:6379/15"
T0 = 1_700_000_000.0  # a fixed "now" for ledger tests, so Retry-After can be checked exactly


@pytest.fixture
def sessions(db_url: str) -> Iterator[sessionmaker[Session]]:
    """A migrated database with two users, ``alice`` and ``bob``."""
    engine = make_engine(db_url)
    upgrade_to_head(engine)
    factory = make_session_factory(engine)
    with factory.begin() as s:
        s.add_all(
            [
                UserRow(id="alice", email="alice@example.com", created_at=T0),
                UserRow(id="bob", email="bob@example.com", created_at=T0),
            ]
        )
    yield factory
    engine.dispose()


def video(video_id: str, owner_id: str, key_id: str | None = None, now: float = T0) -> VideoRow:
    return video_row(video_id, owner_id=owner_id, key_id=key_id, prompt="a cat", num_frames=17, fps=16, created_at=now)


def admit(
    sessions: sessionmaker[Session], principal: Principal, video_id: str, *, seconds: float = 1.0, now: float = T0
) -> None:
    """Admit and insert a queued job in one transaction, as the video service does."""
    with sessions.begin() as s:
        Admission().admit_in(s, principal, video_id=video_id, seconds=seconds, now=now)
        s.add(video(video_id, principal.id, principal.key_id, now))


def refused(sessions: sessionmaker[Session], principal: Principal, video_id: str, **kw: float) -> RateLimited:
    with pytest.raises(RateLimited) as err:
        admit(sessions, principal, video_id, **kw)
    assert err.value.status == 429 and err.value.retryable is False
    assert err.value.headers["Retry-After"] == str(err.value.retry_after)
    return err.value


# -- admission -----------------------------------------------------------------------------------


def test_parallel_admissions_admit_exactly_the_concurrent_limit(sessions: sessionmaker[Session]) -> None:
    alice = Principal(id="alice", limits=Limits(concurrent_jobs=5))
    n = 20
    barrier = threading.Barrier(n)

    def attempt(i: int) -> str:
        barrier.wait()
        try:
            admit(sessions, alice, f"video_{i}")
        except RateLimited as exc:
            return exc.code or "?"
        return "admitted"

    started = time.monotonic()
    with ThreadPoolExecutor(n) as pool:
        outcomes = list(pool.map(attempt, range(n)))  # any other exception (e.g. "database is locked") fails here
    assert time.monotonic() - started < 20  # nobody sat out SQLite's 30 s busy timeout
    assert outcomes.count("admitted") == 5
    assert outcomes.count("concurrent_jobs_exceeded") == 15
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(VideoRow)) == 5
        assert s.scalar(select(func.count()).select_from(UsageChargeRow)) == 5  # refused jobs charged nothing
        assert s.get(UserRow, "alice").last_enqueue_at == T0  # type: ignore[union-attr]
        assert usage(s, alice, T0)["active_jobs"] == 5


def test_a_keys_own_concurrent_limit_applies_to_that_key_only(sessions: sessionmaker[Session]) -> None:
    user_limits = Limits(concurrent_jobs=4)
    narrow = Principal(id="alice", key_id="key_narrow", limits=user_limits, key_limits=Limits(concurrent_jobs=2))
    other = Principal(id="alice", key_id="key_other", limits=user_limits)
    admit(sessions, narrow, "v1")
    admit(sessions, narrow, "v2")
    err = refused(sessions, narrow, "v3")
    assert err.code == "concurrent_jobs_exceeded" and "this API key" in err.message and "limit 2" in err.message
    admit(sessions, other, "v3")  # the user still has room: the narrow key's limit is its own
    admit(sessions, other, "v4")
    err = refused(sessions, other, "v5")
    assert err.code == "concurrent_jobs_exceeded" and "your account" in err.message and "limit 4" in err.message
    admit(sessions, Principal(id="bob", limits=user_limits), "b1")  # another user is not counted

    with sessions.begin() as s:  # one of the narrow key's jobs finishes: a slot frees for the key and the user
        s.get(VideoRow, "v1").status = "completed"  # type: ignore[union-attr]
    admit(sessions, narrow, "v5")
    for principal in (narrow, other):  # both full again (the account's limit is named first)
        assert "your account" in refused(sessions, principal, "v6").message


def test_video_seconds_per_day_with_retry_after_and_refunds(sessions: sessionmaker[Session]) -> None:
    alice = Principal(id="alice", limits=Limits(video_seconds_per_day=30))
    admit(sessions, alice, "v1", seconds=10, now=T0)
    admit(sessions, alice, "v2", seconds=10, now=T0 + 100.5)
    admit(sessions, alice, "v3", seconds=10, now=T0 + 200)  # exactly at the limit: fits
    err = refused(sessions, alice, "v4", seconds=5, now=T0 + 300)
    assert err.code == "video_seconds_exceeded" and "30 s of 30 s" in err.message
    assert err.retry_after == 86400 - 300  # when v1 (the oldest) leaves the 24 h window
    err = refused(sessions, alice, "v4", seconds=15, now=T0 + 300)  # needs v1 and v2 to leave
    assert abs(err.retry_after - (86400 + 100.5 - 300)) <= 1
    refused(sessions, alice, "v4", seconds=5, now=T0 + 86400 - 1)  # a second early: still refused
    with sessions() as s:
        assert used_seconds(s, since=T0 + 86400 - 86400, owner_id="alice") == 20  # v1 is out at T0 + 86400
    admit(sessions, alice, "v4", seconds=10, now=T0 + 86400)  # on the dot, v1 has aged out

    # Refunds: a failed job gives its seconds back, once.
    now = T0 + 86400 + 1
    with sessions.begin() as s:
        assert used_seconds(s, since=now - 86400, owner_id="alice") == 30
        assert refund_in(s, ["v2", "no-such-video"], now) == 1
        assert used_seconds(s, since=now - 86400, owner_id="alice") == 20
    with sessions.begin() as s:
        assert refund_in(s, ["v2"], now) == 0  # twice refunds once
        assert refund_in(s, [], now) == 0
        assert used_seconds(s, since=now - 86400, owner_id="alice") == 20
        assert usage(s, alice, now)["video_seconds_last_24h"] == 20
    admit(sessions, alice, "v5", seconds=10, now=now)  # the refunded 10 s are usable again
    refused(sessions, alice, "v6", seconds=1, now=now)


def test_a_keys_own_video_seconds_and_a_job_too_long_for_any_day(sessions: sessionmaker[Session]) -> None:
    limits = Limits(video_seconds_per_day=100)
    narrow = Principal(id="alice", key_id="k1", limits=limits, key_limits=Limits(video_seconds_per_day=10))
    admit(sessions, narrow, "v1", seconds=8)
    err = refused(sessions, narrow, "v2", seconds=5, now=T0 + 10)
    assert "this API key" in err.message and err.retry_after == 86400 - 10
    admit(sessions, Principal(id="alice", key_id="k2", limits=limits), "v2", seconds=50, now=T0 + 10)
    err = refused(sessions, Principal(id="alice", limits=limits), "v3", seconds=101, now=T0 + 20)
    assert err.code == "video_seconds_exceeded" and "ask for fewer seconds" in err.message
    with sessions() as s:
        assert used_seconds(s, since=T0 - 1, key_id="k1") == 8
        assert used_seconds(s, since=T0 - 1, owner_id="alice") == 58
        assert usage(s, narrow, T0 + 20) == {
            "limits": {"requests_per_minute": None, "concurrent_jobs": None, "video_seconds_per_day": 100},
            "key_limits": {"requests_per_minute": None, "concurrent_jobs": None, "video_seconds_per_day": 10},
            "active_jobs": 2,
            "video_seconds_last_24h": 58,
        }


# -- requests per minute -------------------------------------------------------------------------


def over(limiter: RateLimiter, principal: Principal) -> RateLimited:
    with pytest.raises(RateLimited) as err:
        limiter.check(principal)
    exc = err.value
    assert exc.code == "rate_limit_exceeded" and exc.retryable is True and exc.status == 429
    assert 1 <= exc.retry_after <= 60 and exc.headers["Retry-After"] == str(exc.retry_after)
    return exc


def test_rate_limiter_in_memory_per_user_and_per_key() -> None:
    limiter = RateLimiter()
    alice = Principal(id="alice", limits=Limits(requests_per_minute=3))
    for _ in range(3):
        limiter.check(alice)
    assert "3 requests per minute for your account" in over(limiter, alice).message
    limiter.check(Principal(id="bob", limits=Limits(requests_per_minute=3)))  # counted apart

    user = Limits(requests_per_minute=5)
    k1 = Principal(id="carol", key_id="k1", limits=user, key_limits=Limits(requests_per_minute=2))
    k2 = Principal(id="carol", key_id="k2", limits=user)
    limiter.check(k1)
    limiter.check(k1)
    for _ in range(3):  # k1's refusals did not use up carol's budget
        assert "2 requests per minute for this API key" in over(limiter, k1).message
    for _ in range(3):
        limiter.check(k2)
    assert "5 requests per minute for your account" in over(limiter, k2).message

    unlimited = Principal(id="dave", key_id="k3")
    for _ in range(200):
        limiter.check(unlimited)


def test_rate_limiter_in_redis_is_shared_between_processes() -> None:
    import redis

    namespace = f"kinema-test-{uuid.uuid4().hex}"
    one, two = RateLimiter(REDIS_URL, namespace=namespace), RateLimiter(REDIS_URL, namespace=namespace)
    elsewhere = RateLimiter(REDIS_URL, namespace=f"{namespace}-other")  # another deployment on the same Redis
    alice = Principal(id="alice", key_id="k1", limits=Limits(requests_per_minute=3))
    try:
        one.check(alice)
        two.check(alice)
        one.check(alice)
        over(two, alice)
        over(one, alice)
        elsewhere.check(alice)
    finally:
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=f"*{namespace}*"))
        assert keys  # the counts really were in Redis
        client.delete(*keys)
