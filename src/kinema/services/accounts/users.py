"""Users: create, get, find, list and update accounts; their effective limits; the admin-lockout guards."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, or_, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from kinema.audit.log import AuditLog
from kinema.db.models import ApiKeyRow, CohortRow, UserRow, WebSessionRow
from kinema.services.accounts._common import DEFAULT_COHORT, EMAIL_TAKEN, USER_ID, check_cohort, normalise_email
from kinema.services.accounts.hashing import PasswordHashing
from kinema.services.auth import ROLES, Limits, new_id
from kinema.services.errors import Conflict, InvalidRequest, NotFound


def serialize_admin_changes(s: Session, now: float) -> bool:
    """Start a change that could remove an administrator; returns whether one can sign in before it.

    On PostgreSQL, one such transaction runs at a time, so two changes that each leave one admin cannot
    together leave none (SQLite already serializes writers)."""
    if s.get_bind().dialect.name == "postgresql":
        s.execute(text("SELECT pg_advisory_xact_lock(727275)"))
    return admin_can_sign_in(s, now)


def admin_can_sign_in(s: Session, now: float, *, leaving: str | None = None) -> bool:
    """Whether, as ``s`` sees the data (pending changes flushed), an enabled admin other than ``leaving``
    can sign in: with a password, or with a live key (not revoked, suspended or expired) holding the
    ``admin`` scope."""
    s.flush()
    admins = s.execute(
        select(UserRow.id, UserRow.password_hash).where(UserRow.role == "admin", UserRow.disabled_at.is_(None))
    ).all()
    others = [a for a in admins if a.id != leaving]
    if any(a.password_hash is not None for a in others):
        return True
    keys = s.scalars(
        select(ApiKeyRow).where(
            ApiKeyRow.owner_id.in_([a.id for a in others]),
            ApiKeyRow.revoked_at.is_(None),
            ApiKeyRow.suspended_at.is_(None),
            or_(ApiKeyRow.expires_at.is_(None), ApiKeyRow.expires_at > now),
        )
    )
    return any("admin" in (k.scopes or []) for k in keys)


def ensure_admin_remains(s: Session, now: float, *, had_admin: bool, leaving: str | None = None) -> None:
    """:class:`Conflict` ``last_admin`` when a change leaves no administrator able to sign in where there
    was one (``had_admin``): refusing keeps the deployment administrable without database surgery. A
    deployment that has no admin yet (members only) is not blocked."""
    if had_admin and not admin_can_sign_in(s, now, leaving=leaving):
        raise Conflict(
            "This would leave no administrator able to sign in (no other enabled admin with a password or a "
            "live admin key). Make another user an admin first.",
            code="last_admin",
        )


@dataclass(frozen=True)
class DefaultLimits:
    """Limits for users whose cohort and account set none."""

    requests_per_minute: int
    concurrent_jobs: int
    video_seconds_per_day: float

    def as_limits(self) -> Limits:
        return Limits(self.requests_per_minute, self.concurrent_jobs, self.video_seconds_per_day)


class Users:
    """Accounts: create (the CLI makes the first admin; invites make the rest), read, update, and their limits."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        audit: AuditLog,
        *,
        hashing: PasswordHashing,
        defaults: DefaultLimits,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._sessions = sessions
        self._audit = audit
        self._hashing = hashing
        self.defaults = defaults
        self._clock = clock

    def create_user(
        self,
        email: str,
        password: str | None,
        *,
        role: str = "member",
        cohort: str = DEFAULT_COHORT,
        actor: str | None = None,
    ) -> UserRow:
        """A new account (the CLI makes the first admin this way; invites make the rest)."""
        email = normalise_email(email)
        if role not in ROLES:
            raise InvalidRequest(f"Invalid value for 'role': one of {', '.join(ROLES)}.", param="role")
        check_cohort(cohort)
        if password is not None:
            self._hashing.check(password)
        now = self._clock()
        row = UserRow(
            id=new_id("user"),
            email=email,
            password_hash=self._hashing.hash(password) if password is not None else None,
            role=role,
            cohort=cohort,
            limits={},
            created_at=now,
            password_changed_at=now if password is not None else None,
        )
        try:
            with self._sessions.begin() as s:
                s.add(row)
                s.flush()
                self._audit.append_in(
                    s, "user.create", actor=actor, target=row.id, details={"role": role, "cohort": cohort}
                )
        except IntegrityError:
            raise Conflict(EMAIL_TAKEN, param="email", code="email_taken") from None
        return row

    def get_user(self, user_id: str) -> UserRow:
        """A user by id; :class:`NotFound` otherwise."""
        if not USER_ID.match(user_id):
            raise NotFound("user", user_id[:80])
        with self._sessions() as s:
            row = s.get(UserRow, user_id)
        if row is None:
            raise NotFound("user", user_id)
        return row

    def find_user(self, email_or_id: str) -> UserRow:
        """A user by email or id (for the CLI)."""
        with self._sessions() as s:
            row = s.scalar(
                select(UserRow).where(or_(UserRow.email == email_or_id.strip().lower(), UserRow.id == email_or_id))
            )
        if row is None:
            raise NotFound("user", email_or_id[:80])
        return row

    def list_users(self, *, cohort: str | None = None) -> list[UserRow]:
        """All users, oldest first, optionally of one cohort."""
        stmt = select(UserRow).order_by(UserRow.created_at, UserRow.id)
        if cohort is not None:
            stmt = stmt.where(UserRow.cohort == cohort)
        with self._sessions() as s:
            return list(s.scalars(stmt))

    def update_user(
        self,
        actor: str | None,
        user_id: str,
        *,
        role: str | None = None,
        cohort: str | None = None,
        limits: dict[str, Any] | None = None,
        disabled: bool | None = None,
    ) -> UserRow:
        """Change role, cohort, limit overrides or disabled state (admins); each change is audited."""
        user = self.get_user(user_id)
        values: dict[str, Any] = {}
        if role is not None:
            if role not in ROLES:
                raise InvalidRequest(f"Invalid value for 'role': one of {', '.join(ROLES)}.", param="role")
            values["role"] = role
        if cohort is not None:
            values["cohort"] = check_cohort(cohort)
        if limits is not None:
            values["limits"] = Limits.from_dict(limits).to_dict()
        if disabled is not None:
            values["disabled_at"] = self._clock() if disabled else None
        if not values:
            return user
        with self._sessions.begin() as s:
            had_admin = serialize_admin_changes(s, self._clock())
            s.execute(update(UserRow).where(UserRow.id == user_id).values(**values))
            ensure_admin_remains(s, self._clock(), had_admin=had_admin)
            if "role" in values and values["role"] != user.role:
                self._audit.append_in(
                    s, "role.change", actor=actor, target=user_id, details={"from": user.role, "to": values["role"]}
                )
            changed = sorted(k for k in values if k != "role")
            if changed:
                self._audit.append_in(
                    s, "admin.action", actor=actor, target=user_id, details={"op": "user.update", "fields": changed}
                )
            if disabled:
                s.execute(delete(WebSessionRow).where(WebSessionRow.user_id == user_id))
        return self.get_user(user_id)

    def effective_limits(self, user: UserRow, cohort_limits: dict[str, Any] | None) -> Limits:
        """The user's overrides, else the cohort's, else the deployment defaults."""
        return Limits.from_dict(user.limits).over(Limits.from_dict(cohort_limits).over(self.defaults.as_limits()))

    def limits_for(self, s: Session, user: UserRow) -> Limits:
        """:meth:`effective_limits` reading the cohort row in session ``s``."""
        cohort = s.get(CohortRow, user.cohort)
        return self.effective_limits(user, cohort.limits if cohort else None)
