"""The pause switch on a real database (SQLite and PostgreSQL): refusals, scopes, propagation to other
processes, audit entries, holding running jobs, and what a refused pause leaves behind."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, select

from kinema.audit.checkpoint import CheckpointSigner
from kinema.audit.log import AuditEntryRow, AuditLog
from kinema.db.models import PauseRow
from kinema.db.session import make_engine, make_session_factory, upgrade_to_head
from kinema.services.auth import Principal
from kinema.services.errors import InvalidRequest, Unavailable
from kinema.services.pause import PauseService, PauseState

ALICE = Principal(id="alice", cohort="default")
BETTY = Principal(id="betty", cohort="beta")

Factory = Callable[..., PauseService]


@pytest.fixture
def make(db_url: str) -> Iterator[Factory]:
    """``make(**kwargs)``: a PauseService on its own engine, as another process would have."""
    engines: list[Engine] = []
    signer = CheckpointSigner.generate()

    def factory(**kwargs: Any) -> PauseService:
        engine = make_engine(db_url)
        if not engines:
            upgrade_to_head(engine)
        engines.append(engine)
        sessions = make_session_factory(engine)
        return PauseService(sessions, AuditLog(sessions, signer), **kwargs)

    yield factory
    for engine in engines:
        engine.dispose()


@pytest.fixture
def svc(make: Factory) -> PauseService:
    return make()


def refusal(svc: PauseService, principal: Principal) -> Unavailable:
    with pytest.raises(Unavailable) as err:
        svc.check_generation(principal)
    return err.value


def audit_rows(svc: PauseService) -> list[AuditEntryRow]:
    with svc._sessions() as session:
        return list(session.scalars(select(AuditEntryRow).order_by(AuditEntryRow.seq)))


def pause_rows(svc: PauseService) -> int:
    with svc._sessions() as session:
        return int(session.scalar(select(func.count()).select_from(PauseRow)) or 0)


def test_global_pause_refuses_everyone_with_503(make: Factory) -> None:
    svc = make(retry_after=30)
    svc.check_generation(ALICE)  # not paused: nothing raised
    state = svc.pause("admin-1", None, hold_running=False, reason="GPU maintenance")
    assert state.scope == "*" and state.paused_by == "admin-1" and state.reason == "GPU maintenance"
    assert state.to_dict() == {
        "cohort": None,
        "paused_at": state.paused_at,
        "paused_by": "admin-1",
        "reason": "GPU maintenance",
        "hold_running": False,
    }
    for principal in (ALICE, BETTY):
        err = refusal(svc, principal)
        assert err.status == 503 and err.code == "generation_paused" and err.type == "service_unavailable"
        assert err.headers == {"Retry-After": "30"}
        assert err.message == (
            "Video generation is paused for everyone by an administrator: GPU maintenance. Your existing videos "
            "can still be read and downloaded, and queued videos stay queued. Retry after 30 s."
        )
    assert svc.states() == [state]

    assert svc.resume("admin-1", None) is True
    svc.check_generation(ALICE)
    svc.check_generation(BETTY)
    assert svc.states() == []


def test_cohort_pause_affects_only_that_cohort(svc: PauseService) -> None:
    state = svc.pause("admin-1", "beta", hold_running=False, reason=None)
    assert state.to_dict()["cohort"] == "beta"
    svc.check_generation(ALICE)
    err = refusal(svc, BETTY)
    assert err.message.startswith("Video generation is paused for your cohort 'beta' by an administrator. Your")
    assert err.headers["Retry-After"] == "60"

    # Everyone paused too: the global pause is the one reported; resuming everyone leaves beta paused.
    svc.pause("admin-1", None, hold_running=False, reason="Incident.")
    assert "paused for everyone by an administrator: Incident. Your" in refusal(svc, BETTY).message
    refusal(svc, ALICE)
    assert [s.scope for s in svc.states()] == ["*", "beta"]
    assert svc.resume("admin-1", None) is True
    svc.check_generation(ALICE)
    refusal(svc, BETTY)
    assert svc.resume("admin-1", "beta") is True
    svc.check_generation(BETTY)


def test_pause_and_resume_reach_another_process_within_a_second(make: Factory) -> None:
    admin, other = make(), make()  # separate engines: as an API process and a worker would have
    other.check_generation(ALICE)  # the other instance now has a cached "not paused"
    assert not other.held(None)

    admin.pause("admin-1", None, hold_running=True, reason=None)
    started = time.monotonic()
    while True:
        try:
            other.check_generation(ALICE)
        except Unavailable:
            break
        assert time.monotonic() - started < 1.0, "pause not seen by the other instance within 1 s"
        time.sleep(0.01)
    assert other.held("default")

    admin.resume("admin-1", None)
    started = time.monotonic()
    while other.held("default"):
        assert time.monotonic() - started < 1.0, "resume not seen by the other instance within 1 s"
        time.sleep(0.01)
    other.check_generation(ALICE)


def test_checks_use_the_cached_snapshot(make: Factory) -> None:
    svc = make(cache_seconds=60)
    svc.pause("admin-1", "beta", hold_running=True, reason=None)  # invalidates this instance's snapshot
    engine = svc._sessions.kw["bind"]
    queries: list[str] = []

    def count(*args: Any) -> None:
        queries.append(args[2])

    event.listen(engine, "before_cursor_execute", count)
    try:
        refusal(svc, BETTY)  # one query refreshes the snapshot
        for _ in range(200):
            svc.check_generation(ALICE)
            assert svc.held("beta") and not svc.held("default")
        assert len(queries) == 1
        svc.resume("admin-1", "beta")  # this instance sees its own resume at once
        svc.check_generation(BETTY)
    finally:
        event.remove(engine, "before_cursor_execute", count)


def test_pause_and_resume_are_audited(svc: PauseService) -> None:
    first = svc.pause("admin-1", None, hold_running=False, reason="upgrade")
    # Pausing again updates the pause (one row, first paused_at kept) and is audited again.
    again = svc.pause("admin-2", None, hold_running=True, reason="upgrade, holding jobs")
    assert again == PauseState("*", first.paused_at, "admin-2", "upgrade, holding jobs", True)
    assert svc.states() == [again] and pause_rows(svc) == 1
    beta = svc.pause("admin-1", "beta", hold_running=False, reason=None)
    assert svc.resume("admin-1", None) is True
    assert svc.resume("admin-1", None) is False  # not paused: nothing written
    assert svc.resume("admin-1", "gamma") is False
    assert svc.resume("admin-1", "beta") is True

    rows = audit_rows(svc)
    assert [(r.action, r.actor, r.target, r.details) for r in rows] == [
        ("service.pause", "admin-1", "*", {"hold_running": False, "reason": "upgrade"}),
        ("service.pause", "admin-2", "*", {"hold_running": True, "reason": "upgrade, holding jobs"}),
        ("service.pause", "admin-1", "cohort:beta", {"hold_running": False, "reason": None}),
        ("service.resume", "admin-1", "*", {"paused_at": first.paused_at, "paused_by": "admin-2"}),
        ("service.resume", "admin-1", "cohort:beta", {"paused_at": beta.paused_at, "paused_by": "admin-1"}),
    ]
    assert svc._audit.verify().ok
    assert pause_rows(svc) == 0


def test_concurrent_pauses_of_one_scope_all_succeed(make: Factory) -> None:
    services = [make() for _ in range(4)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(services))

    def go(i: int, svc: PauseService) -> None:
        try:
            barrier.wait()
            svc.pause(f"admin-{i}", "beta", hold_running=bool(i % 2), reason=f"r{i}")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=go, args=(i, s)) for i, s in enumerate(services)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert errors == []
    assert pause_rows(services[0]) == 1
    assert [r.action for r in audit_rows(services[0])] == ["service.pause"] * 4
    (state,) = services[0].states()
    last = audit_rows(services[0])[-1]  # the row holds what the last audited pause set
    assert (state.paused_by, state.reason, state.hold_running) == (
        last.actor,
        last.details["reason"],
        last.details["hold_running"],
    )


def test_held_only_with_hold_running(svc: PauseService) -> None:
    assert not svc.held(None) and not svc.held("beta")
    svc.pause("admin-1", "beta", hold_running=False, reason=None)
    assert not svc.held("beta")  # running jobs finish
    svc.pause("admin-1", "beta", hold_running=True, reason=None)
    assert svc.held("beta") and not svc.held("default") and not svc.held(None)
    svc.pause("admin-1", None, hold_running=True, reason=None)
    assert svc.held(None) and svc.held("default")
    svc.resume("admin-1", None)
    assert svc.held("beta") and not svc.held(None)
    svc.wait_while_held("default", lambda: False)  # not held: returns at once


def run_waiter(svc: PauseService, cohort: str | None, should_stop: Callable[[], bool]) -> threading.Thread:
    t = threading.Thread(target=svc.wait_while_held, args=(cohort, should_stop), kwargs={"poll": 0.05}, daemon=True)
    t.start()
    return t


def test_wait_while_held_until_resume(make: Factory) -> None:
    admin, worker = make(), make(cache_seconds=0.2)
    admin.pause("admin-1", "beta", hold_running=True, reason=None)
    waiter = run_waiter(worker, "beta", lambda: False)
    time.sleep(0.6)
    assert waiter.is_alive()  # held
    admin.resume("admin-1", "beta")
    started = time.monotonic()
    waiter.join(2)
    assert not waiter.is_alive() and time.monotonic() - started < 0.5

    # The same instance's own resume releases its waiters at the next poll.
    worker.pause("admin-1", None, hold_running=True, reason=None)
    waiter = run_waiter(worker, None, lambda: False)
    time.sleep(0.3)
    assert waiter.is_alive()
    worker.resume("admin-1", None)
    started = time.monotonic()
    waiter.join(2)
    assert not waiter.is_alive() and time.monotonic() - started < 0.5


def test_wait_while_held_returns_when_told_to_stop(svc: PauseService) -> None:
    svc.pause("admin-1", None, hold_running=True, reason=None)
    stop = threading.Event()
    waiter = run_waiter(svc, "beta", stop.is_set)
    time.sleep(0.3)
    assert waiter.is_alive()
    stop.set()  # cancelled, or the lease was lost
    started = time.monotonic()
    waiter.join(2)
    assert not waiter.is_alive() and time.monotonic() - started < 0.5
    assert svc.held("beta")  # still paused: only the wait ended


def test_refused_pause_writes_nothing(svc: PauseService) -> None:
    with pytest.raises(InvalidRequest) as err:
        svc.pause("admin-1", None, hold_running=False, reason="x" * 257)
    assert err.value.param == "reason" and err.value.status == 400 and "256" in err.value.message
    for cohort in ("*", "", "c" * 65):
        with pytest.raises(InvalidRequest) as err:
            svc.pause("admin-1", cohort, hold_running=False, reason=None)
        assert err.value.param == "cohort"
    with pytest.raises(InvalidRequest) as err:  # the audit log would refuse it as a credential
        svc.pause("admin-1", None, hold_running=False, reason="Bearer abc")
    assert err.value.param == "reason"
    assert pause_rows(svc) == 0 and audit_rows(svc) == [] and svc.states() == []
    svc.check_generation(ALICE)

    state = svc.pause("admin-1", None, hold_running=False, reason=" " + "x" * 256 + " ")  # 256 after strip
    assert state.reason == "x" * 256
    assert svc.pause("admin-1", None, hold_running=False, reason="   ").reason is None
