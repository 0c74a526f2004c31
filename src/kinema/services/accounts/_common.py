"""What the account classes share: id and name formats, email and cohort checks, and SHA-256.

Invite codes and session ids are stored only as SHA-256: a copy of the database lets no one sign up
or take over a session.
"""

from __future__ import annotations

import hashlib
import re

from kinema.services.errors import InvalidRequest

EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}$")
COHORT = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
USER_ID = re.compile(r"^user_[0-9a-f]{24}$")
INVITE_ID = re.compile(r"^inv_[0-9a-f]{24}$")
ALERT_ID = re.compile(r"^alert_[0-9a-f]{24}$")
DEFAULT_COHORT = "default"
EMAIL_TAKEN = "An account with this email already exists."


def sha256(value: str) -> str:
    """The hex SHA-256 of ``value`` (how invite codes, session ids and CSRF tokens are stored)."""
    return hashlib.sha256(value.encode()).hexdigest()


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
