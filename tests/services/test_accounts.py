"""Sessions with an injected clock: idle and absolute timeouts exactly, and rotation on login."""

from __future__ import annotations

from pathlib import Path

import pytest

from kinema.audit.checkpoint import CheckpointSigner
from kinema.audit.log import AuditLog
from kinema.db.session import make_engine, make_session_factory, upgrade_to_head
from kinema.services.accounts import DefaultLimits, PasswordHashing, PasswordPolicy, Users, WebSessions
from kinema.services.errors import Unauthorized


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_idle_timeout_is_extended_by_use_but_the_absolute_one_is_not(db_url: str, tmp_path: Path) -> None:
    engine = make_engine(db_url)
    upgrade_to_head(engine)
    sessions = make_session_factory(engine)
    clock = Clock()
    audit = AuditLog(sessions, CheckpointSigner.load_or_create(tmp_path / "audit.key"), clock=clock)
    hashing = PasswordHashing(PasswordPolicy(memory_kib=19456, time_cost=2, parallelism=1))
    users = Users(sessions, audit, hashing=hashing, defaults=DefaultLimits(100, 4, 600), clock=clock)
    web_sessions = WebSessions(
        sessions, audit, users=users, hashing=hashing, idle_seconds=60, absolute_seconds=300, clock=clock
    )
    users.create_user("a@example.com", "a long enough password")
    first = web_sessions.login("a@example.com", "a long enough password")
    second = web_sessions.login("a@example.com", "a long enough password", replaces=first.cookie)
    assert second.cookie != first.cookie and second.csrf_token != first.csrf_token
    with pytest.raises(Unauthorized):
        web_sessions.session_user(first.cookie)  # rotated away

    for _ in range(9):  # active every 30 s for 270 s: never idle for 60 s
        clock.now += 30
        web_sessions.session_user(second.cookie)
    clock.now += 31  # 301 s after login: the absolute timeout ends it, however active
    with pytest.raises(Unauthorized) as err:
        web_sessions.session_user(second.cookie)
    assert err.value.code == "session_expired"

    third = web_sessions.login("a@example.com", "a long enough password")
    clock.now += 59
    web_sessions.session_user(third.cookie)
    clock.now += 61  # idle for 61 s
    with pytest.raises(Unauthorized) as err:
        web_sessions.session_user(third.cookie)
    assert err.value.code == "session_expired"
    engine.dispose()
