"""The transparency report on a real database (SQLite and PostgreSQL): which source each count comes
from, that events land in the right UTC day / ISO week / month, that the range's ends are honoured,
that nothing identifying leaks into the output, and that bad ranges name their parameter."""

from __future__ import annotations

import calendar
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from kinema.audit.checkpoint import CheckpointSigner
from kinema.audit.log import AuditLog
from kinema.db.models import ModerationRefusalRow
from kinema.db.session import make_engine, make_session_factory, upgrade_to_head
from kinema.services import transparency as t
from kinema.services.errors import InvalidRequest
from tests.factories import video_row


def ts(text: str) -> float:
    """Unix seconds of a UTC 'YYYY-MM-DD HH:MM'."""
    return float(calendar.timegm(datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=UTC).timetuple()))


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def db(db_url: str) -> Iterator[tuple[sessionmaker[Session], AuditLog, Clock]]:
    engine = make_engine(db_url)
    upgrade_to_head(engine)
    sessions = make_session_factory(engine)
    clock = Clock()
    try:
        yield sessions, AuditLog(sessions, CheckpointSigner.generate(), clock=clock), clock
    finally:
        engine.dispose()


def event(audit: AuditLog, clock: Clock, when: str, action: str, **kw: Any) -> None:
    clock.now = ts(when)
    audit.append(action, **kw)


def video(sessions: sessionmaker[Session], vid: str, when: str, status: str, *, error_code: str | None = None) -> None:
    with sessions.begin() as s:
        s.add(
            video_row(
                vid,
                owner_id="user_SECRETOWNER",
                prompt="PROMPT-SHOULD-NOT-LEAK",
                size="256x160",
                width=256,
                height=160,
                num_frames=8,
                status=status,
                error_code=error_code,
                created_at=ts(when),
            )
        )


def refusal(sessions: sessionmaker[Session], when: str, category: str) -> None:
    with sessions.begin() as s:
        s.add(
            ModerationRefusalRow(
                owner_id="user_SECRETOWNER",
                action="create",
                category=category,
                policy_version="v-test",
                prompt_sha256="f" * 64,
                prompt="REFUSED-PROMPT-SHOULD-NOT-LEAK",
                created_at=ts(when),
            )
        )


def test_counts_land_in_their_utc_day_from_each_source(db: tuple[sessionmaker[Session], AuditLog, Clock]) -> None:
    sessions, audit, clock = db
    who = {"actor": "user_SECRETOWNER"}
    # 2026-03-01: two creates, a remix, a deletion, a likeness enrolment, a data export
    event(audit, clock, "2026-03-01 00:00", "video.create", target="video_SECRETID1", **who)
    event(audit, clock, "2026-03-01 12:00", "video.create", target="video_SECRETID2", **who)
    event(audit, clock, "2026-03-01 23:59", "video.remix", target="video_SECRETID3", **who)
    event(audit, clock, "2026-03-01 13:00", t.VIDEO_DELETE_ACTION, target="video_SECRETID1", **who)
    event(audit, clock, "2026-03-01 14:00", t.LIKENESS_ENROL_ACTION, target="char_SECRET", **who)
    event(audit, clock, "2026-03-01 15:00", t.DATA_EXPORT_ACTION, target="user_SECRETOWNER", **who)
    # 2026-03-02: an edit, an extend, a suspension, two revocations (one alone, two in a cohort), likeness
    # revocation and deletion, an account deletion; plus events the report ignores
    event(audit, clock, "2026-03-02 00:00", "video.edit", target="video_SECRETID4", **who)
    event(audit, clock, "2026-03-02 09:30", "video.extend", target="video_SECRETID5", **who)
    event(audit, clock, "2026-03-02 10:00", t.KEY_SUSPEND_ACTION, target="key_SECRET", details={"reason": "x"})
    event(audit, clock, "2026-03-02 10:05", t.KEY_REVOKE_ACTION, target="key_SECRET2", **who)
    event(
        audit,
        clock,
        "2026-03-02 10:06",
        "admin.action",
        target="cohort:beta",
        details={"op": "cohort.revoke", "key_count": 2},
    )
    event(audit, clock, "2026-03-02 10:07", "admin.action", target="key_X", details={"op": "key.reinstate"})
    event(audit, clock, "2026-03-02 11:00", t.LIKENESS_REVOKE_ACTION, target="char_SECRET", **who)
    event(audit, clock, "2026-03-02 11:01", t.LIKENESS_DELETE_ACTION, target="char_SECRET", **who)
    event(audit, clock, "2026-03-02 12:00", t.ACCOUNT_DELETE_ACTION, target="user_SECRETOWNER", **who)
    event(audit, clock, "2026-03-02 12:01", "auth.login", **who)
    event(audit, clock, "2026-03-02 12:02", "moderation.refuse", details={"category": "ignored_here"}, **who)
    # outside the range on both sides
    event(audit, clock, "2026-02-28 23:59", "video.create", target="video_BEFORE", **who)
    event(audit, clock, "2026-03-03 00:00", "video.create", target="video_AFTER", **who)

    video(sessions, "video_SECRETID1", "2026-03-01 00:00", "completed")
    video(sessions, "video_SECRETID2", "2026-03-01 12:00", "failed", error_code="internal_error")
    video(sessions, "video_SECRETID3", "2026-03-01 23:59", "failed", error_code="cancelled")
    video(sessions, "video_SECRETID4", "2026-03-02 00:00", "in_progress")
    video(sessions, "video_SECRETID5", "2026-03-02 09:30", "completed")
    video(sessions, "video_AFTER", "2026-03-03 00:00", "completed")

    refusal(sessions, "2026-03-01 08:00", "nonconsensual_intimate")
    refusal(sessions, "2026-03-02 08:00", "nonconsensual_intimate")
    refusal(sessions, "2026-03-02 09:00", "violent_extremism")
    refusal(sessions, "2026-03-03 09:00", "violent_extremism")  # after the range

    r = t.report(sessions, since=ts("2026-03-01 00:00"), until=ts("2026-03-03 00:00"), period="day")
    assert r["object"] == "transparency_report" and r["period"] == "day"
    assert [(p["label"], p["start"], p["end"]) for p in r["periods"]] == [
        ("2026-03-01", ts("2026-03-01 00:00"), ts("2026-03-02 00:00")),
        ("2026-03-02", ts("2026-03-02 00:00"), ts("2026-03-03 00:00")),
    ]
    day1, day2 = r["periods"]
    assert day1["generations"] == {
        "requested": 3,
        "by_kind": {"create": 2, "remix": 1, "edit": 0, "extend": 0},
        "completed": 1,
        "failed": 1,
        "cancelled": 1,
    }
    assert day2["generations"] == {
        "requested": 2,
        "by_kind": {"create": 0, "remix": 0, "edit": 1, "extend": 1},
        "completed": 1,
        "failed": 0,
        "cancelled": 0,
    }
    assert day1["refusals"] == {"total": 1, "by_category": {"nonconsensual_intimate": 1, "violent_extremism": 0}}
    assert day2["refusals"] == {"total": 2, "by_category": {"nonconsensual_intimate": 1, "violent_extremism": 1}}
    assert day1["likenesses"] == {"enrolled": 1, "revoked": 0, "deleted": 0}
    assert day2["likenesses"] == {"enrolled": 0, "revoked": 1, "deleted": 1}
    assert day1["keys"] == {"suspended": 0, "revoked": 0} and day2["keys"] == {"suspended": 1, "revoked": 3}
    assert day1["data_requests"] == {"exports": 1, "account_deletions": 0}
    assert day2["data_requests"] == {"exports": 0, "account_deletions": 1}
    assert (day1["video_deletions"], day2["video_deletions"]) == (1, 0)

    totals = r["totals"]
    assert totals["generations"]["requested"] == 5 and totals["generations"]["completed"] == 2
    assert totals["refusals"] == {"total": 3, "by_category": {"nonconsensual_intimate": 2, "violent_extremism": 1}}
    assert totals["keys"] == {"suspended": 1, "revoked": 3}
    assert totals["likenesses"] == {"enrolled": 1, "revoked": 1, "deleted": 1}
    assert totals["data_requests"] == {"exports": 1, "account_deletions": 1} and totals["video_deletions"] == 1

    # Counts only: no ids, owners, prompts, hashes or policy versions anywhere in the output.
    text = json.dumps(r)
    for secret in ("SECRET", "video_x", "user_", "key_", "char_", "PROMPT", "f" * 16, "v-test", "cohort:"):
        assert secret not in text, secret


def test_weeks_are_iso_and_months_calendar_and_the_range_cuts_the_ends(
    db: tuple[sessionmaker[Session], AuditLog, Clock],
) -> None:
    sessions, audit, clock = db
    # 2026-03-01 is a Sunday: it belongs to the ISO week starting Monday 2026-02-23 (2026-W09).
    for when in ("2026-02-27 10:00", "2026-03-01 23:59", "2026-03-02 00:00", "2026-03-31 23:59", "2026-04-01 00:00"):
        event(audit, clock, when, "video.create", target="video_x")

    since, until = ts("2026-02-25 06:00"), ts("2026-04-01 00:01")
    weeks = t.report(sessions, since=since, until=until, period="week")
    labels = [p["label"] for p in weeks["periods"]]
    assert labels[:2] == ["2026-W09", "2026-W10"] and labels[-1] == "2026-W14"
    assert weeks["periods"][0]["start"] == since  # cut at since, not the Monday before
    assert weeks["periods"][0]["end"] == ts("2026-03-02 00:00")
    assert weeks["periods"][-1]["end"] == until
    assert [p["generations"]["requested"] for p in weeks["periods"]] == [2, 1, 0, 0, 0, 2]

    months = t.report(sessions, since=since, until=until, period="month")
    assert [(p["label"], p["generations"]["requested"]) for p in months["periods"]] == [
        ("2026-02", 1),
        ("2026-03", 3),
        ("2026-04", 1),
    ]
    assert months["periods"][1]["start"] == ts("2026-03-01 00:00") and months["periods"][1]["end"] == ts(
        "2026-04-01 00:00"
    )
    assert months["totals"]["generations"]["requested"] == 5


def test_empty_range_has_zeroed_periods(db: tuple[sessionmaker[Session], AuditLog, Clock]) -> None:
    sessions, _, _ = db
    r = t.report(sessions, since=ts("2026-12-30 00:00"), until=ts("2027-01-02 00:00"), period="day")
    assert [p["label"] for p in r["periods"]] == ["2026-12-30", "2026-12-31", "2027-01-01"]
    assert r["totals"]["generations"]["requested"] == 0 and r["totals"]["refusals"] == {"total": 0, "by_category": {}}
    assert t.report(sessions, since=ts("2026-12-30 00:00"), until=ts("2027-01-02 00:00"), period="month")["periods"][1][
        "label"
    ] == ("2027-01")


def test_bad_ranges_name_their_parameter(db: tuple[sessionmaker[Session], AuditLog, Clock]) -> None:
    sessions, _, _ = db
    day = 86400.0
    cases: list[tuple[dict[str, Any], str]] = [
        ({"since": 10 * day, "until": 10 * day}, "since"),
        ({"since": 10 * day, "until": 9 * day}, "since"),
        ({"since": 0.0, "until": 400 * day}, "since"),  # 400 days > 366 periods
        ({"since": 0.0, "until": 10 * day, "period": "year"}, "period"),
        ({"since": -1.0, "until": 10 * day}, "since"),
        ({"since": 0.0, "until": float("inf")}, "until"),
    ]
    for kwargs, param in cases:
        with pytest.raises(InvalidRequest) as err:
            t.report(sessions, **kwargs)
        assert err.value.param == param, kwargs
    assert len(t.report(sessions, since=0.0, until=366 * day)["periods"]) == 366
    assert (
        len(t.report(sessions, since=0.0, until=400 * day, period="week")["periods"]) == 58
    )  # 1970-01-01 is a Thursday


def test_parse_time_and_resolve_range() -> None:
    assert t.parse_time("1767225600", "since") == 1767225600.0
    assert t.parse_time("2026-01-01", "since") == ts("2026-01-01 00:00")
    assert t.parse_time("2026-01-01", "until", end_of_day=True) == ts("2026-01-02 00:00")
    assert t.parse_time("2026-01-01T06:30:00Z", "since") == ts("2026-01-01 06:30")
    assert t.parse_time("2026-01-01T08:30:00+02:00", "since") == ts("2026-01-01 06:30")
    for bad in ("yesterday", "2026-13-01", "", "nan", "-5", "1e400"):
        with pytest.raises(InvalidRequest) as err:
            t.parse_time(bad, "until")
        assert err.value.param == "until" and err.value.code == "invalid_value", bad

    now = ts("2026-03-10 15:00")
    since, until, period = t.resolve_range(None, None, None, now=now)
    assert (since, until, period) == (ts("2026-02-09 00:00"), now, "day")  # 30 UTC days, today's partial
    since, until, period = t.resolve_range("2026-03-01", "2026-03-31", "week", now=now)
    assert (since, until, period) == (ts("2026-03-01 00:00"), ts("2026-04-01 00:00"), "week")
    since, until, _ = t.resolve_range(None, "2026-03-31", None, now=now)
    assert (since, until) == (ts("2026-03-02 00:00"), ts("2026-04-01 00:00"))
    with pytest.raises(InvalidRequest) as err:
        t.resolve_range("2026-04-01", "2026-03-01", None, now=now)
    assert err.value.param == "since"
    with pytest.raises(InvalidRequest) as err:
        t.resolve_range(None, None, "fortnight", now=now)
    assert err.value.param == "period"
