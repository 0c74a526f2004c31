"""Erasing likenesses: crypto-shredding one (its data key first) with every video made with it, and the
retention sweep that erases those past their retention.

A likeness's face data is stored only as ciphertext under its own data key (:mod:`kinema.crypto`);
shredding that key makes every copy of the ciphertext, backups included, unreadable.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Text, cast, delete, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from kinema.audit.log import AuditLog
from kinema.blobs import BlobStore
from kinema.crypto import LikenessVault
from kinema.db.models import AlertRow, CharacterRow, CharacterUseRow, ConsentRow, VideoRow
from kinema.services.auth import Principal
from kinema.services.characters._rows import owned_row, stop_forbidden_jobs
from kinema.services.purge import input_prefix, purge_videos, scrub_deleted


@dataclass(frozen=True)
class LikenessDeletion:
    """What deleting a likeness removed: the videos that used it, and the owner's videos kept on request."""

    videos_deleted: int
    videos_kept: int


class LikenessErasure:
    """Delete likenesses (by their owner, an account deletion, a failed enrolment) and sweep retention."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        blobs: BlobStore,
        vault: LikenessVault,
        audit: AuditLog,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._sessions = sessions
        self._blobs = blobs
        self.vault = vault
        self._audit = audit
        self._clock = clock

    def owned_ids(self, user_id: str) -> list[str]:
        """The ids of the likenesses ``user_id`` owns (to erase with their account)."""
        with self._sessions() as s:
            return list(s.scalars(select(CharacterRow.id).where(CharacterRow.owner_id == user_id)))

    def delete(
        self, principal: Principal | None, character_id: str, *, reason: str = "owner", keep_videos: bool = False
    ) -> LikenessDeletion:
        """Crypto-shred the likeness (its data key first), delete every video that used it, whoever made it,
        with their inputs and outputs, then its crops, consent records and usage log.

        The videos are found three ways: the usage log, the videos' ``characters`` and the likenesses
        their inputs are sealed under (uploads the face guard tied to it). ``keep_videos``: the owner's own
        videos stay (their inputs sealed under this likeness go, being unreadable); everyone else's go always.
        ``principal`` None: the retention sweeper, an account deletion or a failed enrolment. Idempotent: a
        retry after a crash finishes the job. SQLite's WAL is checkpointed at the end.
        """
        if principal is not None:
            row = owned_row(self._sessions, principal, character_id, self._clock())
        else:
            with self._sessions() as s:
                found = s.get(CharacterRow, character_id)
            if found is None:
                return LikenessDeletion(0, 0)
            row = found
        now = self._clock()
        actor = principal.id if principal else None
        with self._sessions.begin() as s:  # no new use from here on (may_use needs `active`)
            s.execute(update(CharacterRow).where(CharacterRow.id == character_id).values(status="deleting"))
        self.vault.shred(character_id)  # from here on, every copy of its ciphertext is unreadable
        self._blobs.delete_prefix(f"characters/{character_id}")
        doomed, kept = self._videos_of(row, keep_videos)
        details = {"reason": "likeness_deleted", "character": character_id}
        deleted = purge_videos(self._sessions, self._blobs, self._audit, doomed, actor=actor, now=now, details=details)
        self._drop_sealed_inputs(character_id, kept)
        with self._sessions.begin() as s:
            s.execute(delete(CharacterRow).where(CharacterRow.id == character_id))
            s.execute(delete(ConsentRow).where(ConsentRow.character_id == character_id))
            s.execute(delete(CharacterUseRow).where(CharacterUseRow.character_id == character_id))
            s.execute(delete(AlertRow).where(AlertRow.kind == "likeness_used", AlertRow.subject == character_id))
            self._audit.append_in(
                s,
                "character.delete",
                actor=actor,
                target=character_id,
                details={"reason": reason, "videos_deleted": len(doomed), "videos_kept": len(kept)},
            )
        # A job enqueued while this ran (it resolved the likeness just before `deleting`): a second look.
        late, _ = self._videos_of(row, keep_videos)
        deleted += purge_videos(self._sessions, self._blobs, self._audit, late, actor=actor, now=now, details=details)
        scrub_deleted(self._sessions)
        row.status = "deleted"
        # The owner's kept ones that had not run.
        stop_forbidden_jobs(self._sessions, row, "The likeness was deleted.", self._clock())
        return LikenessDeletion(len(set(deleted)), len(kept))

    def sweep(self, *, last_use_days: int, revoked_days: int) -> list[str]:
        """Delete likenesses past retention: unused for ``last_use_days`` (or their consent's shorter
        retention), revoked for ``revoked_days``. Returns the deleted ids."""
        now = self._clock()
        with self._sessions() as s:
            rows = list(s.scalars(select(CharacterRow)))
            purposes = {
                r.character_id: r.retention_days for r in s.scalars(select(ConsentRow).order_by(ConsentRow.revision))
            }
        gone = []
        for r in rows:
            if r.status == "deleting":  # a deletion that crashed midway: finish it
                self.delete(None, r.id, reason="deletion_resumed")
                gone.append(r.id)
                continue
            if r.status == "pending":  # an enrolment that crashed midway: its key and crops, if any, go
                if now - r.created_at > 3600:
                    self.delete(None, r.id, reason="enrolment_incomplete")
                    gone.append(r.id)
                continue
            days = min(last_use_days, purposes.get(r.id, last_use_days))
            unused_since = r.last_used_at or r.created_at
            expired = now - unused_since > days * 86400
            revoked = r.revoked_at is not None and now - r.revoked_at > revoked_days * 86400
            if expired or revoked:
                self.delete(None, r.id, reason="retention")
                gone.append(r.id)
        return gone

    def _videos_of(self, row: CharacterRow, keep_videos: bool) -> tuple[list[str], list[str]]:
        """Ids of the videos that used the likeness: (to delete, to keep). Kept: the owner's own, on request."""
        cid = row.id
        with self._sessions() as s:
            used = set(s.scalars(select(CharacterUseRow.video_id).where(CharacterUseRow.character_id == cid)))
            pattern = f'%"{cid}"%'  # a prefilter on the JSON text; the exact test follows
            candidates = s.execute(
                select(VideoRow.id, VideoRow.owner_id, VideoRow.characters, VideoRow.inputs_sealed_by).where(
                    or_(
                        VideoRow.id.in_(used),
                        cast(VideoRow.characters, Text).like(pattern),
                        cast(VideoRow.inputs_sealed_by, Text).like(pattern),
                    )
                )
            ).all()
        doomed: list[str] = []
        kept: list[str] = []
        for v in candidates:
            if not (v.id in used or cid in (v.characters or []) or cid in (v.inputs_sealed_by or [])):
                continue
            (kept if keep_videos and v.owner_id == row.owner_id else doomed).append(v.id)
        return sorted(doomed), sorted(kept)

    def _drop_sealed_inputs(self, character_id: str, video_ids: list[str]) -> None:
        """Kept videos lose the inputs sealed under the shredded key: unreadable now, so removed."""
        for video_id in video_ids:
            with self._sessions.begin() as s:
                sealed = s.scalar(select(VideoRow.inputs_sealed_by).where(VideoRow.id == video_id))
                if not sealed or character_id not in sealed:
                    continue
                s.execute(
                    update(VideoRow)
                    .where(VideoRow.id == video_id)
                    .values(input_image_key=None, input_video_key=None, inputs_sealed_by=[])
                )
            self._blobs.delete_prefix(input_prefix(video_id))
