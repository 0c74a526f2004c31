"""Security alerts for users (e.g. a key suspended for looking shared): list them, mark one read."""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import and_, select
from sqlalchemy.orm import Session, sessionmaker

from kinema.db.models import AlertRow
from kinema.services.accounts._common import ALERT_ID
from kinema.services.errors import NotFound


class Alerts:
    """Reading a user's alerts (the shared-key defense writes them)."""

    def __init__(self, sessions: sessionmaker[Session], *, clock: Callable[[], float] = time.time) -> None:
        self._sessions = sessions
        self._clock = clock

    def list_alerts(self, user_id: str | None, *, unread_only: bool = False) -> list[AlertRow]:
        """The user's alerts (``None``: everyone's, for admins), newest first."""
        stmt = select(AlertRow).order_by(AlertRow.created_at.desc(), AlertRow.id.desc()).limit(500)
        if user_id is not None:
            stmt = stmt.where(AlertRow.user_id == user_id)
        if unread_only:
            stmt = stmt.where(AlertRow.read_at.is_(None))
        with self._sessions() as s:
            return list(s.scalars(stmt))

    def mark_alert_read(self, user_id: str, alert_id: str) -> AlertRow:
        """Mark one of the user's alerts read; another user's alert is :class:`NotFound`."""
        if not ALERT_ID.match(alert_id):
            raise NotFound("alert", alert_id[:80])
        with self._sessions.begin() as s:
            row = s.scalar(select(AlertRow).where(and_(AlertRow.id == alert_id, AlertRow.user_id == user_id)))
            if row is None:
                raise NotFound("alert", alert_id)
            if row.read_at is None:
                row.read_at = self._clock()
            s.flush()
            s.expunge(row)
        return row
