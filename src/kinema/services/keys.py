"""Per-user API keys: create (shown once), list, revoke, reinstate, and authenticate.

A key is checked in this order, each failure with its own code: format and checksum (no database
lookup), existence, revoked, suspended, expired, the owner's account, then the client address
against the key's allowlist. Scopes are checked per route (see ``kinema.api.deps``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from kinema.audit.log import AuditLog
from kinema.db.models import ApiKeyRow, UserRow
from kinema.netaddr import ip_allowed, parse_networks
from kinema.services.accounts import Users, ensure_admin_remains, serialize_admin_changes
from kinema.services.auth import (
    DEFAULT_KEY_SCOPES,
    SCOPES,
    ClientInfo,
    Limits,
    Principal,
    key_hash,
    key_well_formed,
    new_api_key,
    new_id,
    role_scopes,
)
from kinema.services.errors import Forbidden, InvalidRequest, NotFound, Unauthorized

KEY_ID = re.compile(r"^key_[0-9a-f]{24}$")
MAX_KEYS_PER_USER = 100


@dataclass(frozen=True)
class NewKey:
    """A key just created: the secret (returned once, never stored) and its row."""

    secret: str
    row: ApiKeyRow


class KeyService:
    """API keys of users."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        audit: AuditLog,
        users: Users,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._sessions = sessions
        self._audit = audit
        self._users = users
        self._clock = clock

    # -- manage ----------------------------------------------------------------------------------

    def create(
        self,
        user_id: str,
        name: str,
        *,
        scopes: list[str] | None = None,
        expires_in: float | None = None,
        ip_allowlist: list[str] | None = None,
        limits: dict[str, Any] | None = None,
        granted_by: Principal | None = None,
    ) -> NewKey:
        """A new key for ``user_id``. Scopes must be ones the user's role allows and, when created with
        another key (``granted_by``), ones that key holds: a key can never mint a stronger one."""
        user = self._users.get_user(user_id)
        name = name.strip()
        if not 1 <= len(name) <= 128:
            raise InvalidRequest("Invalid value for 'name': 1 to 128 characters.", param="name")
        wanted = sorted(set(scopes)) if scopes is not None else sorted(DEFAULT_KEY_SCOPES)
        if not wanted:
            raise InvalidRequest("Invalid value for 'scopes': at least one scope.", param="scopes")
        unknown = [s for s in wanted if s not in SCOPES]
        if unknown:
            raise InvalidRequest(
                f"Invalid value for 'scopes': unknown {', '.join(unknown)}; known: {', '.join(SCOPES)}.",
                param="scopes",
                code="invalid_value",
            )
        allowed = role_scopes(user.role)
        if granted_by is not None and granted_by.via == "key":
            allowed &= granted_by.scopes
        beyond = [s for s in wanted if s not in allowed]
        if beyond:
            raise Forbidden(
                f"You may not grant {', '.join(beyond)} to a key.", param="scopes", code="insufficient_scope"
            )
        allowlist = [e.strip() for e in (ip_allowlist or [])]
        try:
            networks = parse_networks(allowlist)
        except ValueError as exc:
            raise InvalidRequest(f"Invalid value for 'ip_allowlist': {exc}.", param="ip_allowlist") from None
        if expires_in is not None and not 60 <= expires_in <= 3 * 365 * 86400:
            raise InvalidRequest("Invalid value for 'expires_in': between 60 seconds and 3 years.", param="expires_in")
        now = self._clock()
        expires_at = now + expires_in if expires_in is not None else None
        key_limits = Limits.from_dict(limits)
        if granted_by is not None and granted_by.key_id is not None:
            # A key mints no key freer than itself: not longer-lived, not from more places, not less limited.
            parent = self.get(user_id, granted_by.key_id)
            if parent.expires_at is not None:
                expires_at = min(expires_at or parent.expires_at, parent.expires_at)
            if parent.ip_allowlist:
                outer = parse_networks(parent.ip_allowlist)
                if not allowlist:
                    allowlist = list(parent.ip_allowlist)
                elif not all(any(n.version == o.version and n.subnet_of(o) for o in outer) for n in networks):  # type: ignore[arg-type]
                    raise Forbidden(
                        "A key can only create keys whose IP allowlist lies inside its own.",
                        param="ip_allowlist",
                        code="insufficient_scope",
                    )
            key_limits = key_limits.over(Limits.from_dict(parent.limits))
        secret = new_api_key()
        row = ApiKeyRow(
            id=new_id("key"),
            owner_id=user_id,
            name=name,
            key_hash=key_hash(secret),
            hint=secret[:8],
            scopes=wanted,
            ip_allowlist=allowlist,
            limits=key_limits.to_dict(),
            created_at=now,
            expires_at=expires_at,
        )
        with self._sessions.begin() as s:
            live = s.scalars(select(ApiKeyRow.id).where(ApiKeyRow.owner_id == user_id, ApiKeyRow.revoked_at.is_(None)))
            if len(list(live)) >= MAX_KEYS_PER_USER:
                raise InvalidRequest(f"At most {MAX_KEYS_PER_USER} active keys per user; revoke some first.")
            s.add(row)
            self._audit.append_in(
                s,
                "key.create",
                actor=granted_by.id if granted_by else user_id,
                target=row.id,
                details={"owner": user_id, "scopes": wanted, "expires_at": row.expires_at},
            )
        return NewKey(secret, row)

    def list(self, user_id: str | None) -> list[ApiKeyRow]:
        """The user's keys (``None``: every key, for admins), newest first."""
        stmt = select(ApiKeyRow).order_by(ApiKeyRow.created_at.desc(), ApiKeyRow.id.desc())
        if user_id is not None:
            stmt = stmt.where(ApiKeyRow.owner_id == user_id)
        with self._sessions() as s:
            return list(s.scalars(stmt))

    def get(self, user_id: str | None, key_id: str) -> ApiKeyRow:
        """One of the user's keys (``None``: any user's); another user's key is :class:`NotFound`."""
        if not KEY_ID.match(key_id):
            raise NotFound("API key", key_id[:80])
        with self._sessions() as s:
            row = s.get(ApiKeyRow, key_id)
        if row is None or (user_id is not None and row.owner_id != user_id):
            raise NotFound("API key", key_id)
        return row

    def revoke(self, actor: str, user_id: str | None, key_id: str) -> ApiKeyRow:
        """Revoke a key for good (idempotent)."""
        self.get(user_id, key_id)
        with self._sessions.begin() as s:
            had_admin = serialize_admin_changes(s, self._clock())
            done = s.execute(
                update(ApiKeyRow)
                .where(ApiKeyRow.id == key_id, ApiKeyRow.revoked_at.is_(None))
                .values(revoked_at=self._clock())
                .returning(ApiKeyRow.owner_id)
            ).first()
            if done is not None:
                ensure_admin_remains(s, self._clock(), had_admin=had_admin)  # the last admin's last way in stays
                self._audit.append_in(s, "key.revoke", actor=actor, target=key_id, details={"owner": done.owner_id})
        return self.get(user_id, key_id)

    def set_limits(self, actor: str, key_id: str, limits: dict[str, Any]) -> ApiKeyRow:
        """Set a key's own limits, applied on top of its owner's (admins)."""
        self.get(None, key_id)
        clean = Limits.from_dict(limits).to_dict()
        with self._sessions.begin() as s:
            s.execute(update(ApiKeyRow).where(ApiKeyRow.id == key_id).values(limits=clean))
            self._audit.append_in(s, "admin.action", actor=actor, target=key_id, details={"op": "key.limits", **clean})
        return self.get(None, key_id)

    def reinstate(self, actor: str, key_id: str) -> ApiKeyRow:
        """Lift an automatic suspension (admins, after checking with the owner)."""
        self.get(None, key_id)
        with self._sessions.begin() as s:
            s.execute(update(ApiKeyRow).where(ApiKeyRow.id == key_id).values(suspended_at=None, suspend_reason=None))
            self._audit.append_in(s, "admin.action", actor=actor, target=key_id, details={"op": "key.reinstate"})
        return self.get(None, key_id)

    # -- authenticate ----------------------------------------------------------------------------

    def authenticate(self, token: str, client: ClientInfo) -> Principal:
        """The principal behind ``token``, or :class:`Unauthorized` / :class:`Forbidden` saying why not."""
        if not key_well_formed(token):
            raise Unauthorized(
                "Incorrect API key provided: Kinema keys look like kin_ followed by 38 letters and digits, "
                "and this one is malformed or its checksum is wrong.",
                code="invalid_api_key",
            )
        now = self._clock()
        with self._sessions() as s:
            key = s.scalar(select(ApiKeyRow).where(ApiKeyRow.key_hash == key_hash(token)))
            if key is None:
                raise Unauthorized("Incorrect API key provided.", code="invalid_api_key")
            if key.revoked_at is not None:
                raise Unauthorized("This API key was revoked.", code="api_key_revoked")
            if key.suspended_at is not None:
                raise Unauthorized(
                    f"This API key is suspended: {key.suspend_reason or 'by an administrator'}.",
                    code="api_key_suspended",
                )
            if key.expires_at is not None and key.expires_at <= now:
                raise Unauthorized("This API key has expired.", code="api_key_expired")
            user = s.get(UserRow, key.owner_id)
            if user is None or user.disabled_at is not None:
                raise Unauthorized("The account this API key belongs to is disabled.", code="account_disabled")
            if not ip_allowed(client.ip, key.ip_allowlist):
                raise Forbidden(
                    "This API key may not be used from your address (see the key's IP allowlist).",
                    code="ip_not_allowed",
                )
            limits = self._users.limits_for(s, user)
        if key.last_used_at is None or now - key.last_used_at > 10 or key.last_used_ip != client.ip:
            with self._sessions.begin() as s:
                s.execute(
                    update(ApiKeyRow).where(ApiKeyRow.id == key.id).values(last_used_at=now, last_used_ip=client.ip)
                )
        return Principal(
            id=user.id,
            role=user.role,
            cohort=user.cohort,
            scopes=frozenset(key.scopes) & role_scopes(user.role),
            key_id=key.id,
            via="key",
            limits=limits,
            key_limits=Limits.from_dict(key.limits),
        )
