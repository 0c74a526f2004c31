"""Who is calling: a principal, and the authenticator interface that produces one from a token."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Principal:
    """Who is calling. Every object a principal creates records ``id`` as its owner."""

    id: str


class Authenticator(Protocol):
    """Turns a bearer token into a principal, or None when the token is not valid."""

    def authenticate(self, token: str) -> Principal | None: ...


class StaticTokenAuthenticator:
    """One configured token, one owner: the stand-in until per-user API keys exist."""

    def __init__(self, token: str, owner_id: str) -> None:
        self._token = token.encode()
        self._owner = owner_id

    def authenticate(self, token: str) -> Principal | None:
        """The configured owner when ``token`` matches (compared in constant time)."""
        if hmac.compare_digest(token.encode(), self._token):
            return Principal(self._owner)
        return None
