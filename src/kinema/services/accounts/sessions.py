"""Browser sessions: login, logout, the user and principal behind a session cookie, and its CSRF token.

Session ids are random and stored only as SHA-256, like the CSRF token's HMAC: a copy of the database
lets no one take over a session.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from kinema.audit.log import AuditLog
from kinema.db.models import UserRow, WebSessionRow
from kinema.services.accounts._common import normalise_email, sha256
from kinema.services.accounts.hashing import PasswordHashing
from kinema.services.accounts.users import Users
from kinema.services.auth import Limits, Principal, role_scopes
from kinema.services.errors import InvalidRequest, Unauthorized


def csrf_token_for(cookie: str) -> str:
    """The session's CSRF token: an HMAC of the session id, so the server can give it again (GET /v1/me)
    while the database keeps only its SHA-256, like the session id's; neither can be read back from a copy."""
    mac = hmac.new(cookie.encode(), b"kinema-csrf-v1", hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


@dataclass(frozen=True)
class NewSession:
    """A session just created: the cookie value (shown once, never stored) and its CSRF token."""

    cookie: str
    csrf_token: str
    user: UserRow


class WebSessions:
    """Password sign-in and the sessions it starts, with idle and absolute timeouts."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        audit: AuditLog,
        *,
        users: Users,
        hashing: PasswordHashing,
        idle_seconds: float = 1800,
        absolute_seconds: float = 12 * 3600,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._sessions = sessions
        self._audit = audit
        self._users = users
        self._hashing = hashing
        self.idle_seconds = idle_seconds
        self.absolute_seconds = absolute_seconds
        self._clock = clock

    def login(self, email: str, password: str, *, replaces: str | None = None, ip: str | None = None) -> NewSession:
        """Check the password and start a new session (a new id every time; ``replaces`` is ended).

        Failures say only "wrong email or password", whichever it was, and take the same time.
        """
        try:
            address = normalise_email(email)
        except InvalidRequest:
            address = ""
        with self._sessions() as s:
            user = s.scalar(select(UserRow).where(UserRow.email == address)) if address else None
        ok = self._hashing.verify(user.password_hash if user is not None else None, password)
        if user is None or not ok or user.disabled_at is not None:
            self._audit.append(
                "auth.login_failed",
                actor=user.id if user else None,
                details={"reason": "disabled" if ok and user else "bad_credentials"},
            )
            raise Unauthorized("Wrong email or password.", code="invalid_credentials")
        assert user.password_hash is not None
        if self._hashing.needs_rehash(user.password_hash):
            with self._sessions.begin() as s:
                s.execute(
                    update(UserRow).where(UserRow.id == user.id).values(password_hash=self._hashing.hash(password))
                )
        cookie = secrets.token_urlsafe(32)
        csrf = csrf_token_for(cookie)
        now = self._clock()
        with self._sessions.begin() as s:
            if replaces:
                s.execute(delete(WebSessionRow).where(WebSessionRow.id_hash == sha256(replaces)))
            s.add(
                WebSessionRow(
                    id_hash=sha256(cookie), user_id=user.id, csrf_token=sha256(csrf), created_at=now, last_seen_at=now
                )
            )
            self._audit.append_in(s, "auth.login", actor=user.id, target=user.id, details={"via": "password"})
        return NewSession(cookie, csrf, user)

    def logout(self, cookie: str) -> None:
        """End the session behind ``cookie`` (no error if it is already gone)."""
        with self._sessions.begin() as s:
            row = s.get(WebSessionRow, sha256(cookie))
            if row is not None:
                s.delete(row)
                self._audit.append_in(s, "auth.logout", actor=row.user_id, target=row.user_id)

    def session_user(self, cookie: str) -> tuple[UserRow, WebSessionRow, Limits]:
        """The user of a live session, touching its idle timer; :class:`Unauthorized` when it is over
        (an ended session's row is deleted, in its own committed transaction, before refusing)."""
        now = self._clock()
        refused: Unauthorized | None = None
        with self._sessions.begin() as s:
            row = s.get(WebSessionRow, sha256(cookie))
            if row is None:
                raise Unauthorized("Not signed in, or the session ended.", code="session_invalid")
            user = s.get(UserRow, row.user_id)
            idle = now - row.last_seen_at > self.idle_seconds
            if idle or now - row.created_at > self.absolute_seconds:
                refused = Unauthorized("The session timed out; sign in again.", code="session_expired")
            elif user is None or user.disabled_at is not None:
                refused = Unauthorized("The account is disabled.", code="account_disabled")
            if refused is not None:
                s.delete(row)
            else:
                assert user is not None
                # Touch at most every few seconds (fewer writes), always well inside the idle timeout.
                if now - row.last_seen_at > min(5.0, self.idle_seconds / 4):
                    row.last_seen_at = now
                limits = self._users.limits_for(s, user)
                s.flush()
                s.expunge(row)
                s.expunge(user)
        if refused is not None:
            raise refused
        assert user is not None
        return user, row, limits

    def session_principal(self, cookie: str) -> tuple[Principal, str]:
        """The principal of a session cookie, and the session's CSRF token.

        The row keeps only the token's SHA-256; a session from before that (a token kept in plain) does
        not match and is ended: its user signs in again."""
        user, row, limits = self.session_user(cookie)
        csrf = csrf_token_for(cookie)
        if not hmac.compare_digest(sha256(csrf).encode(), row.csrf_token.encode()):
            with self._sessions.begin() as s:
                s.execute(delete(WebSessionRow).where(WebSessionRow.id_hash == sha256(cookie)))
            raise Unauthorized("The session ended; sign in again.", code="session_invalid")
        principal = Principal(
            id=user.id, role=user.role, cohort=user.cohort, scopes=role_scopes(user.role), via="session", limits=limits
        )
        return principal, csrf
