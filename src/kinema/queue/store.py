"""The durable job queue: claims under a lease with a fencing token, heartbeats, and fenced writes.

Every write a worker makes after claiming is conditional on ``lease_token`` still being the one it
got: once its lease expires and another worker claims the job (token + 1), the first worker's
progress, completion and failure writes all match zero rows. That is what makes a stale worker
harmless, whatever it is still doing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, Executable, and_, case, exists, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from kinema.db.models import PauseRow, VideoRow
from kinema.db.usage import refund_in

Clock = Callable[[], float]
OnSettled = Callable[[Session, Sequence[str], float], object]
"""Called inside the transaction that settles jobs (completed or failed), with their ids: what it
writes (e.g. webhook events in an outbox) commits or rolls back with the state change."""


@dataclass(frozen=True)
class Lease:
    """Proof that a worker holds a job: valid while ``token`` is still the row's ``lease_token``."""

    video_id: str
    token: int
    attempt: int
    worker_id: str


@dataclass(frozen=True)
class Outputs:
    """Blob keys of a finished job's files."""

    video_key: str
    thumbnail_key: str
    spritesheet_key: str
    provenance_ref: str | None = None
    watermark_tag: int | None = None


class JobQueue:
    """Claims, renews and settles video jobs stored in the ``videos`` table."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        lease_seconds: float,
        max_attempts: int,
        affinity_max_wait_seconds: float = 60.0,
        clock: Clock = time.time,
        on_settled: OnSettled | None = None,
    ) -> None:
        """``affinity_max_wait_seconds``: how long a job may wait while workers take newer jobs for the models
        they have loaded (see :meth:`claim`); 0 turns model affinity off (plain oldest-first)."""
        self._sessions = sessions
        self._on_settled = on_settled
        self.lease_seconds = lease_seconds
        self.max_attempts = max_attempts
        self.affinity_max_wait_seconds = affinity_max_wait_seconds
        self._clock = clock
        self._skip_locked = sessions.kw["bind"].dialect.name == "postgresql"

    # -- claiming --------------------------------------------------------------------------------

    def _claimable(self, now: float) -> ColumnElement[bool]:
        expired = and_(
            VideoRow.status == "in_progress",
            VideoRow.lease_expires_at < now,
            VideoRow.attempts < self.max_attempts,
            VideoRow.cancel_requested.is_(False),
        )
        # Jobs of a paused scope stay where they are (nothing is lost); resume makes them claimable again.
        paused = exists().where(or_(PauseRow.scope == "*", PauseRow.scope == VideoRow.cohort))
        return and_(or_(VideoRow.status == "queued", expired), ~paused)

    def _claim_order(self, now: float, prefer_models: Sequence[str]) -> list[ColumnElement[Any]]:
        """Oldest first; with affinity, jobs for ``prefer_models`` jump ahead of older jobs for other models,
        except those older than ``affinity_max_wait_seconds``, which go first whatever their model."""
        fifo: list[ColumnElement[Any]] = [VideoRow.created_at.asc(), VideoRow.id.asc()]
        if not prefer_models or self.affinity_max_wait_seconds <= 0:
            return fifo
        overdue = VideoRow.created_at < now - self.affinity_max_wait_seconds
        # Rank 0 holds the overdue jobs and the preferred ones; overdue jobs are the oldest, so created_at
        # puts them first within it.
        rank = case((or_(overdue, VideoRow.model.in_(list(prefer_models))), 0), else_=1)
        return [rank, *fifo]

    def claim(self, worker_id: str, *, prefer_models: Sequence[str] = ()) -> Lease | None:
        """Take a claimable job (queued, or in progress with an expired lease), if any.

        Oldest first, with model affinity: ``prefer_models`` (the models this worker has loaded) come
        before older jobs for other models, so a worker does not swap models needlessly; no job waits
        that way for more than ``affinity_max_wait_seconds`` (counted from its creation).
        On PostgreSQL the candidate row is locked with ``FOR UPDATE SKIP LOCKED`` so concurrent
        workers pick different rows; everywhere the UPDATE is also a compare-and-set on the token,
        so two workers can never both win the same claim.
        """
        self.reap()
        for _ in range(10):
            now = self._clock()
            with self._sessions.begin() as s:
                stmt = (
                    select(VideoRow.id, VideoRow.lease_token)
                    .where(self._claimable(now))
                    .order_by(*self._claim_order(now, prefer_models))
                    .limit(1)
                )
                if self._skip_locked:
                    stmt = stmt.with_for_update(skip_locked=True, of=VideoRow)
                row = s.execute(stmt).first()
                if row is None:
                    return None
                claimed = s.execute(
                    update(VideoRow)
                    .where(
                        VideoRow.id == row.id,
                        VideoRow.lease_token == row.lease_token,
                        self._claimable(now),
                    )
                    .values(
                        status="in_progress",
                        lease_token=VideoRow.lease_token + 1,
                        lease_owner=worker_id,
                        lease_expires_at=now + self.lease_seconds,
                        attempts=VideoRow.attempts + 1,
                        started_at=func.coalesce(VideoRow.started_at, now),
                    )
                    .returning(VideoRow.lease_token, VideoRow.attempts)
                ).first()
                if claimed is not None:
                    return Lease(row.id, claimed.lease_token, claimed.attempts, worker_id)
        return None

    def reap(self) -> int:
        """Settle jobs whose worker vanished and that may not be retried; return how many.

        A lease that expired after the last allowed attempt fails the job with ``worker_lost``;
        an expired lease on a job whose cancellation was requested fails it as ``cancelled``.
        """
        now = self._clock()
        expired = and_(VideoRow.status == "in_progress", VideoRow.lease_expires_at < now)
        with self._sessions.begin() as s:
            ids: list[str] = []
            ids += s.scalars(
                update(VideoRow)
                .where(expired, VideoRow.cancel_requested.is_(True))
                .values(_failed(now, "cancelled", "The video was cancelled."))
                .returning(VideoRow.id)
            ).all()
            ids += s.scalars(
                update(VideoRow)
                .where(expired, VideoRow.attempts >= self.max_attempts)
                .values(
                    _failed(
                        now,
                        "worker_lost",
                        f"The worker running this video stopped responding {self.max_attempts} times; "
                        "giving up. Try again, and tell the operator if it keeps happening.",
                    )
                )
                .returning(VideoRow.id)
            ).all()
            refund_in(s, ids, now)
            self._settled(s, ids, now)
        return len(ids)

    # -- fenced writes by the lease holder -------------------------------------------------------

    def _fenced(self, lease: Lease) -> ColumnElement[bool]:
        return and_(
            VideoRow.id == lease.video_id,
            VideoRow.lease_token == lease.token,
            VideoRow.status == "in_progress",
        )

    def heartbeat(self, lease: Lease) -> bool:
        """Extend the lease; False when it was lost (reclaimed, cancelled out, or deleted)."""
        now = self._clock()
        with self._sessions.begin() as s:
            return bool(
                _affected(
                    s, update(VideoRow).where(self._fenced(lease)).values(lease_expires_at=now + self.lease_seconds)
                )
            )

    def set_progress(self, lease: Lease, progress: int) -> bool:
        """Record progress 0-99; it never goes down, even across a reclaim. False if lease lost."""
        p = max(0, min(99, int(progress)))
        with self._sessions.begin() as s:
            return bool(
                _affected(
                    s,
                    update(VideoRow)
                    .where(self._fenced(lease))
                    .values(progress=case((VideoRow.progress < p, p), else_=VideoRow.progress)),
                )
            )

    def should_stop(self, lease: Lease) -> bool:
        """True when the job was cancelled, deleted, or is no longer held under this lease."""
        with self._sessions() as s:
            row = s.execute(select(VideoRow.cancel_requested).where(self._fenced(lease))).first()
        return row is None or bool(row.cancel_requested)

    def complete(self, lease: Lease, outputs: Outputs) -> bool:
        """Mark the job completed with its outputs, only if the lease is still ours."""
        now = self._clock()
        with self._sessions.begin() as s:
            done = bool(
                _affected(
                    s,
                    update(VideoRow)
                    .where(self._fenced(lease), VideoRow.cancel_requested.is_(False))
                    .values(
                        status="completed",
                        progress=100,
                        completed_at=now,
                        video_key=outputs.video_key,
                        thumbnail_key=outputs.thumbnail_key,
                        spritesheet_key=outputs.spritesheet_key,
                        provenance_ref=outputs.provenance_ref,
                        watermark_tag=outputs.watermark_tag,
                        lease_owner=None,
                        lease_expires_at=None,
                    ),
                )
            )
            if done:
                self._settled(s, [lease.video_id], now)
            return done

    def release(self, lease: Lease) -> bool:
        """Give a running job back to the queue (a worker shutting down), only if the lease is still ours.

        The job becomes ``queued`` under a new token, so the releasing worker's later writes match nothing,
        and the attempt is not counted: a release is not a lost worker. Progress stays where it was.
        """
        with self._sessions.begin() as s:
            return bool(
                _affected(
                    s,
                    update(VideoRow)
                    .where(self._fenced(lease), VideoRow.cancel_requested.is_(False))
                    .values(
                        status="queued",
                        lease_token=VideoRow.lease_token + 1,
                        lease_owner=None,
                        lease_expires_at=None,
                        attempts=VideoRow.attempts - 1,
                    ),
                )
            )

    def fail(self, lease: Lease, code: str, message: str) -> bool:
        """Mark the job failed with a user-facing error, only if the lease is still ours."""
        now = self._clock()
        with self._sessions.begin() as s:
            failed = _affected(s, update(VideoRow).where(self._fenced(lease)).values(_failed(now, code, message)))
            if failed:
                refund_in(s, [lease.video_id], now)  # charged once at enqueue; refunded at most once
                self._settled(s, [lease.video_id], now)
            return bool(failed)

    def _settled(self, session: Session, ids: Sequence[str], now: float) -> None:
        if ids and self._on_settled is not None:
            self._on_settled(session, ids, now)

    # -- reads for metrics and readiness ---------------------------------------------------------

    def depth(self) -> int:
        """Jobs waiting for a worker."""
        with self._sessions() as s:
            return int(s.scalar(select(func.count()).where(VideoRow.status == "queued")) or 0)


def _failed(now: float, code: str, message: str) -> dict[str, object]:
    return {
        "status": "failed",
        "error_code": code,
        "error_message": message,
        "completed_at": now,
        "lease_owner": None,
        "lease_expires_at": None,
    }


def _affected(session: Session, statement: Executable) -> int:
    """Rows matched by an UPDATE/DELETE (SQLAlchemy types ``execute`` as a plain ``Result``)."""
    return cast(CursorResult[Any], session.execute(statement)).rowcount
