"""The shared-key defense: suspend an API key that is evidently used by more than its owner.

A key pasted into a public repository or shared among a team shows up from many networks, with
many user agents, or at a request rate no one person reaches. :class:`KeyGuard` watches every
request authenticated by an API key and, past any of three thresholds, suspends the key at once,
alerts its owner and records the suspension in the audit log:

- more than ``max_requests_per_minute`` requests in any minute (counted with ``limits``, in memory
  or in Redis so that several API processes count together);
- more than ``max_networks`` distinct networks (an IPv4 /24 or IPv6 /48 by default) seen within
  ``window_seconds``;
- more than ``max_agents`` distinct user agents seen within ``window_seconds``.

Networks and user agents are recorded in ``key_sightings`` (one row per key, kind and value, with
first and last seen). To keep the database quiet a process writes the same sighting at most once
every ``window_seconds / 10``; the distinct values are counted only when a write makes a value count
again (a new row, or an old one seen again after dropping out of the window), and after that write
has committed, so that of several concurrent new sightings at least the last one sees them all.

Suspension is one conditional UPDATE, so however many requests (threads, processes) cross a
threshold together, exactly one of them suspends the key, writes the alert and the audit entry;
all of them are refused. The audit entry and the log hold counts, never addresses, user agents or
key material.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, cast

from limits import RateLimitItemPerMinute
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter
from sqlalchemy import CursorResult, Table, case, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from kinema.audit.log import AuditLog
from kinema.db.models import AlertRow, ApiKeyRow, KeySightingRow
from kinema.netaddr import network_of
from kinema.services.auth import ClientInfo, Principal, new_id
from kinema.services.errors import Unauthorized

log = logging.getLogger(__name__)

NET = "net"
AGENT = "agent"
NO_AGENT = "(none)"
AGENT_MAX_LEN = 256  # the width of key_sightings.value

_sightings = cast(Table, KeySightingRow.__table__)
_keys = cast(Table, ApiKeyRow.__table__)


def _duration(seconds: float) -> str:
    """``3600`` -> ``"1 hour"``, ``90`` -> ``"90 seconds"``: the window in words."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            n = int(seconds // size)
            return f"{n} {unit}{'s' if n != 1 else ''}"
    n_s = f"{seconds:g}"
    return f"{n_s} second{'s' if n_s != '1' else ''}"


class KeyGuard:
    """Suspends API keys used from too many networks or user agents, or too fast.

    ``sessions`` makes database sessions, ``audit`` records each suspension (``key.suspend``).
    ``limiter_storage_uri`` is a ``limits`` storage (``memory://``, or ``redis://host:6379/0`` shared
    by several processes); ``namespace`` prefixes its keys. ``clock`` stamps sightings and
    suspensions (the request-rate window follows the real clock, as ``limits`` does).
    ``cache_size`` bounds the in-memory record of recently written sightings.

    :meth:`observe` is thread-safe.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        audit: AuditLog,
        *,
        window_seconds: float,
        max_networks: int,
        max_agents: int,
        max_requests_per_minute: int,
        ipv4_prefix: int = 24,
        ipv6_prefix: int = 48,
        limiter_storage_uri: str = "memory://",
        namespace: str = "kinema",
        clock: Callable[[], float] = time.time,
        cache_size: int = 65536,
    ) -> None:
        if window_seconds <= 0:
            raise ValueError("window_seconds must be positive")
        if min(max_networks, max_agents, max_requests_per_minute, cache_size) < 1:
            raise ValueError("max_networks, max_agents, max_requests_per_minute and cache_size must be >= 1")
        if not 0 <= ipv4_prefix <= 32 or not 0 <= ipv6_prefix <= 128:
            raise ValueError("ipv4_prefix must be 0..32 and ipv6_prefix 0..128")
        self._sessions = sessions
        self._audit = audit
        self.window_seconds = float(window_seconds)
        self.max_networks = max_networks
        self.max_agents = max_agents
        self.max_requests_per_minute = max_requests_per_minute
        self.ipv4_prefix = ipv4_prefix
        self.ipv6_prefix = ipv6_prefix
        self._clock = clock
        self._rewrite_after = self.window_seconds / 10
        self._limiter = MovingWindowRateLimiter(storage_from_string(limiter_storage_uri))
        self._rate = RateLimitItemPerMinute(max_requests_per_minute, namespace=f"{namespace}:keyguard")
        self._cache_size = cache_size
        self._written: OrderedDict[tuple[str, str, str], float] = OrderedDict()  # -> when this process wrote it
        self._lock = threading.Lock()
        self._limiter_failing = False

    # -- the check ----------------------------------------------------------------------------------

    def observe(self, principal: Principal, client: ClientInfo) -> None:
        """Account for one request authenticated by ``principal`` from ``client``.

        Does nothing for principals without an API key. Raises :class:`Unauthorized` (code
        ``api_key_suspended``) when the key is over a threshold: the key is then suspended (by this
        call or a concurrent one), its owner alerted and the suspension audited.
        """
        key_id = principal.key_id
        if key_id is None:
            return
        if not self._rate_ok(key_id):
            self.suspend(key_id, "rate")
        try:
            network = network_of(client.ip, self.ipv4_prefix, self.ipv6_prefix)
        except ValueError:  # not an address (a test client, a unix socket): count it as its own network
            network = (client.ip or "(unknown)")[:AGENT_MAX_LEN]
        agent = (client.user_agent or "")[:AGENT_MAX_LEN] or NO_AGENT
        for kind, value, limit, reason in ((NET, network, self.max_networks, "networks"),
                                           (AGENT, agent, self.max_agents, "agents")):  # fmt: skip
            if self._record(key_id, kind, value) and self._count(key_id, kind) > limit:
                self.suspend(key_id, reason)

    def _rate_ok(self, key_id: str) -> bool:
        """Count this request; False once the key is over its requests per minute.

        If the limiter's storage (Redis) fails, the request is let through: a storage outage should
        neither suspend keys nor refuse requests. The failure is logged once until it recovers.
        """
        try:
            ok = self._limiter.hit(self._rate, key_id)
        except Exception:
            if not self._limiter_failing:
                self._limiter_failing = True
                log.warning("keyguard: request-rate storage failed; not counting request rates", exc_info=True)
            return True
        if self._limiter_failing:
            self._limiter_failing = False
            log.warning("keyguard: request-rate storage works again")
        return bool(ok)

    # -- sightings ----------------------------------------------------------------------------------

    def _claim(self, item: tuple[str, str, str], now: float) -> bool:
        """Whether this process should write ``item`` now (not written in the last window/10)."""
        with self._lock:
            last = self._written.get(item)
            if last is not None and now - last < self._rewrite_after and now >= last:
                return False
            self._written[item] = now
            self._written.move_to_end(item)
            while len(self._written) > self._cache_size:
                self._written.popitem(last=False)
            return True

    def _unclaim(self, item: tuple[str, str, str], now: float) -> None:
        with self._lock:
            if self._written.get(item) == now:
                del self._written[item]

    def _record(self, key_id: str, kind: str, value: str) -> bool:
        """Write one sighting (unless written lately); True if it now counts again within the window:
        newly inserted, or seen again after its last sighting fell out of the window."""
        now = float(self._clock())
        item = (key_id, kind, value)
        if not self._claim(item, now):
            return False
        try:
            return self._write_sighting(key_id, kind, value, now)
        except BaseException:
            self._unclaim(item, now)  # let the next request try again
            raise

    def _write_sighting(self, key_id: str, kind: str, value: str, now: float) -> bool:
        cutoff = now - self.window_seconds
        match = (_sightings.c.key_id == key_id) & (_sightings.c.kind == kind) & (_sightings.c.value == value)
        newer = case((_sightings.c.last_seen < now, now), else_=_sightings.c.last_seen)  # never move it back
        for _ in range(5):
            try:
                with self._sessions() as s, s.begin():
                    # Each statement writes first, so SQLite takes its write lock at once (waiting its
                    # busy timeout) rather than failing to upgrade a read transaction.
                    fresh = update(_sightings).where(match & (_sightings.c.last_seen >= cutoff))
                    if _rowcount(s.execute(fresh.values(last_seen=newer))):
                        return False
                    if _rowcount(s.execute(update(_sightings).where(match).values(last_seen=newer))):
                        return True  # seen before, but not within the window: it counts again
                    row = {"key_id": key_id, "kind": kind, "value": value, "first_seen": now, "last_seen": now}
                    if _rowcount(s.execute(self._insert_new(s).values(**row))):
                        return True
                    # ON CONFLICT DO NOTHING: a concurrent writer inserted it first; update it next time
            except IntegrityError:  # dialects without ON CONFLICT: a concurrent writer inserted it first
                pass
        raise RuntimeError(f"could not record a sighting of key {key_id}")  # unreachable in practice

    @staticmethod
    def _insert_new(s: Session) -> Any:
        """An INSERT into key_sightings that does nothing (rowcount 0) if the row already exists."""
        dialect = s.get_bind().dialect.name
        if dialect == "postgresql":
            return postgresql.insert(_sightings).on_conflict_do_nothing(index_elements=["key_id", "kind", "value"])
        if dialect == "sqlite":
            return sqlite.insert(_sightings).on_conflict_do_nothing(index_elements=["key_id", "kind", "value"])
        return insert(_sightings)

    def _count(self, key_id: str, kind: str, session: Session | None = None) -> int:
        """Distinct values of ``kind`` seen for the key within the window (rows are unique per value)."""
        cutoff = float(self._clock()) - self.window_seconds
        q = (
            select(func.count())
            .select_from(_sightings)
            .where(_sightings.c.key_id == key_id, _sightings.c.kind == kind, _sightings.c.last_seen >= cutoff)
        )
        if session is not None:
            return int(session.execute(q).scalar_one())
        with self._sessions() as s:
            return int(s.execute(q).scalar_one())

    # -- suspension ---------------------------------------------------------------------------------

    def reason_text(self, reason: str) -> str:
        """What a suspension ``reason`` (``rate``, ``networks``, ``agents``) means, in words."""
        window = _duration(self.window_seconds)
        if reason == "rate":
            return f"it sent more than {self.max_requests_per_minute} requests in a minute"
        if reason == "networks":
            return f"it was used from more than {self.max_networks} different networks within {window}"
        if reason == "agents":
            return f"it was used by more than {self.max_agents} different client programs within {window}"
        return f"of unusual use ({reason})"

    def suspend(self, key_id: str, reason: str) -> None:
        """Suspend the key for ``reason`` and raise :class:`Unauthorized` (``api_key_suspended``).

        In one transaction: a conditional UPDATE that only suspends a key that is neither suspended
        nor revoked; if it did, an alert for the owner and a ``key.suspend`` audit entry (reason and
        counts only). Whether this call or a concurrent one suspended the key, the caller is refused.
        """
        text = self.reason_text(reason)
        now = float(self._clock())
        with self._sessions() as s, s.begin():
            done = _rowcount(
                s.execute(
                    update(_keys)
                    .where(_keys.c.id == key_id, _keys.c.suspended_at.is_(None), _keys.c.revoked_at.is_(None))
                    .values(suspended_at=now, suspend_reason=text[:256])
                )
            )
            key = s.execute(
                select(_keys.c.owner_id, _keys.c.name, _keys.c.hint, _keys.c.suspend_reason, _keys.c.revoked_at).where(
                    _keys.c.id == key_id
                )
            ).one_or_none()
            if done and key is not None:
                networks, agents = self._count(key_id, NET, s), self._count(key_id, AGENT, s)
                s.add(
                    AlertRow(
                        id=new_id("alert"),
                        user_id=key.owner_id,
                        kind="key_suspended",
                        subject=key_id,
                        message=(
                            f"Your API key '{key.name}' ({key.hint}...) was suspended automatically because "
                            f"{text}. This usually means the key was shared or has leaked. It cannot be used "
                            "again: create a new key, replace this one wherever you use it, and keep the new "
                            "one private (never in code, repositories or shared documents)."
                        ),
                        created_at=now,
                    )
                )
                self._audit.append_in(
                    s,
                    "key.suspend",
                    actor=None,
                    target=key_id,
                    details={"reason": reason, "owner": key.owner_id, "networks": networks, "agents": agents},
                )
        if done:
            log.warning("keyguard: suspended API key %s automatically (reason: %s)", key_id, reason)
        elif key is not None and key.revoked_at is not None and key.suspend_reason is None:
            raise Unauthorized("This API key has been revoked.")
        elif key is not None and key.suspend_reason:
            text = key.suspend_reason  # suspended concurrently, perhaps for another reason
        raise Unauthorized(
            f"This API key was suspended automatically because {text}; its owner has been alerted. "
            "Create a new key and keep it private.",
            code="api_key_suspended",
        )


def _rowcount(result: Any) -> int:
    return int(cast(CursorResult[Any], result).rowcount)
