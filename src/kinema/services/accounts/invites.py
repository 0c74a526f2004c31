"""Invite-only sign-up: create, list and revoke invites (admins), and accept one (sign up).

Invite codes are random and stored only as SHA-256: a copy of the database lets no one sign up.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import CursorResult, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from kinema.audit.log import AuditLog
from kinema.db.models import InviteRow, UserRow
from kinema.services.accounts._common import (
    DEFAULT_COHORT,
    EMAIL_TAKEN,
    INVITE_ID,
    check_cohort,
    normalise_email,
    sha256,
)
from kinema.services.accounts.hashing import PasswordHashing
from kinema.services.auth import new_id
from kinema.services.errors import Conflict, InvalidRequest, NotFound


@dataclass(frozen=True)
class NewInvite:
    """An invite just created: the code (shown once, never stored) and its row."""

    code: str
    row: InviteRow


class Invites:
    """Single-use invites bound to an email and a cohort."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        audit: AuditLog,
        *,
        hashing: PasswordHashing,
        ttl_seconds: float = 7 * 86400,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._sessions = sessions
        self._audit = audit
        self._hashing = hashing
        self._ttl = ttl_seconds
        self._clock = clock

    def create_invite(
        self, actor: str | None, email: str, *, cohort: str = DEFAULT_COHORT, ttl_seconds: float | None = None
    ) -> NewInvite:
        """A single-use invite for ``email`` into ``cohort``; the code is returned once."""
        email = normalise_email(email)
        check_cohort(cohort)
        ttl = self._ttl if ttl_seconds is None else ttl_seconds
        if not 60 <= ttl <= 90 * 86400:
            raise InvalidRequest("Invalid value for 'expires_in': between 60 seconds and 90 days.", param="expires_in")
        code = f"inv_{secrets.token_urlsafe(24)}"
        now = self._clock()
        row = InviteRow(
            id=new_id("inv"),
            code_hash=sha256(code),
            email=email,
            cohort=cohort,
            created_by=actor,
            created_at=now,
            expires_at=now + ttl,
        )
        with self._sessions.begin() as s:
            s.add(row)
            self._audit.append_in(s, "invite.create", actor=actor, target=row.id, details={"cohort": cohort})
        return NewInvite(code, row)

    def list_invites(self, *, cohort: str | None = None) -> list[InviteRow]:
        """All invites, oldest first, optionally of one cohort."""
        stmt = select(InviteRow).order_by(InviteRow.created_at, InviteRow.id)
        if cohort is not None:
            stmt = stmt.where(InviteRow.cohort == cohort)
        with self._sessions() as s:
            return list(s.scalars(stmt))

    def revoke_invite(self, actor: str | None, invite_id: str) -> InviteRow:
        """Revoke an unused invite (idempotent)."""
        if not INVITE_ID.match(invite_id):
            raise NotFound("invite", invite_id[:80])
        now = self._clock()
        with self._sessions.begin() as s:
            row = s.get(InviteRow, invite_id)
            if row is None:
                raise NotFound("invite", invite_id)
            if row.revoked_at is None and row.used_at is None:
                row.revoked_at = now
                self._audit.append_in(s, "invite.revoke", actor=actor, target=invite_id)
            s.flush()
            s.expunge(row)
        return row

    def accept_invite(self, code: str, email: str, password: str) -> UserRow:
        """Sign up with an invite: right email, unused, unrevoked, unexpired. Single use, also under races."""
        address = normalise_email(email)
        self._hashing.check(password)
        now = self._clock()
        refused = InvalidRequest(
            "This invite code is not valid for this email (unknown, used, revoked or expired).",
            param="invite_code",
            code="invalid_invite",
        )
        with self._sessions.begin() as s:
            invite = s.scalar(select(InviteRow).where(InviteRow.code_hash == sha256(code.strip())))
            if invite is None or invite.email != address:
                raise refused
            user_id = new_id("user")
            # Compare-and-set: of two sign-ups racing on one code, exactly one changes the row.
            claimed = cast(
                CursorResult[Any],
                s.execute(
                    update(InviteRow)
                    .where(
                        InviteRow.id == invite.id,
                        InviteRow.used_at.is_(None),
                        InviteRow.revoked_at.is_(None),
                        InviteRow.expires_at > now,
                    )
                    .values(used_at=now, used_by=user_id)
                ),
            ).rowcount
            if claimed != 1:
                raise refused
            if s.scalar(select(func.count()).where(UserRow.email == address)):
                raise Conflict(EMAIL_TAKEN, param="email", code="email_taken")
            user = UserRow(
                id=user_id,
                email=address,
                password_hash=self._hashing.hash(password),
                role="member",
                cohort=invite.cohort,
                limits={},
                created_at=now,
                password_changed_at=now,
            )
            s.add(user)
            self._audit.append_in(
                s, "invite.accept", actor=user_id, target=invite.id, details={"cohort": invite.cohort}
            )
            try:
                s.flush()
            except IntegrityError:  # the same email signed up through another invite at the same moment
                raise Conflict(EMAIL_TAKEN, param="email", code="email_taken") from None
        return user
