"""The base of every request body: unknown fields refused, no NUL characters.

Refusing unknown fields turns a typo into an error naming the field (and ``owner``, ``role``, ``limits``...
into ``forbidden_parameter``, see :data:`kinema.api.errors.PRIVILEGED_FIELDS`) instead of a silently
ignored option.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, field_validator


class Strict(BaseModel):
    """A request body: unknown fields refused, no NUL characters (PostgreSQL text cannot hold them)."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: object) -> object:
        if isinstance(value, str) and "\x00" in value:
            raise ValueError("must not contain NUL characters")
        return value
