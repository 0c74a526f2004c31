"""Accounts: users and passwords, invite-only sign-up, cohorts, roles, browser sessions, alerts.

Passwords are hashed with argon2id (argon2-cffi) at or above the configured cost and re-hashed at
login when the cost changed. Invite codes and session ids are random and stored only as SHA-256:
a copy of the database lets no one sign up or take over a session.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import CursorResult, and_, delete, func, or_, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from kinema.audit.log import AuditLog
from kinema.db.models import AlertRow, ApiKeyRow, CohortRow, InviteRow, UserRow, WebSessionRow
from kinema.services.auth import ROLES, Limits, Principal, new_id, role_scopes
from kinema.services.errors import Conflict, InvalidRequest, NotFound, Unauthorized

EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}$")
COHORT = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
USER_ID = re.compile(r"^user_[0-9a-f]{24}$")
INVITE_ID = re.compile(r"^inv_[0-9a-f]{24}$")
ALERT_ID = re.compile(r"^alert_[0-9a-f]{24}$")
DEFAULT_COHORT = "default"


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def csrf_token_for(cookie: str) -> str:
    """The session's CSRF token: an HMAC of the session id, so the server can give it again (GET /v1/me)
    while the database keeps only its SHA-256, like the session id's; neither can be read back from a copy."""
    mac = hmac.new(cookie.encode(), b"kinema-csrf-v1", hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def normalise_email(email: str) -> str:
    """Lower-cased and stripped; :class:`InvalidRequest` naming ``email`` when it is not an address."""
    value = email.strip().lower()
    if not EMAIL.match(value):
        raise InvalidRequest("Invalid value for 'email': not an email address.", param="email", code="invalid_value")
    return value


def check_cohort(name: str, param: str = "cohort") -> str:
    """A cohort name: lower-case letters, digits, '.', '_' and '-', at most 64 characters."""
    if not COHORT.match(name):
        raise InvalidRequest(
            f"Invalid value for '{param}': use lower-case letters, digits, '.', '_' or '-' (at most 64).",
            param=param,
            code="invalid_value",
        )
    return name


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
class PasswordPolicy:
    """argon2id cost and the shortest accepted password."""

    min_length: int = 12
    memory_kib: int = 65536
    time_cost: int = 3
    parallelism: int = 4


@dataclass(frozen=True)
class DefaultLimits:
    """Limits for users whose cohort and account set none."""

    requests_per_minute: int
    concurrent_jobs: int
    video_seconds_per_day: float

    def as_limits(self) -> Limits:
        return Limits(self.requests_per_minute, self.concurrent_jobs, self.video_seconds_per_day)


@dataclass(frozen=True)
class NewSession:
    """A session just created: the cookie value (shown once, never stored) and its CSRF token."""

    cookie: str
    csrf_token: str
    user: UserRow


@dataclass(frozen=True)
class NewInvite:
    """An invite just created: the code (shown once, never stored) and its row."""

    code: str
    row: InviteRow


class AccountService:
    """Users, invites, cohorts, sessions and alerts."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        audit: AuditLog,
        *,
        passwords: PasswordPolicy,
        defaults: DefaultLimits,
        invite_ttl_seconds: float = 7 * 86400,
        session_idle_seconds: float = 1800,
        session_absolute_seconds: float = 12 * 3600,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._sessions = sessions
        self._audit = audit
        self.policy = passwords
        self._hasher = PasswordHasher(
            time_cost=passwords.time_cost,
            memory_cost=passwords.memory_kib,
            parallelism=passwords.parallelism,
            type=Type.ID,
        )
        self.defaults = defaults
        self._invite_ttl = invite_ttl_seconds
        self.session_idle_seconds = session_idle_seconds
        self.session_absolute_seconds = session_absolute_seconds
        self._clock = clock
        # Verifying against this when the email is unknown keeps login time the same either way.
        self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(16))

    # -- passwords -------------------------------------------------------------------------------

    def _check_password(self, password: str, param: str = "password") -> None:
        if len(password) < self.policy.min_length:
            raise InvalidRequest(
                f"Invalid value for '{param}': at least {self.policy.min_length} characters.",
                param=param,
                code="password_too_short",
            )
        if len(password) > 1024:
            raise InvalidRequest(f"Invalid value for '{param}': at most 1024 characters.", param=param)

    def hash_password(self, password: str) -> str:
        """An argon2id hash with this deployment's parameters."""
        return self._hasher.hash(password)

    # -- users -----------------------------------------------------------------------------------

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
            self._check_password(password)
        now = self._clock()
        row = UserRow(
            id=new_id("user"),
            email=email,
            password_hash=self.hash_password(password) if password is not None else None,
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
            raise Conflict("An account with this email already exists.", param="email", code="email_taken") from None
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

    def set_password(self, user_id: str, password: str, *, actor: str | None = None) -> None:
        """Set a new password and end every browser session of the user."""
        self._check_password(password)
        now = self._clock()
        with self._sessions.begin() as s:
            s.execute(
                update(UserRow)
                .where(UserRow.id == user_id)
                .values(password_hash=self.hash_password(password), password_changed_at=now)
            )
            s.execute(delete(WebSessionRow).where(WebSessionRow.user_id == user_id))
            self._audit.append_in(s, "auth.password_change", actor=actor or user_id, target=user_id)

    def change_password(self, user_id: str, current: str, new: str) -> None:
        """The user's own change: the current password must be right."""
        user = self.get_user(user_id)
        if not self._verify(user, current):
            raise InvalidRequest("The current password is wrong.", param="current_password", code="wrong_password")
        self.set_password(user_id, new)

    def confirm_password(self, user_id: str, password: str) -> None:
        """For a destructive request: the user's password, again; :class:`InvalidRequest` if wrong."""
        if not self._verify(self.get_user(user_id), password):
            raise InvalidRequest("The password is wrong.", param="password", code="wrong_password")

    def _verify(self, user: UserRow | None, password: str) -> bool:
        real = user.password_hash if user is not None else None
        try:
            # Always one argon2 verification, so an unknown email costs as much time as a known one.
            return self._hasher.verify(real or self._dummy_hash, password) and real is not None
        except (VerificationError, InvalidHashError):
            return False

    def effective_limits(self, user: UserRow, cohort_limits: dict[str, Any] | None) -> Limits:
        """The user's overrides, else the cohort's, else the deployment defaults."""
        return Limits.from_dict(user.limits).over(Limits.from_dict(cohort_limits).over(self.defaults.as_limits()))

    def limits_for(self, s: Session, user: UserRow) -> Limits:
        """:meth:`effective_limits` reading the cohort row in session ``s``."""
        cohort = s.get(CohortRow, user.cohort)
        return self.effective_limits(user, cohort.limits if cohort else None)

    # -- sessions --------------------------------------------------------------------------------

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
        ok = self._verify(user, password)
        if user is None or not ok or user.disabled_at is not None:
            self._audit.append(
                "auth.login_failed",
                actor=user.id if user else None,
                details={"reason": "disabled" if ok and user else "bad_credentials"},
            )
            raise Unauthorized("Wrong email or password.", code="invalid_credentials")
        assert user.password_hash is not None
        if self._hasher.check_needs_rehash(user.password_hash):
            with self._sessions.begin() as s:
                s.execute(
                    update(UserRow).where(UserRow.id == user.id).values(password_hash=self.hash_password(password))
                )
        cookie = secrets.token_urlsafe(32)
        csrf = csrf_token_for(cookie)
        now = self._clock()
        with self._sessions.begin() as s:
            if replaces:
                s.execute(delete(WebSessionRow).where(WebSessionRow.id_hash == _sha256(replaces)))
            s.add(
                WebSessionRow(
                    id_hash=_sha256(cookie), user_id=user.id, csrf_token=_sha256(csrf), created_at=now, last_seen_at=now
                )
            )
            self._audit.append_in(s, "auth.login", actor=user.id, target=user.id, details={"via": "password"})
        return NewSession(cookie, csrf, user)

    def logout(self, cookie: str) -> None:
        """End the session behind ``cookie`` (no error if it is already gone)."""
        with self._sessions.begin() as s:
            row = s.get(WebSessionRow, _sha256(cookie))
            if row is not None:
                s.delete(row)
                self._audit.append_in(s, "auth.logout", actor=row.user_id, target=row.user_id)

    def session_user(self, cookie: str) -> tuple[UserRow, WebSessionRow, Limits]:
        """The user of a live session, touching its idle timer; :class:`Unauthorized` when it is over
        (an ended session's row is deleted, in its own committed transaction, before refusing)."""
        now = self._clock()
        refused: Unauthorized | None = None
        with self._sessions.begin() as s:
            row = s.get(WebSessionRow, _sha256(cookie))
            if row is None:
                raise Unauthorized("Not signed in, or the session ended.", code="session_invalid")
            user = s.get(UserRow, row.user_id)
            idle = now - row.last_seen_at > self.session_idle_seconds
            if idle or now - row.created_at > self.session_absolute_seconds:
                refused = Unauthorized("The session timed out; sign in again.", code="session_expired")
            elif user is None or user.disabled_at is not None:
                refused = Unauthorized("The account is disabled.", code="account_disabled")
            if refused is not None:
                s.delete(row)
            else:
                assert user is not None
                # Touch at most every few seconds (fewer writes), always well inside the idle timeout.
                if now - row.last_seen_at > min(5.0, self.session_idle_seconds / 4):
                    row.last_seen_at = now
                limits = self.limits_for(s, user)
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
        if not hmac.compare_digest(_sha256(csrf).encode(), row.csrf_token.encode()):
            with self._sessions.begin() as s:
                s.execute(delete(WebSessionRow).where(WebSessionRow.id_hash == _sha256(cookie)))
            raise Unauthorized("The session ended; sign in again.", code="session_invalid")
        principal = Principal(
            id=user.id, role=user.role, cohort=user.cohort, scopes=role_scopes(user.role), via="session", limits=limits
        )
        return principal, csrf

    # -- invites ---------------------------------------------------------------------------------

    def create_invite(
        self, actor: str | None, email: str, *, cohort: str = DEFAULT_COHORT, ttl_seconds: float | None = None
    ) -> NewInvite:
        """A single-use invite for ``email`` into ``cohort``; the code is returned once."""
        email = normalise_email(email)
        check_cohort(cohort)
        ttl = self._invite_ttl if ttl_seconds is None else ttl_seconds
        if not 60 <= ttl <= 90 * 86400:
            raise InvalidRequest("Invalid value for 'expires_in': between 60 seconds and 90 days.", param="expires_in")
        code = f"inv_{secrets.token_urlsafe(24)}"
        now = self._clock()
        row = InviteRow(
            id=new_id("inv"),
            code_hash=_sha256(code),
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
        self._check_password(password)
        now = self._clock()
        refused = InvalidRequest(
            "This invite code is not valid for this email (unknown, used, revoked or expired).",
            param="invite_code",
            code="invalid_invite",
        )
        with self._sessions.begin() as s:
            invite = s.scalar(select(InviteRow).where(InviteRow.code_hash == _sha256(code.strip())))
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
                raise Conflict("An account with this email already exists.", param="email", code="email_taken")
            user = UserRow(
                id=user_id,
                email=address,
                password_hash=self.hash_password(password),
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
                raise Conflict(
                    "An account with this email already exists.", param="email", code="email_taken"
                ) from None
        return user

    # -- cohorts ---------------------------------------------------------------------------------

    def set_cohort_limits(self, actor: str | None, name: str, limits: dict[str, Any]) -> CohortRow:
        """Create or change a cohort's default limits."""
        check_cohort(name, "name")
        clean = Limits.from_dict(limits).to_dict()
        with self._sessions.begin() as s:
            row = s.get(CohortRow, name)
            if row is None:
                row = CohortRow(name=name, limits=clean, created_at=self._clock())
                s.add(row)
            else:
                row.limits = clean
            self._audit.append_in(
                s, "admin.action", actor=actor, target=f"cohort:{name}", details={"op": "cohort.limits", **clean}
            )
            s.flush()
            s.expunge(row)
        return row

    def list_cohorts(self) -> list[dict[str, Any]]:
        """Every cohort that has a row, users or invites, with its limits and member count."""
        with self._sessions() as s:
            rows = {r.name: r for r in s.scalars(select(CohortRow))}
            counts = dict(s.execute(select(UserRow.cohort, func.count()).group_by(UserRow.cohort)).tuples().all())
            invited = set(s.scalars(select(InviteRow.cohort).distinct()))
        names = sorted(set(rows) | set(counts) | invited | {DEFAULT_COHORT})
        defaults = self.defaults.as_limits()
        return [
            {
                "name": n,
                "users": int(counts.get(n, 0)),
                "limits": Limits.from_dict(rows[n].limits if n in rows else None).over(defaults).to_dict(),
            }
            for n in names
        ]

    def revoke_cohort(self, actor: str | None, name: str) -> dict[str, int]:
        """Revoke every API key of the cohort's users and every unused invite of the cohort, at once.

        Refused (409) for an admin's own cohort, which would revoke the keys they are using, and when it
        would leave no administrator able to sign in."""
        check_cohort(name, "name")
        if actor is not None and USER_ID.match(actor) and self.get_user(actor).cohort == name:
            raise Conflict(
                f"You are in cohort '{name}': revoking it would revoke your own keys and could lock you out. "
                "Move yourself to another cohort first, or revoke other keys one at a time.",
                param="name",
                code="own_cohort",
            )
        now = self._clock()
        with self._sessions.begin() as s:
            had_admin = serialize_admin_changes(s, now)
            members = select(UserRow.id).where(UserRow.cohort == name).scalar_subquery()
            keys = cast(
                CursorResult[Any],
                s.execute(
                    update(ApiKeyRow)
                    .where(ApiKeyRow.owner_id.in_(members), ApiKeyRow.revoked_at.is_(None))
                    .values(revoked_at=now)
                ),
            ).rowcount
            ensure_admin_remains(s, now, had_admin=had_admin)
            invites = cast(
                CursorResult[Any],
                s.execute(
                    update(InviteRow)
                    .where(InviteRow.cohort == name, InviteRow.used_at.is_(None), InviteRow.revoked_at.is_(None))
                    .values(revoked_at=now)
                ),
            ).rowcount
            self._audit.append_in(
                s,
                "admin.action",
                actor=actor,
                target=f"cohort:{name}",
                details={"op": "cohort.revoke", "key_count": keys, "invite_count": invites},
            )
        return {"keys_revoked": keys, "invites_revoked": invites}

    # -- alerts ----------------------------------------------------------------------------------

    def alerts(self, user_id: str | None, *, unread_only: bool = False) -> list[AlertRow]:
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
