"""Accounts, one class per concern, each built with only what it uses (wired in :mod:`kinema.container`).

- :mod:`.users`: :class:`Users` (create, get, find, list, update; effective limits) and the admin-lockout
  guards :func:`admin_can_sign_in`, :func:`ensure_admin_remains`, :func:`serialize_admin_changes`;
- :mod:`.hashing`: :class:`PasswordPolicy` and :class:`PasswordHashing` (argon2id, no database);
- :mod:`.passwords`: :class:`Passwords` (set, change, confirm);
- :mod:`.sessions`: :class:`WebSessions` (login, logout, the principal of a cookie), :func:`csrf_token_for`;
- :mod:`.invites`: :class:`Invites` (invite-only sign-up); :mod:`.cohorts`: :class:`Cohorts`;
  :mod:`.alerts`: :class:`Alerts`.

Invite codes and session ids are random and stored only as SHA-256: a copy of the database lets no
one sign up or take over a session.
"""

from __future__ import annotations

from kinema.services.accounts._common import DEFAULT_COHORT, check_cohort, normalise_email
from kinema.services.accounts.alerts import Alerts
from kinema.services.accounts.cohorts import Cohorts
from kinema.services.accounts.hashing import PasswordHashing, PasswordPolicy
from kinema.services.accounts.invites import Invites, NewInvite
from kinema.services.accounts.passwords import Passwords
from kinema.services.accounts.sessions import NewSession, WebSessions, csrf_token_for
from kinema.services.accounts.users import (
    DefaultLimits,
    Users,
    admin_can_sign_in,
    ensure_admin_remains,
    serialize_admin_changes,
)

__all__ = [
    "DEFAULT_COHORT",
    "Alerts",
    "Cohorts",
    "DefaultLimits",
    "Invites",
    "NewInvite",
    "NewSession",
    "PasswordHashing",
    "PasswordPolicy",
    "Passwords",
    "Users",
    "WebSessions",
    "admin_can_sign_in",
    "check_cohort",
    "csrf_token_for",
    "ensure_admin_remains",
    "normalise_email",
    "serialize_admin_changes",
]
