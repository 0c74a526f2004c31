"""The queue on a real database (SQLite, and PostgreSQL when reachable): claims, leases, fencing."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from kinema.db.models import VideoRow
from kinema.db.session import make_engine, make_session_factory, upgrade_to_head
from kinema.queue.store import JobQueue, Lease, Outputs
from tests.factories import video_row


class FakeClock:
    """A clock the test moves by hand, so lease expiry is exact and instant."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def sessions(db_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(db_url)
    upgrade_to_head(engine)
    yield make_session_factory(engine)
    engine.dispose()


def add_jobs(sessions: sessionmaker[Session], n: int, created: float = 1.0) -> list[str]:
    ids = [f"video_{uuid.uuid4().hex}" for _ in range(n)]
    with sessions.begin() as s:
        for i, vid in enumerate(ids):
            s.add(video_row(vid, created_at=created + i))
    return ids


def row(sessions: sessionmaker[Session], vid: str) -> VideoRow:
    with sessions() as s:
        r = s.scalar(select(VideoRow).where(VideoRow.id == vid))
        assert r is not None
        return r


OUT = Outputs("videos/x/1/video.mp4", "videos/x/1/thumbnail.webp", "videos/x/1/spritesheet.jpg")


def test_claims_oldest_first_and_never_twice(sessions: sessionmaker[Session]) -> None:
    ids = add_jobs(sessions, 3)
    q = JobQueue(sessions, lease_seconds=30, max_attempts=3)
    leases = [q.claim("w1"), q.claim("w2"), q.claim("w3"), q.claim("w4")]
    assert [lease.video_id if lease else None for lease in leases] == [*ids, None]
    assert all(lease.token == 1 and lease.attempt == 1 for lease in leases if lease)
    assert row(sessions, ids[0]).status == "in_progress"


def test_expired_lease_is_reclaimed_and_the_stale_token_is_fenced(sessions: sessionmaker[Session]) -> None:
    (vid,) = add_jobs(sessions, 1)
    clock = FakeClock()
    q = JobQueue(sessions, lease_seconds=10, max_attempts=3, clock=clock)
    first = q.claim("w1")
    assert first is not None
    assert q.claim("w2") is None  # lease still live
    assert q.set_progress(first, 40)
    clock.now += 11
    second = q.claim("w2")
    assert second is not None and second.token == first.token + 1 and second.attempt == 2
    # The first worker is now a zombie: nothing it writes lands.
    assert not q.heartbeat(first)
    assert not q.set_progress(first, 80)
    assert not q.complete(first, OUT)
    assert not q.fail(first, "boom", "boom")
    assert q.should_stop(first)
    assert row(sessions, vid).progress == 40  # progress kept, never backwards
    assert q.set_progress(second, 10) and row(sessions, vid).progress == 40
    assert q.complete(second, OUT)
    r = row(sessions, vid)
    assert (r.status, r.progress, r.video_key, r.attempts) == ("completed", 100, OUT.video_key, 2)


def test_heartbeat_keeps_the_lease(sessions: sessionmaker[Session]) -> None:
    add_jobs(sessions, 1)
    clock = FakeClock()
    q = JobQueue(sessions, lease_seconds=10, max_attempts=3, clock=clock)
    lease = q.claim("w1")
    assert lease is not None
    for _ in range(5):
        clock.now += 8
        assert q.heartbeat(lease)
        assert q.claim("w2") is None


def test_gives_up_after_max_attempts(sessions: sessionmaker[Session]) -> None:
    (vid,) = add_jobs(sessions, 1)
    clock = FakeClock()
    q = JobQueue(sessions, lease_seconds=5, max_attempts=2, clock=clock)
    assert q.claim("a") is not None
    clock.now += 6
    assert q.claim("b") is not None
    clock.now += 6
    assert q.claim("c") is None
    r = row(sessions, vid)
    assert (r.status, r.error_code, r.attempts) == ("failed", "worker_lost", 2)
    assert "2 times" in (r.error_message or "")


def test_cancel_request_stops_and_is_never_reclaimed(sessions: sessionmaker[Session]) -> None:
    (vid,) = add_jobs(sessions, 1)
    clock = FakeClock()
    q = JobQueue(sessions, lease_seconds=5, max_attempts=3, clock=clock)
    lease = q.claim("a")
    assert lease is not None and not q.should_stop(lease)
    with sessions.begin() as s:
        s.get(VideoRow, vid).cancel_requested = True  # type: ignore[union-attr]
    assert q.should_stop(lease)
    assert not q.complete(lease, OUT)  # a cancelled job cannot complete
    clock.now += 6  # the worker died before recording the cancellation
    assert q.claim("b") is None
    assert (row(sessions, vid).status, row(sessions, vid).error_code) == ("failed", "cancelled")


def test_racing_claimers_each_job_once(sessions: sessionmaker[Session]) -> None:
    ids = add_jobs(sessions, 40)
    q = JobQueue(sessions, lease_seconds=60, max_attempts=3)
    got: list[Lease] = []
    lock = threading.Lock()

    def claimer(name: str) -> None:
        while (lease := q.claim(name)) is not None:
            with lock:
                got.append(lease)

    threads = [threading.Thread(target=claimer, args=(f"w{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(lease.video_id for lease in got) == sorted(ids)
    assert q.depth() == 0


# -- model affinity ----------------------------------------------------------------------------------------


def add_model_jobs(sessions: sessionmaker[Session], jobs: list[tuple[str, float]]) -> list[str]:
    """Queued jobs, one per (model, created_at)."""
    ids = [f"video_{uuid.uuid4().hex}" for _ in jobs]
    with sessions.begin() as s:
        for vid, (model, created) in zip(ids, jobs, strict=True):
            s.add(video_row(vid, model=model, created_at=created))
    return ids


def test_affinity_takes_a_loaded_models_job_before_an_older_one(sessions: sessionmaker[Session]) -> None:
    clock = FakeClock()
    other, loaded, other_newer = add_model_jobs(
        sessions, [("big", clock.now - 30), ("tiny-wan", clock.now - 20), ("big", clock.now - 10)]
    )
    q = JobQueue(sessions, lease_seconds=30, max_attempts=3, affinity_max_wait_seconds=60, clock=clock)
    first = q.claim("w1", prefer_models=["tiny-wan"])
    assert first is not None and first.video_id == loaded
    # Nothing preferred is left: oldest first again.
    assert [lease.video_id for lease in (q.claim("w1", prefer_models=["tiny-wan"]), q.claim("w2")) if lease] == [
        other,
        other_newer,
    ]


def test_a_job_waiting_past_the_bound_goes_first_whatever_its_model(sessions: sessionmaker[Session]) -> None:
    clock = FakeClock()
    overdue, loaded, overdue_newer = add_model_jobs(
        sessions, [("big", clock.now - 90), ("tiny-wan", clock.now - 80), ("big", clock.now - 61)]
    )
    q = JobQueue(sessions, lease_seconds=30, max_attempts=3, affinity_max_wait_seconds=60, clock=clock)
    claims = [q.claim("w1", prefer_models=["tiny-wan"]) for _ in range(3)]
    # Every job here is overdue (the preferred one too), so plain oldest-first.
    assert [lease.video_id for lease in claims if lease] == [overdue, loaded, overdue_newer]


def test_only_overdue_jobs_jump_the_preferred_ones(sessions: sessionmaker[Session]) -> None:
    clock = FakeClock()
    overdue, waiting, loaded = add_model_jobs(
        sessions, [("big", clock.now - 61), ("big", clock.now - 59), ("tiny-wan", clock.now - 1)]
    )
    q = JobQueue(sessions, lease_seconds=30, max_attempts=3, affinity_max_wait_seconds=60, clock=clock)
    claims = [q.claim("w1", prefer_models=["tiny-wan"]) for _ in range(3)]
    assert [lease.video_id for lease in claims if lease] == [overdue, loaded, waiting]


def test_affinity_disabled_is_oldest_first(sessions: sessionmaker[Session]) -> None:
    clock = FakeClock()
    ids = add_model_jobs(sessions, [("big", clock.now - 3), ("tiny-wan", clock.now - 2), ("big", clock.now - 1)])
    q = JobQueue(sessions, lease_seconds=30, max_attempts=3, affinity_max_wait_seconds=0, clock=clock)
    claims = [q.claim("w1", prefer_models=["tiny-wan"]) for _ in range(3)]
    assert [lease.video_id for lease in claims if lease] == ids


def test_racing_claimers_with_different_preferences_each_job_once(sessions: sessionmaker[Session]) -> None:
    now = 1_000_000.0
    ids = add_model_jobs(sessions, [(("a", "b", "c")[i % 3], now - 100 + i) for i in range(60)])
    clock = FakeClock()
    # A bound that splits the queue: the oldest 10 jobs are overdue, the rest are claimed by preference.
    q = JobQueue(sessions, lease_seconds=60, max_attempts=3, affinity_max_wait_seconds=90, clock=clock)
    got: list[Lease] = []
    lock = threading.Lock()

    def claimer(name: str, prefer: list[str]) -> None:
        while (lease := q.claim(name, prefer_models=prefer)) is not None:
            with lock:
                got.append(lease)

    prefs = [["a"], ["b"], ["c"], ["a", "b"], [], ["c"]]
    threads = [threading.Thread(target=claimer, args=(f"w{i}", p)) for i, p in enumerate(prefs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(lease.video_id for lease in got) == sorted(ids)
    assert q.depth() == 0
