"""The transparency report: per UTC day, ISO week or month, how many generations were asked for and
how they ended, what moderation refused and why, likeness enrolments and removals, key suspensions
and revocations, video deletions, and data export and account deletion requests.

Counts only: no user, key, video or invite ids, no prompts, no hashes. Where each number comes from:

- the audit log (``audit_log``) for events: generation requests, video deletions, key suspensions
  and revocations, likeness and data-request events (the ``*_ACTIONS`` / ``*_ACTION`` constants below);
- ``moderation_refusals`` for refusals by category (the audit log has them too, but the table is
  what the moderation policy writes its categories to);
- ``videos`` for how the jobs requested in a period ended (completed, failed, cancelled), counted
  for the jobs still present: a deleted video still counts as requested but no longer has an outcome.

Every range is half-open, ``[since, until)``, in Unix seconds; periods are UTC and their edges fall on
day, ISO week (Monday) and month starts, the first and last being cut at ``since`` and ``until``.
"""

from __future__ import annotations

import bisect
import calendar
import math
import re
import time
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal, cast, get_args

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from kinema.db.models import AuditEntryRow, ModerationRefusalRow, VideoRow
from kinema.services.errors import InvalidRequest

Period = Literal["day", "week", "month"]
PERIODS: tuple[str, ...] = get_args(Period)

MAX_PERIODS = 366
"""At most this many periods in one report (a year of days, seven years of weeks, 30 years of months)."""
DEFAULT_DAYS = 30
"""Without ``since``: the 30 UTC days ending with the one ``until`` falls in."""

# -- the audit actions counted -----------------------------------------------------------------------

GENERATION_KINDS: tuple[str, ...] = ("create", "remix", "edit", "extend")
GENERATION_ACTIONS: dict[str, str] = {f"video.{k}": k for k in GENERATION_KINDS}
"""A generation request, recorded with the job when it is queued (``video.<kind>``)."""
VIDEO_DELETE_ACTION = "video.delete"
KEY_SUSPEND_ACTION = "key.suspend"
"""The shared-key defense suspending a key automatically."""
KEY_REVOKE_ACTION = "key.revoke"
"""One key revoked, by its owner or an admin."""
ADMIN_ACTION = "admin.action"
COHORT_REVOKE_OP = "cohort.revoke"
"""``admin.action`` with ``details.op == "cohort.revoke"`` revokes several keys at once; how many is read
from ``details.key_count`` (or ``details.keys``, which the audit log's secret check refuses today)."""
COHORT_REVOKE_COUNT_FIELDS = ("key_count", "keys")
LIKENESS_ENROL_ACTION = "character.create"
LIKENESS_REVOKE_ACTION = "character.revoke"
LIKENESS_DELETE_ACTION = "character.delete"
DATA_EXPORT_ACTION = "me.export"
ACCOUNT_DELETE_ACTION = "account.delete"

COUNTED_ACTIONS: dict[str, tuple[str, str]] = {
    VIDEO_DELETE_ACTION: ("video_deletions", ""),
    KEY_SUSPEND_ACTION: ("keys", "suspended"),
    KEY_REVOKE_ACTION: ("keys", "revoked"),
    LIKENESS_ENROL_ACTION: ("likenesses", "enrolled"),
    LIKENESS_REVOKE_ACTION: ("likenesses", "revoked"),
    LIKENESS_DELETE_ACTION: ("likenesses", "deleted"),
    DATA_EXPORT_ACTION: ("data_requests", "exports"),
    ACCOUNT_DELETE_ACTION: ("data_requests", "account_deletions"),
}
"""Audit action -> (section, field) of the report it adds one to (generation requests aside)."""

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_MAX_TIME = 253402300799.0  # 9999-12-31T23:59:59Z


# -- parameters ---------------------------------------------------------------------------------------


def parse_time(value: str | float | int, param: str, *, end_of_day: bool = False) -> float:
    """Unix seconds from a number, ``YYYY-MM-DD`` (UTC midnight; the next midnight with ``end_of_day``,
    so that a date given as ``until`` includes that day) or an ISO 8601 date-time (UTC unless it says).
    Anything else is :class:`InvalidRequest` naming ``param``."""
    bad = InvalidRequest(
        f"Invalid value for '{param}': expected Unix seconds, YYYY-MM-DD or an ISO 8601 date-time (UTC).",
        param=param,
        code="invalid_value",
    )
    if isinstance(value, bool):
        raise bad
    if isinstance(value, (int, float)):
        ts = float(value)
    else:
        text = value.strip()
        try:
            if _NUMBER.match(text):
                ts = float(text)
            elif _DATE.match(text):
                day = date.fromisoformat(text)
                if end_of_day:
                    day += timedelta(days=1)
                ts = float(calendar.timegm(day.timetuple()))
            else:
                when = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
                if when.tzinfo is None:
                    when = when.replace(tzinfo=UTC)
                ts = when.timestamp()
        except (ValueError, OverflowError):
            raise bad from None
    if not math.isfinite(ts) or ts < 0 or ts > _MAX_TIME:
        raise bad
    return ts


def parse_period(value: str | None) -> Period:
    """``day`` (default), ``week`` or ``month``; anything else is :class:`InvalidRequest` naming ``period``."""
    if value is None:
        return "day"
    if value not in PERIODS:
        raise InvalidRequest(
            f"Invalid value for 'period': expected one of {', '.join(PERIODS)}.", param="period", code="invalid_value"
        )
    return cast(Period, value)


def resolve_range(
    since: str | float | None, until: str | float | None, period: str | None, *, now: float | None = None
) -> tuple[float, float, Period]:
    """(since, until, period) from what a caller gave (strings or numbers, each optional), with the
    defaults filled in: ``until`` now, ``since`` the start of the UTC day 29 days before ``until``'s,
    ``period`` day. The range is checked as :func:`report` would."""
    p = parse_period(period)
    end = (
        parse_time(until, "until", end_of_day=True)
        if until is not None
        else float(now if now is not None else time.time())
    )
    if since is not None:
        start = parse_time(since, "since")
    else:
        last_day = datetime.fromtimestamp(math.ceil(end) - 1, UTC).date()  # the day of the last instant
        start = float(calendar.timegm((last_day - timedelta(days=DEFAULT_DAYS - 1)).timetuple()))
    period_edges(start, end, p)
    return start, end, p


# -- periods ------------------------------------------------------------------------------------------


def _floor(ts: float, period: Period) -> datetime:
    """The start of the UTC period ``ts`` falls in."""
    d = datetime.fromtimestamp(ts, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "week":
        d -= timedelta(days=d.weekday())  # ISO weeks start on Monday
    elif period == "month":
        d = d.replace(day=1)
    return d


def _next(d: datetime, period: Period) -> datetime:
    if period == "day":
        return d + timedelta(days=1)
    if period == "week":
        return d + timedelta(days=7)
    return d.replace(year=d.year + 1, month=1) if d.month == 12 else d.replace(month=d.month + 1)


def _label(d: datetime, period: Period) -> str:
    if period == "day":
        return d.strftime("%Y-%m-%d")
    if period == "week":
        year, week, _ = d.isocalendar()
        return f"{year}-W{week:02d}"
    return d.strftime("%Y-%m")


def period_edges(since: float, until: float, period: Period) -> list[tuple[float, float, str]]:
    """(start, end, label) of each period in ``[since, until)``, the first and last cut at the range's
    ends. :class:`InvalidRequest` if the range is empty or spans more than :data:`MAX_PERIODS` periods."""
    for name, value in (("since", since), ("until", until)):
        if not math.isfinite(value) or value < 0 or value > _MAX_TIME:
            raise InvalidRequest(f"Invalid value for '{name}': out of range.", param=name, code="invalid_value")
    if since >= until:
        raise InvalidRequest(
            "Invalid value for 'since': it must be before 'until'.", param="since", code="invalid_value"
        )
    edges: list[tuple[float, float, str]] = []
    d = _floor(since, period)
    while d.timestamp() < until:
        nxt = _next(d, period)
        edges.append((max(since, d.timestamp()), min(until, nxt.timestamp()), _label(d, period)))
        if len(edges) > MAX_PERIODS:
            raise InvalidRequest(
                f"Invalid value for 'since': the range spans more than {MAX_PERIODS} {period}s; narrow it"
                + (" or use a longer period." if period != "month" else "."),
                param="since",
                code="invalid_value",
            )
        d = nxt
    return edges


# -- the report ---------------------------------------------------------------------------------------


def _empty(categories: Iterable[str]) -> dict[str, Any]:
    return {
        "generations": {
            "requested": 0,
            "by_kind": dict.fromkeys(GENERATION_KINDS, 0),
            "completed": 0,
            "failed": 0,
            "cancelled": 0,
        },
        "refusals": {"total": 0, "by_category": dict.fromkeys(sorted(categories), 0)},
        "likenesses": {"enrolled": 0, "revoked": 0, "deleted": 0},
        "keys": {"suspended": 0, "revoked": 0},
        "data_requests": {"exports": 0, "account_deletions": 0},
        "video_deletions": 0,
    }


def _add(into: dict[str, Any], section: str, field: str, n: int = 1) -> None:
    if field:
        into[section][field] += n
    else:
        into[section] += n


def _details_keys(details: Any) -> int:
    """How many keys a ``cohort.revoke`` admin action revoked (0 if the entry does not say)."""
    if not isinstance(details, dict) or details.get("op") != COHORT_REVOKE_OP:
        return 0
    for field in COHORT_REVOKE_COUNT_FIELDS:
        n = details.get(field)
        if isinstance(n, int) and not isinstance(n, bool):
            return max(n, 0)
    return 0


def report(
    sessions: sessionmaker[Session],
    *,
    since: float,
    until: float,
    period: Period = "day",
    now: float | None = None,
) -> dict[str, Any]:
    """The transparency report over ``[since, until)`` (Unix seconds), one entry per UTC ``period``.

    Raises :class:`InvalidRequest` naming the parameter for an unknown period, an empty or reversed
    range, or one of more than :data:`MAX_PERIODS` periods.
    """
    period = parse_period(period)
    edges = period_edges(float(since), float(until), period)
    starts = [start for start, _, _ in edges]

    def slot(ts: float) -> int:
        return bisect.bisect_right(starts, ts) - 1

    generation: list[Counter[str]] = [Counter() for _ in edges]
    outcomes: list[Counter[str]] = [Counter() for _ in edges]
    refusals: list[Counter[str]] = [Counter() for _ in edges]
    events: list[Counter[str]] = [Counter() for _ in edges]
    cohort_keys = [0] * len(edges)

    a, v, m = AuditEntryRow, VideoRow, ModerationRefusalRow
    actions = [*GENERATION_ACTIONS, *COUNTED_ACTIONS]
    with sessions() as s:
        # Only the time and the action: never the actor, target or details.
        counted = select(a.at, a.action).where(a.at >= since, a.at < until, a.action.in_(actions))
        for at, action in s.execute(counted.execution_options(yield_per=5000)):
            if action in GENERATION_ACTIONS:
                generation[slot(at)][GENERATION_ACTIONS[action]] += 1
            else:
                events[slot(at)][action] += 1
        # Admin actions' details, for the number of keys a cohort revocation revoked (nothing else).
        admin = select(a.at, a.details).where(a.at >= since, a.at < until, a.action == ADMIN_ACTION)
        for at, details in s.execute(admin.execution_options(yield_per=1000)):
            cohort_keys[slot(at)] += _details_keys(details)
        ended = select(v.created_at, v.status, v.error_code).where(
            v.created_at >= since, v.created_at < until, v.status.in_(("completed", "failed"))
        )
        for at, status, error_code in s.execute(ended.execution_options(yield_per=5000)):
            outcome = "cancelled" if status == "failed" and error_code == "cancelled" else status
            outcomes[slot(at)][outcome] += 1
        refused = select(m.created_at, m.category).where(m.created_at >= since, m.created_at < until)
        for at, category in s.execute(refused.execution_options(yield_per=5000)):
            refusals[slot(at)][str(category)] += 1

    categories = sorted({c for r in refusals for c in r})
    periods: list[dict[str, Any]] = []
    totals = _empty(categories)
    for i, (start, end, label) in enumerate(edges):
        p = _empty(categories)
        gen = p["generations"]
        gen["by_kind"].update(generation[i])
        gen["requested"] = sum(generation[i].values())
        for outcome in ("completed", "failed", "cancelled"):
            gen[outcome] = outcomes[i][outcome]
        p["refusals"]["by_category"].update(refusals[i])
        p["refusals"]["total"] = sum(refusals[i].values())
        for action, n in events[i].items():
            _add(p, *COUNTED_ACTIONS[action], n)
        p["keys"]["revoked"] += cohort_keys[i]
        _accumulate(totals, p)
        periods.append({"start": start, "end": end, "label": label, **p})
    return {
        "object": "transparency_report",
        "since": float(since),
        "until": float(until),
        "period": period,
        "generated_at": float(now if now is not None else time.time()),
        "periods": periods,
        "totals": totals,
    }


def _accumulate(into: dict[str, Any], part: dict[str, Any]) -> None:
    """Add every count of ``part`` into ``into`` (same shape)."""
    for k, v in part.items():
        if isinstance(v, dict):
            _accumulate(into[k], v)
        else:
            into[k] += v


class TransparencyReport:
    """:func:`report` over one session factory (for wiring into a container)."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def report(self, *, since: float, until: float, period: Period = "day", now: float | None = None) -> dict[str, Any]:
        return report(self._sessions, since=since, until=until, period=period, now=now)
