"""Passwords: set a user's password, change your own, confirm it for a destructive request."""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import delete, update
from sqlalchemy.orm import Session, sessionmaker

from kinema.audit.log import AuditLog
from kinema.db.models import UserRow, WebSessionRow
from kinema.services.accounts.hashing import PasswordHashing
from kinema.services.accounts.users import Users
from kinema.services.errors import InvalidRequest


class Passwords:
    """Set a user's password (admins, the CLI), change your own, confirm it for a destructive request."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        audit: AuditLog,
        *,
        users: Users,
        hashing: PasswordHashing,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._sessions = sessions
        self._audit = audit
        self._users = users
        self._hashing = hashing
        self._clock = clock

    def set_password(self, user_id: str, password: str, *, actor: str | None = None) -> None:
        """Set a new password and end every browser session of the user."""
        self._hashing.check(password)
        now = self._clock()
        with self._sessions.begin() as s:
            s.execute(
                update(UserRow)
                .where(UserRow.id == user_id)
                .values(password_hash=self._hashing.hash(password), password_changed_at=now)
            )
            s.execute(delete(WebSessionRow).where(WebSessionRow.user_id == user_id))
            self._audit.append_in(s, "auth.password_change", actor=actor or user_id, target=user_id)

    def change_password(self, user_id: str, current: str, new: str) -> None:
        """The user's own change: the current password must be right."""
        user = self._users.get_user(user_id)
        if not self._hashing.verify(user.password_hash, current):
            raise InvalidRequest("The current password is wrong.", param="current_password", code="wrong_password")
        self.set_password(user_id, new)

    def confirm_password(self, user_id: str, password: str) -> None:
        """For a destructive request: the user's password, again; :class:`InvalidRequest` if wrong."""
        if not self._hashing.verify(self._users.get_user(user_id).password_hash, password):
            raise InvalidRequest("The password is wrong.", param="password", code="wrong_password")
