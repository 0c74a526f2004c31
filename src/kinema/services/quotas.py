"""Rate limits and admission quotas.

Two mechanisms with different homes:

* :class:`RateLimiter` counts requests per minute, per user and per API key, in memory (one API
  process) or in Redis (several processes sharing one count). Nothing durable: a restart forgets.
* :class:`Admission` decides, inside the database transaction that inserts a job, whether the job
  may be queued: concurrent jobs and video-seconds per rolling 24 hours, per user and per key. It
  charges the job's seconds in the same transaction (:mod:`kinema.db.usage`), so a job and its
  charge commit together, and a failed or cancelled job is refunded once.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any, cast

from limits import RateLimitItem, RateLimitItemPerMinute
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter
from sqlalchemy import CursorResult, func, select, update
from sqlalchemy.orm import Session

from kinema.db.models import UserRow, VideoRow
from kinema.db.usage import charge_in, recent_charges, used_seconds
from kinema.services.auth import Limits, Principal
from kinema.services.errors import RateLimited

DAY_SECONDS = 86400.0
ACTIVE_STATUSES = ("queued", "in_progress")
CONCURRENT_RETRY_AFTER = 5.0  # a queued job may start or finish at any moment; poll again soon
_EPSILON = 1e-6  # float slack when comparing sums of seconds


def _whose(scope: str) -> str:
    if scope in ("user", "key"):
        return "your account" if scope == "user" else "this API key"
    return f"{scope} attempts from your address"


def _n(count: float) -> str:
    """A number of seconds without a pointless ``.0``."""
    return f"{count:g}"


# -- requests per minute -------------------------------------------------------------------------


ANONYMOUS_PER_MINUTE = 20
"""Login and sign-up attempts per client address per minute."""


class RateLimiter:
    """Requests per minute per user and per API key, on the ``limits`` library.

    Strategy: moving window. It keeps one timestamp per request in the window (at most the limit's
    worth per key, trimmed by the storage), so it is exact: never more than N requests in any 60 s,
    no double burst at a window boundary as with a fixed window, and no approximation as with the
    sliding-window counter, which can refuse early or admit late by a weighted estimate. Exactness
    also gives an honest ``Retry-After``: the moment the oldest request in the window turns 60 s old.
    The cost (N entries per key) is small for per-minute limits.
    """

    def __init__(self, storage_uri: str = "memory://", *, namespace: str = "kinema") -> None:
        """``storage_uri``: ``memory://`` for one process, ``redis://host:port/db`` to share the
        counts between API processes. ``namespace`` prefixes every key, so deployments sharing a
        Redis do not count each other's requests."""
        self.storage_uri = storage_uri
        self.namespace = namespace
        self._storage = storage_from_string(storage_uri)
        self._limiter = MovingWindowRateLimiter(self._storage)

    def _item(self, per_minute: int) -> RateLimitItem:
        return RateLimitItemPerMinute(per_minute, namespace=self.namespace)

    def _refuse(self, item: RateLimitItem, scope: str, ident: str) -> RateLimited:
        stats = self._limiter.get_window_stats(item, scope, ident)
        retry_after = min(float(item.get_expiry()), max(1.0, stats.reset_time - time.time()))
        return RateLimited(
            f"Rate limit reached: {item.amount} requests per minute for {_whose(scope)}. "
            f"Retry after {max(1, int(retry_after + 0.999))} s.",
            code="rate_limit_exceeded",
            retry_after=retry_after,
            retryable=True,
        )

    def check(self, principal: Principal) -> None:
        """Count one request for ``principal``; raise :class:`RateLimited` when over a limit.

        The key's own limit (if the principal uses a key that has one) is counted before the user's,
        and a request refused by either is not counted against the user: a key hammering past its
        own limit does not use up the account's budget for the user's other keys.
        """
        user_rpm = principal.limits.requests_per_minute
        key_rpm = principal.key_limits.requests_per_minute if principal.key_id else None
        user_item = self._item(user_rpm) if user_rpm is not None else None
        if user_item is not None and not self._limiter.test(user_item, "user", principal.id):
            raise self._refuse(user_item, "user", principal.id)
        if key_rpm is not None and principal.key_id:
            key_item = self._item(key_rpm)
            if not self._limiter.hit(key_item, "key", principal.key_id):
                raise self._refuse(key_item, "key", principal.key_id)
        if user_item is not None and not self._limiter.hit(user_item, "user", principal.id):
            raise self._refuse(user_item, "user", principal.id)

    def check_anonymous(self, action: str, ip: str, per_minute: int = ANONYMOUS_PER_MINUTE) -> None:
        """Count an unauthenticated attempt (login, sign-up) from ``ip``: slows password guessing."""
        item = self._item(per_minute)
        if not self._limiter.hit(item, action, ip):
            raise self._refuse(item, action, ip)

    def reset(self) -> None:
        """Forget every count in this limiter's storage (tests; an admin's reset)."""
        self._storage.reset()


# -- admission: concurrent jobs and video-seconds per day -----------------------------------------


def _advisory_key(user_id: str) -> int:
    """A signed 64-bit PostgreSQL advisory-lock key for one user's admissions."""
    digest = hashlib.sha256(f"kinema-admission:{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _active_jobs(session: Session, *, owner_id: str | None = None, key_id: str | None = None) -> int:
    query = select(func.count()).select_from(VideoRow).where(VideoRow.status.in_(ACTIVE_STATUSES))
    if owner_id is not None:
        query = query.where(VideoRow.owner_id == owner_id)
    if key_id is not None:
        query = query.where(VideoRow.key_id == key_id)
    return int(session.execute(query).scalar_one())


def _scopes(principal: Principal, field: str) -> list[tuple[str, Any, dict[str, str]]]:
    """(scope, limit, row filter) for the user and, when the request used one, the key; ``field`` names
    the limit (``concurrent_jobs``, ``video_seconds_per_day``)."""
    scopes = [("user", getattr(principal.limits, field), {"owner_id": principal.id})]
    if principal.key_id:
        scopes.append(("key", getattr(principal.key_limits, field), {"key_id": principal.key_id}))
    return scopes


class Admission:
    """Admits a job against the caller's concurrent-job and daily video-seconds quotas, and charges it."""

    def __init__(self, window_seconds: float = DAY_SECONDS) -> None:
        """``window_seconds``: the rolling window video-seconds are counted over (24 h)."""
        self.window_seconds = window_seconds

    def admit_in(self, session: Session, principal: Principal, *, video_id: str, seconds: float, now: float) -> None:
        """Admit and charge the job ``video_id`` of ``seconds`` seconds, or raise :class:`RateLimited`.

        Call inside the transaction that inserts the video row, before the insert. The first
        statement writes the user's row: on PostgreSQL its row lock makes the user's concurrent
        admissions take turns until this transaction ends; on SQLite any write takes the database's
        write lock. Either way the counts read next cannot change before this job is committed, so
        N parallel requests against a limit of L admit exactly L.
        """
        self._serialize(session, principal.id, now)
        self._check_concurrent(session, principal)
        self._check_seconds(session, principal, seconds, now)
        charge_in(session, video_id=video_id, owner_id=principal.id, key_id=principal.key_id, seconds=seconds, now=now)

    def _serialize(self, session: Session, user_id: str, now: float) -> None:
        result = session.execute(
            update(UserRow)
            .where(UserRow.id == user_id)
            .values(last_enqueue_at=now)
            .execution_options(synchronize_session=False)
        )
        if cast(CursorResult[Any], result).rowcount == 0 and session.get_bind().dialect.name == "postgresql":
            # No user row (e.g. a local principal): no row to lock, so lock the user's id instead,
            # until this transaction ends. (On SQLite the UPDATE took the write lock all the same.)
            session.execute(select(func.pg_advisory_xact_lock(_advisory_key(user_id))))

    def _check_concurrent(self, session: Session, principal: Principal) -> None:
        for scope, limit, where in _scopes(principal, "concurrent_jobs"):
            if limit is None:
                continue
            active = _active_jobs(session, **where)
            if active >= limit:
                raise RateLimited(
                    f"Concurrent job limit reached: {active} jobs queued or in progress for {_whose(scope)} "
                    f"(limit {limit}). Retry when one finishes.",
                    code="concurrent_jobs_exceeded",
                    retry_after=CONCURRENT_RETRY_AFTER,
                )

    def _check_seconds(self, session: Session, principal: Principal, seconds: float, now: float) -> None:
        since = now - self.window_seconds
        for scope, limit, where in _scopes(principal, "video_seconds_per_day"):
            if limit is None:
                continue
            used = used_seconds(session, since=since, **where)
            if used + seconds <= limit + _EPSILON:
                continue
            hours = _n(self.window_seconds / 3600)
            if seconds > limit + _EPSILON:
                raise RateLimited(
                    f"This job's {_n(seconds)} s of video exceed the limit of {_n(limit)} s per {hours} h "
                    f"for {_whose(scope)}; ask for fewer seconds.",
                    code="video_seconds_exceeded",
                    retry_after=self.window_seconds,
                )
            retry_after = self._seconds_retry_after(session, since, where, used + seconds - limit, now)
            raise RateLimited(
                f"Video-seconds limit reached: {_n(used)} s of {_n(limit)} s used in the last {hours} h "
                f"for {_whose(scope)}, and this job needs {_n(seconds)} s. "
                f"Retry after {max(1, int(retry_after + 0.999))} s.",
                code="video_seconds_exceeded",
                retry_after=retry_after,
            )

    def _seconds_retry_after(
        self, session: Session, since: float, where: dict[str, str], excess: float, now: float
    ) -> float:
        """Seconds until enough of the oldest charges leave the window to free ``excess`` seconds."""
        freed = 0.0
        for charged_at, charged in recent_charges(session, since=since, **where):
            freed += charged
            if freed + _EPSILON >= excess:
                return max(1.0, charged_at + self.window_seconds - now)
        return self.window_seconds  # not reachable while excess <= used; a safe answer regardless


def _limits_dict(limits: Limits) -> dict[str, Any]:
    return {f: getattr(limits, f) for f in Limits.FIELDS}


def usage(session: Session, principal: Principal, now: float) -> dict[str, Any]:
    """What ``GET /v1/me/usage`` shows: the limits (``None`` = unlimited), the user's active jobs and
    the video-seconds charged (not refunded) in the last 24 hours."""
    return {
        "limits": _limits_dict(principal.limits),
        "key_limits": _limits_dict(principal.key_limits),
        "active_jobs": _active_jobs(session, owner_id=principal.id),
        "video_seconds_last_24h": used_seconds(session, since=now - DAY_SECONDS, owner_id=principal.id),
    }
