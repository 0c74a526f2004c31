"""Helpers that several likeness classes share: who may use a likeness, finding one for a caller,
decrypting descriptors for a face comparison, and stopping jobs a likeness no longer permits."""

from __future__ import annotations

import re

import numpy as np
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from kinema.crypto import CryptoError, LikenessVault
from kinema.db.models import CharacterRow, VideoRow
from kinema.db.usage import refund_in
from kinema.services.auth import Principal
from kinema.services.characters.consent import latest_purposes
from kinema.services.errors import NotFound

CHARACTER_ID = re.compile(r"^char_[0-9a-f]{24}$")


def chip_key(character_id: str, index: int) -> str:
    """Blob key of a likeness's encrypted reference crop."""
    return f"characters/{character_id}/chip-{index}.bin"


def may_use(row: CharacterRow, user_id: str, now: float) -> bool:
    """Whether ``user_id`` may generate with this likeness at ``now``."""
    if row.owner_id == user_id:
        return row.status == "active"
    if row.status != "active":
        return False
    if row.permission_expires_at is not None and row.permission_expires_at <= now:
        return False
    return row.visibility == "everyone" or (row.visibility == "users" and user_id in (row.allowed_users or []))


def visible_row(sessions: sessionmaker[Session], principal: Principal, character_id: str, now: float) -> CharacterRow:
    """A likeness the caller owns or may use; :class:`NotFound` otherwise (also for other users')."""
    if not CHARACTER_ID.match(character_id):
        raise NotFound("character", character_id[:80])
    with sessions() as s:
        row = s.get(CharacterRow, character_id)
    if row is None or not (row.owner_id == principal.id or may_use(row, principal.id, now)):
        raise NotFound("character", character_id)
    return row


def owned_row(sessions: sessionmaker[Session], principal: Principal, character_id: str, now: float) -> CharacterRow:
    """A likeness the caller owns; :class:`NotFound` otherwise."""
    row = visible_row(sessions, principal, character_id, now)
    if row.owner_id != principal.id:
        raise NotFound("character", character_id)
    return row


def descriptors(
    sessions: sessionmaker[Session],
    vault: LikenessVault,
    *,
    exclude_owner: str | None = None,
    purpose: str | None = None,
) -> list[tuple[str, np.ndarray]]:
    """Decrypted descriptors of every likeness (in memory only, for one comparison), optionally without
    one owner's and only those whose latest consent allows ``purpose``."""
    with sessions() as s:
        stmt = select(CharacterRow.id, CharacterRow.descriptor)
        if exclude_owner is not None:
            stmt = stmt.where(CharacterRow.owner_id != exclude_owner)
        rows = s.execute(stmt).all()
        if purpose is not None:
            allowed = {cid for cid, purposes in latest_purposes(s).items() if purpose in purposes}
            rows = [r for r in rows if r.id in allowed]
    out = []
    for r in rows:
        try:
            raw = vault.decrypt(r.id, r.descriptor, "descriptor")
        except CryptoError:
            continue  # being deleted
        out.append((r.id, np.frombuffer(raw, dtype=np.float32)))
    return out


def stop_forbidden_jobs(sessions: sessionmaker[Session], row: CharacterRow, message: str, now: float) -> int:
    """Cancel queued jobs that use the likeness and may no longer; running ones stop at their start check.
    Returns how many queued jobs were cancelled."""
    with sessions.begin() as s:
        queued = s.execute(
            select(VideoRow.id, VideoRow.owner_id, VideoRow.characters).where(
                VideoRow.status.in_(("queued", "in_progress"))
            )
        ).all()
        stop = [
            v.id
            for v in queued
            if row.id in (v.characters or []) and (row.status != "active" or not may_use(row, v.owner_id, now))
        ]
        cancelled: list[str] = []
        if stop:
            cancelled = list(
                s.scalars(
                    update(VideoRow)
                    .where(VideoRow.id.in_(stop), VideoRow.status == "queued")
                    .values(
                        status="failed",
                        cancel_requested=True,
                        error_code="likeness_not_permitted",
                        error_message=message,
                        completed_at=now,
                    )
                    .returning(VideoRow.id)
                )
            )
            refund_in(s, cancelled, now)  # only those this update failed: a claimed one is the worker's
            # Running ones stop at their next step; the worker fails them and refunds (once).
            s.execute(
                update(VideoRow)
                .where(VideoRow.id.in_(stop), VideoRow.status == "in_progress")
                .values(cancel_requested=True)
            )
    return len(cancelled)
