"""The pause switch: admins stop new video generation for everyone or for one cohort, and resume it.

A pause is a row in ``pauses`` (scope ``*`` for everyone, or a cohort name); no row means not paused.
Every API process and worker reads the rows through a snapshot cached for at most ``cache_seconds``
(0.5 s by default), so a pause made anywhere takes effect everywhere within that plus one query, well
under a second, without a query per request.

While paused:

* new generation requests are refused with 503 and ``Retry-After`` (:meth:`PauseService.check_generation`);
* reads, downloads, cancels and deletes keep working;
* queued jobs stay queued (the queue leaves paused jobs unclaimed, filtering in SQL itself);
* running jobs finish, or, when the pause says ``hold_running``, wait at their next step
  (:meth:`PauseService.wait_while_held`) until resume, keeping their lease by heartbeat meanwhile.

Resume deletes the row; everything continues where it stopped. Pause and resume are audited, in the
same transaction as the change.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import CursorResult, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from kinema.audit.log import AuditLog, check_no_secrets
from kinema.db.models import PauseRow
from kinema.services.auth import Principal
from kinema.services.errors import InvalidRequest, Unavailable

log = logging.getLogger(__name__)

GLOBAL_SCOPE = "*"
MAX_REASON_LENGTH = 256
MAX_COHORT_LENGTH = 64


@dataclass(frozen=True)
class PauseState:
    """One active pause. ``scope`` is ``*`` (everyone) or a cohort name.

    ``paused_at`` is when the scope was first paused (a later pause of the same scope changes only
    ``paused_by``, ``reason`` and ``hold_running``).
    """

    scope: str
    paused_at: float
    paused_by: str | None
    reason: str | None
    hold_running: bool

    @property
    def cohort(self) -> str | None:
        """The paused cohort, or ``None`` for a pause that applies to everyone."""
        return None if self.scope == GLOBAL_SCOPE else self.scope

    def to_dict(self) -> dict[str, Any]:
        """The API's view: ``cohort`` is ``null`` for a pause of everyone."""
        return {
            "cohort": self.cohort,
            "paused_at": self.paused_at,
            "paused_by": self.paused_by,
            "reason": self.reason,
            "hold_running": self.hold_running,
        }

    @classmethod
    def from_row(cls, row: Any) -> PauseState:
        return cls(
            scope=str(row.scope),
            paused_at=float(row.paused_at),
            paused_by=row.paused_by,
            reason=row.reason,
            hold_running=bool(row.hold_running),
        )


def scope_for(cohort: str | None) -> str:
    """The ``pauses.scope`` for ``cohort`` (``*`` for ``None``); refuses names that cannot be a cohort."""
    if cohort is None:
        return GLOBAL_SCOPE
    if not isinstance(cohort, str) or not cohort.strip() or cohort == GLOBAL_SCOPE:
        raise InvalidRequest("Invalid 'cohort': give a cohort name, or none to pause everyone.", param="cohort")
    if len(cohort) > MAX_COHORT_LENGTH:
        raise InvalidRequest(
            f"Invalid 'cohort': it is longer than {MAX_COHORT_LENGTH} characters.",
            param="cohort",
            code="string_above_max_length",
        )
    return cohort


def audit_target(scope: str) -> str:
    """The audit entry's target for a scope: ``*`` or ``cohort:<name>``."""
    return GLOBAL_SCOPE if scope == GLOBAL_SCOPE else f"cohort:{scope}"


class PauseService:
    """Pause and resume generation, and answer "is generation paused for this caller / this job?".

    Thread-safe; one instance per process. ``sessions`` is the process's session factory, ``audit``
    the audit log pause and resume are recorded in.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        audit: AuditLog,
        *,
        retry_after: int = 60,
        cache_seconds: float = 0.5,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._sessions = sessions
        self._audit = audit
        self.retry_after = max(1, int(retry_after))
        self.cache_seconds = float(cache_seconds)
        self._clock = clock
        self._lock = threading.Lock()
        # (pause rows by scope, time.monotonic() when their query started), swapped as one object.
        self._cache: tuple[dict[str, PauseState], float] | None = None

    # -- changing -----------------------------------------------------------------------------------

    def pause(self, actor_id: str, cohort: str | None, *, hold_running: bool, reason: str | None) -> PauseState:
        """Pause generation for ``cohort`` (``None``: everyone) and audit ``service.pause``.

        Pausing a scope that is already paused updates its ``reason``, ``hold_running`` and
        ``paused_by`` (and is audited again). Safe against concurrent pauses from other processes.
        Raises :class:`InvalidRequest` (param ``reason`` or ``cohort``) with nothing written.
        """
        scope = scope_for(cohort)
        reason = _clean_reason(reason)
        hold_running = bool(hold_running)
        details = {"hold_running": hold_running, "reason": reason}
        target = audit_target(scope)
        values = {"paused_by": actor_id, "reason": reason, "hold_running": hold_running}
        for attempt in range(5):
            try:
                with self._sessions() as session, session.begin():
                    # Insert first; if the scope is already paused (or a concurrent pause inserted it
                    # first), the whole transaction rolls back and the next attempt updates instead.
                    if attempt == 0:
                        session.execute(insert(PauseRow).values(scope=scope, paused_at=float(self._clock()), **values))
                    else:
                        res = cast(
                            CursorResult[Any],
                            session.execute(update(PauseRow).where(PauseRow.scope == scope).values(**values)),
                        )
                        if res.rowcount == 0:  # resumed in between: insert again
                            session.execute(
                                insert(PauseRow).values(scope=scope, paused_at=float(self._clock()), **values)
                            )
                    self._audit.append_in(session, "service.pause", actor=actor_id, target=target, details=details)
                    row = session.execute(select(PauseRow).where(PauseRow.scope == scope)).scalar_one()
                    state = PauseState.from_row(row)
                break
            except IntegrityError:
                if attempt == 4:
                    raise
        self.invalidate()
        log.info("generation paused for %s by %s (hold_running=%s)", target, actor_id, hold_running)
        return state

    def resume(self, actor_id: str, cohort: str | None) -> bool:
        """Resume generation for ``cohort`` (``None``: the pause of everyone); returns whether it was paused.

        Audits ``service.resume`` only when a pause was actually lifted. Resuming everyone does not
        lift cohort pauses, nor the other way round.
        """
        scope = scope_for(cohort)
        target = audit_target(scope)
        with self._sessions() as session, session.begin():
            gone = session.execute(
                delete(PauseRow).where(PauseRow.scope == scope).returning(PauseRow.paused_at, PauseRow.paused_by)
            ).first()
            if gone is not None:
                details = {"paused_at": float(gone.paused_at), "paused_by": gone.paused_by}
                self._audit.append_in(session, "service.resume", actor=actor_id, target=target, details=details)
        self.invalidate()
        if gone is not None:
            log.info("generation resumed for %s by %s", target, actor_id)
        return gone is not None

    # -- reading ------------------------------------------------------------------------------------

    def states(self) -> list[PauseState]:
        """Every active pause, fresh from the database: everyone's first, then cohorts by name."""
        return sorted(self._refresh().values(), key=lambda s: (s.scope != GLOBAL_SCOPE, s.scope))

    def invalidate(self) -> None:
        """Forget the cached snapshot, so the next check reads the database."""
        with self._lock:
            self._cache = None

    def check_generation(self, principal: Principal) -> None:
        """Raise :class:`Unavailable` (503, ``Retry-After``) when generation is paused for ``principal``.

        A pause of everyone wins over one of the principal's cohort in the message.
        """
        snapshot = self._cached()
        state = snapshot.get(GLOBAL_SCOPE) or snapshot.get(principal.cohort)
        if state is None:
            return
        who = "for everyone" if state.scope == GLOBAL_SCOPE else f"for your cohort '{state.scope}'"
        because = f": {state.reason}" if state.reason else ""
        stop = "" if because.endswith((".", "!", "?")) else "."
        raise Unavailable(
            f"Video generation is paused {who} by an administrator{because}{stop} Your existing videos can still "
            f"be read and downloaded, and queued videos stay queued. Retry after {self.retry_after} s.",
            code="generation_paused",
            retry_after=self.retry_after,
        )

    def held(self, cohort: str | None) -> bool:
        """Whether a running job of ``cohort`` must wait at its next step: a pause of everyone or of
        that cohort with ``hold_running``."""
        snapshot = self._cached()
        for scope in (GLOBAL_SCOPE, cohort):
            state = snapshot.get(scope) if scope is not None else None
            if state is not None and state.hold_running:
                return True
        return False

    def wait_while_held(self, cohort: str | None, should_stop: Callable[[], bool], poll: float = 0.25) -> None:
        """Block while :meth:`held` is true for ``cohort``; return early once ``should_stop()`` is true.

        Called by the generation runner between steps. Returns at once when not held (a dict lookup
        while the snapshot is fresh). The job's heartbeat keeps running in its own thread meanwhile;
        ``should_stop`` is how a cancel or a lost lease ends the wait.
        """
        if not self.held(cohort):
            return
        log.info("running job of cohort %r held by a pause", cohort)
        started = time.monotonic()
        while self.held(cohort):
            if should_stop():
                return
            time.sleep(poll)
        log.info("running job of cohort %r released after %.1f s", cohort, time.monotonic() - started)

    # -- the snapshot -------------------------------------------------------------------------------

    def _cached(self) -> dict[str, PauseState]:
        """The pause rows, read at most ``cache_seconds`` ago."""
        cache = self._cache
        if cache is not None and time.monotonic() - cache[1] < self.cache_seconds:
            return cache[0]
        with self._lock:  # one query refreshes it for every waiting thread
            cache = self._cache
            if cache is not None and time.monotonic() - cache[1] < self.cache_seconds:
                return cache[0]
            try:
                return self._refresh_locked()
            except Exception:
                if cache is None:
                    raise
                # The database hiccuped: keep answering from the last snapshot rather than fail a
                # request or a running job; try again after another cache_seconds.
                log.warning("could not refresh the pause state; using the previous one", exc_info=True)
                self._cache = (cache[0], time.monotonic())
                return cache[0]

    def _refresh(self) -> dict[str, PauseState]:
        with self._lock:
            return self._refresh_locked()

    def _refresh_locked(self) -> dict[str, PauseState]:
        taken = time.monotonic()  # before the query: the snapshot is at least this fresh
        with self._sessions() as session:
            rows = session.execute(select(PauseRow)).scalars().all()
            snapshot = {row.scope: PauseState.from_row(row) for row in rows}
        self._cache = (snapshot, taken)
        return snapshot


def _clean_reason(reason: str | None) -> str | None:
    """The reason stripped (empty: ``None``); refuses one over 256 characters or that looks like a secret."""
    if reason is None:
        return None
    if not isinstance(reason, str):
        raise InvalidRequest("Invalid 'reason': it must be a string.", param="reason", code="invalid_type")
    reason = reason.strip()
    if len(reason) > MAX_REASON_LENGTH:
        raise InvalidRequest(
            f"Invalid 'reason': it is {len(reason)} characters long; at most {MAX_REASON_LENGTH} are allowed.",
            param="reason",
            code="string_above_max_length",
        )
    try:
        check_no_secrets({"reason": reason})  # the audit log would refuse it inside the transaction
    except ValueError:
        raise InvalidRequest(
            "Invalid 'reason': it looks like a credential (it starts with 'Bearer' or 'Basic'); reword it.",
            param="reason",
            code="invalid_value",
        ) from None
    return reason or None
