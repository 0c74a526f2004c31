"""A person's rights over their data: export everything (JSON plus files) and delete the account.

Deleting an account shreds its likeness (the data key first, so copies of the database and blobs
become unreadable; the key store itself must be kept out of such backups), deletes
every video it made and every file of them, revokes and removes its keys, ends its sessions and
removes the account. The audit log keeps its pseudonymous events (ids, never content), as a
tamper-evident log must.
"""

from __future__ import annotations

import contextlib
import io
import json
import time
import zipfile
from collections.abc import Callable
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from kinema.audit.log import AuditEntryRow, AuditLog
from kinema.blobs import BlobNotFound, BlobStore
from kinema.crypto import CryptoError
from kinema.db.models import (
    AlertRow,
    ApiKeyRow,
    CharacterRow,
    CharacterUseRow,
    ConsentRow,
    EnrolmentChallengeRow,
    InviteRow,
    KeySightingRow,
    ModerationRefusalRow,
    UsageChargeRow,
    UserRow,
    VideoRow,
    WebhookDeliveryRow,
    WebhookEndpointRow,
    WebSessionRow,
)
from kinema.services.accounts import admin_can_sign_in, ensure_admin_remains
from kinema.services.characters import LikenessErasure, chip_key
from kinema.services.purge import scrub_deleted
from kinema.services.videos import VideoService
from kinema.services.webhooks import WebhookService


def _row_dict(row: Any, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    return {c.key: getattr(row, c.key) for c in row.__table__.columns if c.key not in skip}


class PrivacyService:
    """Export and account deletion for one user at a time."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        blobs: BlobStore,
        videos: VideoService,
        characters: LikenessErasure,
        audit: AuditLog,
        clock: Callable[[], float] = time.time,
        webhooks: WebhookService | None = None,
    ) -> None:
        self._webhooks = webhooks
        self._sessions = sessions
        self._blobs = blobs
        self._videos = videos
        self._characters = characters
        self._audit = audit
        self._clock = clock

    def export(self, user_id: str) -> bytes:
        """A ZIP: ``me.json`` (account, keys, alerts, videos, likeness with consent history and usage log,
        security events) plus the user's video files and their likeness's reference crops."""
        files: dict[str, bytes] = {}
        with self._sessions() as s:
            user = s.get(UserRow, user_id)
            assert user is not None
            keys = list(s.scalars(select(ApiKeyRow).where(ApiKeyRow.owner_id == user_id)))
            alerts = list(s.scalars(select(AlertRow).where(AlertRow.user_id == user_id)))
            videos = list(s.scalars(select(VideoRow).where(VideoRow.owner_id == user_id).order_by(VideoRow.id)))
            likeness = s.scalar(select(CharacterRow).where(CharacterRow.owner_id == user_id))
            consents = (
                list(s.scalars(select(ConsentRow).where(ConsentRow.character_id == likeness.id))) if likeness else []
            )
            uses = (
                list(s.scalars(select(CharacterUseRow).where(CharacterUseRow.character_id == likeness.id)))
                if likeness
                else []
            )
            own_uses = list(s.scalars(select(CharacterUseRow).where(CharacterUseRow.user_id == user_id)))
            sightings = list(
                s.scalars(
                    select(KeySightingRow).where(
                        KeySightingRow.key_id.in_(select(ApiKeyRow.id).where(ApiKeyRow.owner_id == user_id))
                    )
                )
            )
            refusals = list(s.scalars(select(ModerationRefusalRow).where(ModerationRefusalRow.owner_id == user_id)))
            events = list(
                s.scalars(select(AuditEntryRow).where(AuditEntryRow.actor == user_id).order_by(AuditEntryRow.seq))
            )
            hooks = list(
                s.scalars(
                    select(WebhookEndpointRow)
                    .where(WebhookEndpointRow.owner_id == user_id)
                    .order_by(WebhookEndpointRow.created_at)
                )
            )
            deliveries = list(
                s.scalars(
                    select(WebhookDeliveryRow)
                    .where(WebhookDeliveryRow.endpoint_id.in_([h.id for h in hooks]))
                    .order_by(WebhookDeliveryRow.id)
                )
            )
        for v in videos:
            if v.status == "completed" and v.video_key:
                with contextlib.suppress(BlobNotFound):  # deleted meanwhile
                    files[f"videos/{v.id}.mp4"] = self._blobs.get(v.video_key)
        if likeness is not None:
            for i in range(likeness.chip_count):
                try:
                    data = self._blobs.get(chip_key(likeness.id, i))
                    files[f"likeness/reference-{i}.png"] = self._characters.vault.decrypt(
                        likeness.id, data, f"chip:{i}"
                    )
                except (BlobNotFound, CryptoError):
                    pass
        doc = {
            "object": "export",
            "exported_at": self._clock(),
            "account": _row_dict(user, skip=("password_hash", "last_enqueue_at")),
            "api_keys": [_row_dict(k, skip=("key_hash",)) for k in keys],
            "alerts": [_row_dict(a) for a in alerts],
            "videos": [
                _row_dict(v, skip=("lease_token", "lease_owner", "lease_expires_at", "provenance_ref", "watermark_tag"))
                for v in videos
            ],
            "likeness": (
                {
                    **_row_dict(likeness, skip=("descriptor",)),
                    "reference_images": [n for n in files if n.startswith("likeness/")],
                    "consent_history": [_row_dict(c) for c in consents],
                    "usage_log": [_row_dict(u) for u in uses],
                }
                if likeness
                else None
            ),
            "likeness_uses_by_you": [_row_dict(u) for u in own_uses],
            "key_sightings": [_row_dict(k, skip=("id",)) for k in sightings],
            "moderation_refusals": [_row_dict(r, skip=("id",)) for r in refusals],
            # Endpoints without their signing secrets (ciphertext, useless to the reader), and their delivery log.
            "webhook_endpoints": [_row_dict(h, skip=("secret", "old_secret")) for h in hooks],
            "webhook_deliveries": [_row_dict(d, skip=("id",)) for d in deliveries],
            "security_events": [
                {"seq": e.seq, "at": e.at, "action": e.action, "target": e.target, "details": e.details} for e in events
            ],
            "files": sorted(files),
        }
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("me.json", json.dumps(doc, indent=2, default=str))
            for name, data in files.items():
                z.writestr(name, data)
        self._audit.append("me.export", actor=user_id, target=user_id, details={"files": len(files)})
        return buf.getvalue()

    def delete_account(self, user_id: str) -> dict[str, int]:
        """Shred the user's likeness (which deletes every video made with it, anyone's), delete their videos,
        keys, sessions and alerts, then the account; then scrub SQLite's WAL of what was deleted.

        Refused (409 ``last_admin``), before anything is deleted, when no other administrator could sign in."""
        with self._sessions() as s:
            now = self._clock()
            ensure_admin_remains(s, now, had_admin=admin_can_sign_in(s, now), leaving=user_id)
        with self._sessions() as s:  # counted before the likeness's deletion takes those made with it
            video_ids = list(s.scalars(select(VideoRow.id).where(VideoRow.owner_id == user_id)))
        for character_id in self._characters.owned_ids(user_id):
            self._characters.delete(None, character_id, reason="account_deleted")
        with self._sessions() as s:
            left = list(s.scalars(select(VideoRow.id).where(VideoRow.owner_id == user_id)))
        for vid in left:
            self._videos.delete(user_id, vid, scrub=False)
        if self._webhooks is not None:
            self._webhooks.delete_all(user_id)  # URLs, pending events, delivery logs; secrets' keys shredded
        with self._sessions.begin() as s:
            email = s.scalar(select(UserRow.email).where(UserRow.id == user_id))
            key_ids = select(ApiKeyRow.id).where(ApiKeyRow.owner_id == user_id).scalar_subquery()
            s.execute(delete(KeySightingRow).where(KeySightingRow.key_id.in_(key_ids)))
            keys = s.execute(delete(ApiKeyRow).where(ApiKeyRow.owner_id == user_id).returning(ApiKeyRow.id)).all()
            s.execute(delete(InviteRow).where((InviteRow.email == email) | (InviteRow.used_by == user_id)))
            s.execute(delete(ModerationRefusalRow).where(ModerationRefusalRow.owner_id == user_id))
            s.execute(delete(EnrolmentChallengeRow).where(EnrolmentChallengeRow.user_id == user_id))
            s.execute(delete(WebSessionRow).where(WebSessionRow.user_id == user_id))
            s.execute(delete(AlertRow).where(AlertRow.user_id == user_id))
            s.execute(delete(UsageChargeRow).where(UsageChargeRow.owner_id == user_id))
            # Entries in other people's usage logs stay (they are the depicted person's record), without the prompt.
            s.execute(
                update(CharacterUseRow)
                .where(CharacterUseRow.user_id == user_id)
                .values(prompt="(deleted with the account that wrote it)")
            )
            s.execute(delete(UserRow).where(UserRow.id == user_id))
            self._audit.append_in(
                s,
                "account.delete",
                actor=user_id,
                target=user_id,
                details={"videos": len(video_ids), "key_count": len(keys)},
            )
        scrub_deleted(self._sessions)
        return {"videos": len(video_ids), "keys": len(keys)}
