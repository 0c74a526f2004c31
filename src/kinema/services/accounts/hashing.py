"""The password policy applied: argon2id (argon2-cffi) hashing and verifying, and the length rules.

No database: :class:`~kinema.services.accounts.users.Users`, ``Invites``, ``WebSessions`` and
``Passwords`` share one instance. Passwords are hashed at or above the configured cost and re-hashed
at login when the cost changed.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

from kinema.services.errors import InvalidRequest


@dataclass(frozen=True)
class PasswordPolicy:
    """argon2id cost and the shortest accepted password."""

    min_length: int = 12
    memory_kib: int = 65536
    time_cost: int = 3
    parallelism: int = 4


class PasswordHashing:
    """A :class:`PasswordPolicy` applied: checks a new password's length, hashes and verifies (no database)."""

    def __init__(self, policy: PasswordPolicy) -> None:
        self.policy = policy
        self._hasher = PasswordHasher(
            time_cost=policy.time_cost,
            memory_cost=policy.memory_kib,
            parallelism=policy.parallelism,
            type=Type.ID,
        )
        # Verifying against this when the email is unknown keeps login time the same either way.
        self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(16))

    def check(self, password: str, param: str = "password") -> None:
        """:class:`InvalidRequest` naming ``param`` when the password is too short or too long."""
        if len(password) < self.policy.min_length:
            raise InvalidRequest(
                f"Invalid value for '{param}': at least {self.policy.min_length} characters.",
                param=param,
                code="password_too_short",
            )
        if len(password) > 1024:
            raise InvalidRequest(f"Invalid value for '{param}': at most 1024 characters.", param=param)

    def hash(self, password: str) -> str:
        """An argon2id hash with this deployment's parameters."""
        return self._hasher.hash(password)

    def verify(self, stored: str | None, password: str) -> bool:
        """Whether ``password`` matches the ``stored`` hash (``None``: no user, or no password: never).

        Always one argon2 verification, so an unknown email costs as much time as a known one."""
        try:
            return self._hasher.verify(stored or self._dummy_hash, password) and stored is not None
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored: str) -> bool:
        """Whether ``stored`` was hashed with other parameters than this policy's."""
        return self._hasher.check_needs_rehash(stored)
