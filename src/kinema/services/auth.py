"""Who is calling: the principal, its scopes and limits, and the API key format.

A principal is a user acting through one credential: an API key (``key_id`` set, scopes as the key
grants) or a browser session (every scope the user's role allows). Everything a principal creates
records the user id as its owner.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import zlib
from dataclasses import dataclass, field
from typing import Literal

Role = Literal["admin", "member"]
ROLES: tuple[Role, ...] = ("admin", "member")

SCOPES: dict[str, str] = {
    "videos:read": "list, retrieve and download your videos; verify files",
    "videos:write": "create, remix, edit, extend, cancel and delete your videos",
    "characters:read": "list and retrieve likenesses you may use",
    "characters:write": "enrol, change and delete your likeness",
    "webhooks:read": "list and retrieve your webhook endpoints and their delivery logs",
    "webhooks:write": "create, change, test, rotate the secret of and delete your webhook endpoints",
    "keys:read": "list your API keys and alerts",
    "keys:write": "create and revoke your API keys",
    "admin": "administer users, invites, keys, cohorts and the pause switch (admins only)",
}
MEMBER_SCOPES = frozenset(s for s in SCOPES if s != "admin")
DEFAULT_KEY_SCOPES = frozenset(
    {"videos:read", "videos:write", "characters:read", "characters:write", "webhooks:read", "webhooks:write"}
)


def role_scopes(role: str) -> frozenset[str]:
    """Every scope a user with ``role`` may hold."""
    return frozenset(SCOPES) if role == "admin" else MEMBER_SCOPES


@dataclass(frozen=True)
class Limits:
    """Quotas; ``None`` means no limit at this level."""

    requests_per_minute: int | None = None
    concurrent_jobs: int | None = None
    video_seconds_per_day: float | None = None

    FIELDS = ("requests_per_minute", "concurrent_jobs", "video_seconds_per_day")

    def over(self, base: Limits) -> Limits:
        """These limits where set, ``base``'s elsewhere."""
        return Limits(*(getattr(self, f) if getattr(self, f) is not None else getattr(base, f) for f in self.FIELDS))

    @classmethod
    def from_dict(cls, data: dict[str, object] | None) -> Limits:
        data = data or {}
        rpm, jobs, secs = (data.get(f) for f in cls.FIELDS)
        return cls(
            int(rpm) if rpm is not None else None,  # type: ignore[call-overload]
            int(jobs) if jobs is not None else None,  # type: ignore[call-overload]
            float(secs) if secs is not None else None,  # type: ignore[arg-type]
        )

    def to_dict(self) -> dict[str, int | float]:
        return {f: v for f in self.FIELDS if (v := getattr(self, f)) is not None}


@dataclass(frozen=True)
class Principal:
    """Who is calling. Every object a principal creates records ``id`` (the user id) as its owner."""

    id: str
    role: str = "member"
    cohort: str = "default"
    scopes: frozenset[str] = MEMBER_SCOPES
    key_id: str | None = None
    via: Literal["key", "session", "local"] = "key"
    limits: Limits = field(default_factory=Limits)  # the user's effective limits
    key_limits: Limits = field(default_factory=Limits)  # the key's own, if any

    @property
    def is_admin(self) -> bool:
        """An admin acting with the ``admin`` scope (an admin's narrower key is not admin)."""
        return self.role == "admin" and "admin" in self.scopes


@dataclass(frozen=True)
class ClientInfo:
    """Where a request came from: the client address (after trusted proxies) and its user agent."""

    ip: str
    user_agent: str = ""


# -- API key format ------------------------------------------------------------------------------

KEY_PREFIX = "kin_"
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_RANDOM_LEN = 32  # 62**32 ~ 2**190
_CHECK_LEN = 6  # base62 of a CRC32 (62**6 > 2**32)
KEY_PATTERN = re.compile(rf"^{KEY_PREFIX}[0-9A-Za-z]{{{_RANDOM_LEN + _CHECK_LEN}}}$")


def _base62(value: int, width: int) -> str:
    out = []
    for _ in range(width):
        value, r = divmod(value, 62)
        out.append(_ALPHABET[r])
    return "".join(reversed(out))


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode()), _CHECK_LEN)


def new_api_key() -> str:
    """``kin_`` + 32 random base62 characters + a 6-character CRC32 checksum of them.

    The fixed prefix and checksum let secret scanners recognise a leaked key with few false
    positives, and let the service refuse a mistyped key without touching the database.
    """
    body = "".join(secrets.choice(_ALPHABET) for _ in range(_RANDOM_LEN))
    return f"{KEY_PREFIX}{body}{_checksum(body)}"


def key_well_formed(token: str) -> bool:
    """Prefix, length, alphabet and checksum are right (says nothing about whether the key exists)."""
    if not KEY_PATTERN.match(token):
        return False
    body = token[len(KEY_PREFIX) : len(KEY_PREFIX) + _RANDOM_LEN]
    return secrets.compare_digest(token[-_CHECK_LEN:], _checksum(body))


def key_hash(token: str) -> str:
    """What is stored for a key: its SHA-256 (the key is 190 random bits, so no slow hash is needed)."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_id(prefix: str) -> str:
    """An opaque id such as ``user_`` + 24 hex digits."""
    return f"{prefix}_{secrets.token_hex(12)}"
