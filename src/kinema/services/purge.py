"""Deleting videos with every file they have, and scrubbing SQLite's leftovers of deleted personal data.

Shared by the three paths that delete videos: a user deleting their own, the deletion of a likeness
(every video that used it, whoever made it) and account deletion. It sits below both the video and the
likeness services, so neither has to call the other.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

from sqlalchemy import delete, text
from sqlalchemy.orm import Session, sessionmaker

from kinema.audit.log import AuditLog
from kinema.blobs import BlobStore
from kinema.db.models import VideoRow
from kinema.db.usage import refund_in

log = logging.getLogger(__name__)


def input_prefix(video_id: str) -> str:
    """Blob prefix for a job's snapshotted inputs."""
    return f"inputs/{video_id}"


def output_prefix(video_id: str) -> str:
    """Blob prefix under which each attempt writes ``<token>/...``."""
    return f"videos/{video_id}"


def purge_videos(
    sessions: sessionmaker[Session],
    blobs: BlobStore,
    audit: AuditLog,
    video_ids: Iterable[str],
    *,
    actor: str | None,
    now: float,
    details: dict[str, Any] | None = None,
) -> list[str]:
    """Delete each video's row (refunding a job that never completed), audit it, then its inputs and outputs.

    A running job loses its row, so its lease can neither heartbeat nor complete: it stops at its next
    step, and the attempt removes what it wrote. ``actor`` None: the system (a retention sweep). Returns the ids whose
    row this call deleted (files are removed for every id, so a retry after a crash finishes the job).

    Files are removed before the row too: a blob store that is down (S3) then fails the call while the row,
    and with it the way to retry, still exists; the pass after the row catches files a racing job wrote.
    """
    deleted: list[str] = []
    for video_id in video_ids:
        blobs.delete_prefix(output_prefix(video_id))
        blobs.delete_prefix(input_prefix(video_id))
        with sessions.begin() as s:
            gone = s.execute(
                delete(VideoRow).where(VideoRow.id == video_id).returning(VideoRow.status, VideoRow.owner_id)
            ).first()
            if gone is not None:
                if gone.status != "completed":
                    refund_in(s, [video_id], now)  # it never produced its seconds (no-op if refunded)
                audit.append_in(s, "video.delete", actor=actor, target=video_id, details=details)
                deleted.append(video_id)
        blobs.delete_prefix(output_prefix(video_id))
        blobs.delete_prefix(input_prefix(video_id))
    return deleted


def scrub_deleted(sessions: sessionmaker[Session], *, attempts: int = 5) -> bool:
    """After deleting personal data: make SQLite's files stop holding it. No-op on other databases.

    Connections run with ``secure_delete=ON`` (:mod:`kinema.db.session`), so a deleted row's bytes are
    zeroed in the page that held it; but in WAL mode that zeroed page is only appended to the WAL, and
    the main file, as well as older WAL frames, still hold the old bytes until a checkpoint.
    ``wal_checkpoint(TRUNCATE)`` copies the pages back and empties the WAL. It cannot finish while another
    connection reads an old snapshot, so it is retried a few times; True when it completed.
    """
    engine = sessions.kw.get("bind")
    if engine is None or engine.dialect.name != "sqlite":
        return True
    for attempt in range(attempts):
        with engine.connect() as conn:
            busy, _, _ = conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)")).one()
        if not busy:
            return True
        time.sleep(0.05 * (attempt + 1))
    log.warning("the WAL checkpoint after a deletion did not complete (readers kept it busy); the next one will")
    return False
