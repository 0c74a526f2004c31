"""Wire models for accounts: sign-up, sessions, the caller's profile, API keys and alerts.

Request models forbid unknown fields; fields such as ``role``, ``owner`` or ``limits`` are refused
with ``forbidden_parameter`` (see :data:`kinema.api.errors.PRIVILEGED_FIELDS`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from kinema.api.strict import Strict
from kinema.db.models import AlertRow, ApiKeyRow, UserRow


class SignupBody(Strict):
    invite_code: str = Field(max_length=256)
    email: str = Field(max_length=320)
    password: str = Field(max_length=1024)


class LoginBody(Strict):
    email: str = Field(max_length=320)
    password: str = Field(max_length=1024)


class DeleteAccountBody(Strict):
    password: str = Field(max_length=1024, description="Your password, to confirm.")
    confirm: Literal["delete my account"] = Field(description='Type "delete my account".')


class PasswordBody(Strict):
    current_password: str = Field(max_length=1024)
    new_password: str = Field(max_length=1024)


class User(BaseModel):
    id: str
    object: Literal["user"] = "user"
    email: str
    role: str
    cohort: str
    created_at: int
    disabled: bool = False
    limits: dict[str, Any] = Field(default_factory=dict, description="Per-user overrides of the cohort's limits.")

    @classmethod
    def from_row(cls, row: UserRow) -> User:
        return cls(
            id=row.id,
            email=row.email,
            role=row.role,
            cohort=row.cohort,
            created_at=int(row.created_at),
            disabled=row.disabled_at is not None,
            limits=dict(row.limits or {}),
        )


class Session(BaseModel):
    object: Literal["session"] = "session"
    user: User
    csrf_token: str = Field(description="Echo in the X-CSRF-Token header of every state-changing request.")


class Me(BaseModel):
    object: Literal["me"] = "me"
    user: User
    via: str = Field(description="How this request authenticated: key or session.")
    key_id: str | None = None
    scopes: list[str]
    usage: dict[str, Any]
    csrf_token: str | None = None


class KeyCreateBody(Strict):
    name: str = Field(min_length=1, max_length=128)
    scopes: list[str] | None = Field(
        None, max_length=16, description="Default: videos:read, videos:write, characters:read, characters:write."
    )
    expires_in: int | None = Field(None, description="Seconds until the key stops working (default: never).")
    ip_allowlist: list[str] | None = Field(
        None, max_length=64, description="Addresses or CIDR networks the key may be used from (default: any)."
    )


class ApiKey(BaseModel):
    id: str
    object: Literal["api_key"] = "api_key"
    owner_id: str
    name: str
    hint: str = Field(description="The key's first characters, to recognise it.")
    scopes: list[str]
    status: Literal["active", "revoked", "suspended", "expired"]
    ip_allowlist: list[str]
    limits: dict[str, Any]
    created_at: int
    expires_at: int | None
    last_used_at: int | None
    last_used_ip: str | None
    revoked_at: int | None
    suspended_at: int | None
    suspend_reason: str | None

    @classmethod
    def from_row(cls, row: ApiKeyRow, now: float) -> ApiKey:
        status: Literal["active", "revoked", "suspended", "expired"] = "active"
        if row.revoked_at is not None:
            status = "revoked"
        elif row.suspended_at is not None:
            status = "suspended"
        elif row.expires_at is not None and row.expires_at <= now:
            status = "expired"
        return cls(
            id=row.id,
            owner_id=row.owner_id,
            name=row.name,
            hint=row.hint,
            scopes=list(row.scopes),
            status=status,
            ip_allowlist=list(row.ip_allowlist or []),
            limits=dict(row.limits or {}),
            created_at=int(row.created_at),
            expires_at=_int(row.expires_at),
            last_used_at=_int(row.last_used_at),
            last_used_ip=row.last_used_ip,
            revoked_at=_int(row.revoked_at),
            suspended_at=_int(row.suspended_at),
            suspend_reason=row.suspend_reason,
        )


class ApiKeyCreated(ApiKey):
    key: str = Field(description="The secret key. Shown only now: store it safely.")


class ApiKeyList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ApiKey]


class Alert(BaseModel):
    id: str
    object: Literal["alert"] = "alert"
    user_id: str
    kind: str
    subject: str | None
    message: str
    created_at: int
    read_at: int | None

    @classmethod
    def from_row(cls, row: AlertRow) -> Alert:
        return cls(
            id=row.id,
            user_id=row.user_id,
            kind=row.kind,
            subject=row.subject,
            message=row.message,
            created_at=int(row.created_at),
            read_at=_int(row.read_at),
        )


class AlertList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Alert]


def _int(value: float | None) -> int | None:
    return int(value) if value is not None else None
