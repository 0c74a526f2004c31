"""Cohorts: their default limits, the list of them with member counts, and revoking one at once."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, cast

from sqlalchemy import CursorResult, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from kinema.audit.log import AuditLog
from kinema.db.models import ApiKeyRow, CohortRow, InviteRow, UserRow
from kinema.services.accounts._common import DEFAULT_COHORT, USER_ID, check_cohort
from kinema.services.accounts.users import DefaultLimits, Users, ensure_admin_remains, serialize_admin_changes
from kinema.services.auth import Limits
from kinema.services.errors import Conflict


class Cohorts:
    """Groups of users that share default limits (and can be revoked together)."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        audit: AuditLog,
        *,
        users: Users,
        defaults: DefaultLimits,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._sessions = sessions
        self._audit = audit
        self._users = users
        self._defaults = defaults
        self._clock = clock

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
        defaults = self._defaults.as_limits()
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
        if actor is not None and USER_ID.match(actor) and self._users.get_user(actor).cohort == name:
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
