"""The quota ledger: video-seconds charged per job, refunded at most once.

Plain functions on a SQLAlchemy :class:`~sqlalchemy.orm.Session`; each runs inside the caller's
transaction, so a charge commits (or rolls back) together with the job it pays for, and a refund
together with the state change that earns it.

A charge is in the rolling window while ``charged_at > since`` (exclusive): a charge made at ``t``
stops counting at exactly ``t + window``, which is what a ``Retry-After`` computed from it promises.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, func, insert, select, update
from sqlalchemy.orm import Session

from kinema.db.models import UsageChargeRow

# Bound parameters per refund statement; keeps IN lists well inside every backend's limits.
_REFUND_CHUNK = 500


def charge_in(
    session: Session, *, video_id: str, owner_id: str, key_id: str | None, seconds: float, now: float
) -> None:
    """Charge ``seconds`` of video to ``owner_id`` (and ``key_id``) for the job ``video_id``.

    The primary key is the video id, so a job is charged once: a second charge for the same job
    fails with an :class:`~sqlalchemy.exc.IntegrityError` (and the caller's transaction with it).
    """
    session.execute(
        insert(UsageChargeRow).values(
            video_id=video_id,
            owner_id=owner_id,
            key_id=key_id,
            seconds=float(seconds),
            charged_at=now,
            refunded_at=None,
        )
    )


def refund_in(session: Session, video_ids: Iterable[str], now: float) -> int:
    """Refund the charges of ``video_ids`` not refunded yet; return how many this call refunded.

    The update is conditional on ``refunded_at IS NULL``, so refunding a job twice (or from two
    processes at once) gives its seconds back once. Ids without a charge are ignored.
    """
    ids = sorted(set(video_ids))
    refunded = 0
    for start in range(0, len(ids), _REFUND_CHUNK):
        chunk = ids[start : start + _REFUND_CHUNK]
        result = session.execute(
            update(UsageChargeRow)
            .where(UsageChargeRow.video_id.in_(chunk), UsageChargeRow.refunded_at.is_(None))
            .values(refunded_at=now)
            .execution_options(synchronize_session=False)
        )
        refunded += cast(CursorResult[Any], result).rowcount
    return refunded


def _window(since: float, owner_id: str | None, key_id: str | None) -> list[ColumnElement[bool]]:
    if owner_id is None and key_id is None:
        raise ValueError("give owner_id or key_id")
    conditions = [UsageChargeRow.charged_at > since, UsageChargeRow.refunded_at.is_(None)]
    if owner_id is not None:
        conditions.append(UsageChargeRow.owner_id == owner_id)
    if key_id is not None:
        conditions.append(UsageChargeRow.key_id == key_id)
    return conditions


def used_seconds(session: Session, *, since: float, owner_id: str | None = None, key_id: str | None = None) -> float:
    """Seconds charged after ``since`` and not refunded, for ``owner_id`` and/or ``key_id`` (at least one)."""
    total = session.execute(select(func.sum(UsageChargeRow.seconds)).where(*_window(since, owner_id, key_id)))
    return float(total.scalar_one() or 0.0)


def recent_charges(
    session: Session, *, since: float, owner_id: str | None = None, key_id: str | None = None
) -> list[tuple[float, float]]:
    """The unrefunded charges after ``since`` as ``(charged_at, seconds)``, oldest first.

    What a refusal needs to say when enough of them will have left the window.
    """
    rows = session.execute(
        select(UsageChargeRow.charged_at, UsageChargeRow.seconds)
        .where(*_window(since, owner_id, key_id))
        .order_by(UsageChargeRow.charged_at, UsageChargeRow.video_id)
    )
    return [(float(at), float(secs)) for at, secs in rows]
