"""Reading likenesses and changing who may use them: the caller's own and those others allow them,
consent history, usage log, permissions and revocation.

Another user's likeness that the caller may not use is indistinguishable from a missing one (404).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from kinema.audit.log import AuditLog
from kinema.db.models import CharacterRow, CharacterUseRow, ConsentRow, VideoRow
from kinema.services.auth import Principal
from kinema.services.characters._rows import may_use, owned_row, stop_forbidden_jobs, visible_row
from kinema.services.characters.consent import VISIBILITIES, Permissions, append_revision
from kinema.services.errors import Conflict, InvalidRequest, NotFound


class Likenesses:
    """Read likenesses; set their permissions; revoke consent."""

    def __init__(
        self, sessions: sessionmaker[Session], *, audit: AuditLog, clock: Callable[[], float] = time.time
    ) -> None:
        self._sessions = sessions
        self._audit = audit
        self._clock = clock

    # -- reading ---------------------------------------------------------------------------------

    def get(self, principal: Principal, character_id: str) -> CharacterRow:
        """A likeness the caller owns or may use; :class:`NotFound` otherwise (also for other users')."""
        return visible_row(self._sessions, principal, character_id, self._clock())

    def owned(self, principal: Principal, character_id: str) -> CharacterRow:
        """A likeness the caller owns; :class:`NotFound` otherwise."""
        return owned_row(self._sessions, principal, character_id, self._clock())

    def visible(self, principal: Principal) -> list[CharacterRow]:
        """The caller's likeness and every likeness the caller may use."""
        with self._sessions() as s:
            rows = list(s.scalars(select(CharacterRow).order_by(CharacterRow.created_at, CharacterRow.id)))
        now = self._clock()
        return [r for r in rows if r.owner_id == principal.id or may_use(r, principal.id, now)]

    def consents(self, principal: Principal, character_id: str) -> list[ConsentRow]:
        """The consent history (oldest first) of the caller's likeness."""
        self.owned(principal, character_id)
        with self._sessions() as s:
            return list(
                s.scalars(
                    select(ConsentRow).where(ConsentRow.character_id == character_id).order_by(ConsentRow.revision)
                )
            )

    def uses(self, principal: Principal, character_id: str) -> list[tuple[CharacterUseRow, str | None]]:
        """Every job that used the caller's likeness, newest first, with the job's current status."""
        self.owned(principal, character_id)
        with self._sessions() as s:
            rows = s.execute(
                select(CharacterUseRow, VideoRow.status)
                .outerjoin(VideoRow, VideoRow.id == CharacterUseRow.video_id)
                .where(CharacterUseRow.character_id == character_id)
                .order_by(CharacterUseRow.created_at.desc(), CharacterUseRow.id.desc())
            ).all()
        return [(r[0], r[1]) for r in rows]

    def video_of_likeness(self, principal: Principal, character_id: str, video_id: str) -> VideoRow:
        """A video that used the caller's likeness, whoever made it (for viewing or deleting it)."""
        self.owned(principal, character_id)
        with self._sessions() as s:
            row = s.scalar(
                select(VideoRow)
                .join(CharacterUseRow, CharacterUseRow.video_id == VideoRow.id)
                .where(CharacterUseRow.character_id == character_id, VideoRow.id == video_id)
            )
        if row is None:
            raise NotFound("video", video_id)
        return row

    # -- permissions and revocation --------------------------------------------------------------

    def set_permissions(self, principal: Principal, character_id: str, perms: Permissions) -> CharacterRow:
        """Change who may use the likeness (one call); appends a consent revision; stops now-forbidden jobs."""
        self.owned(principal, character_id)
        if perms.visibility not in VISIBILITIES:
            raise InvalidRequest(
                f"Invalid value for 'visibility': one of {', '.join(VISIBILITIES)}.", param="visibility"
            )
        if perms.restrictions is not None and len(perms.restrictions) > 2000:
            raise InvalidRequest("Invalid value for 'restrictions': at most 2000 characters.", param="restrictions")
        users = sorted(set(perms.allowed_users))
        if len(users) > 1000:
            raise InvalidRequest("Invalid value for 'allowed_users': at most 1000 users.", param="allowed_users")
        now = self._clock()
        with self._revision() as s:
            s.execute(
                update(CharacterRow)
                .where(CharacterRow.id == character_id)
                .values(
                    visibility=perms.visibility,
                    allowed_users=users,
                    permission_expires_at=perms.expires_at,
                    restrictions=perms.restrictions,
                )
            )
            change = {
                "op": "permissions",
                "visibility": perms.visibility,
                "users": len(users),
                "expires_at": perms.expires_at,
            }
            append_revision(s, character_id, principal.id, change, now)
            self._audit.append_in(
                s,
                "character.permissions",
                actor=principal.id,
                target=character_id,
                details={"visibility": perms.visibility},
            )
        updated = self.owned(principal, character_id)
        stop_forbidden_jobs(self._sessions, updated, "The likeness's owner no longer permits this use.", self._clock())
        return updated

    def revoke(self, principal: Principal, character_id: str) -> CharacterRow:
        """Withdraw consent: nobody (the owner included) may generate with it; queued jobs are cancelled.
        The data is deleted after the retention period for revoked likenesses, or at once with delete."""
        self.owned(principal, character_id)
        now = self._clock()
        with self._revision() as s:
            s.execute(
                update(CharacterRow).where(CharacterRow.id == character_id).values(status="revoked", revoked_at=now)
            )
            append_revision(s, character_id, principal.id, {"op": "revoke"}, now)
            self._audit.append_in(s, "character.revoke", actor=principal.id, target=character_id)
        updated = self.owned(principal, character_id)
        stop_forbidden_jobs(self._sessions, updated, "The person depicted withdrew their consent.", self._clock())
        return updated

    @contextmanager
    def _revision(self) -> Iterator[Session]:
        """A transaction that appends a consent revision; two at once: the loser gets a 409, not a 500."""
        try:
            with self._sessions.begin() as s:
                yield s
        except IntegrityError:
            raise Conflict(
                "Another change to this likeness happened at the same moment; try again.", code="concurrent_change"
            ) from None
