"""Likenesses (characters): self-enrolment under a challenge, consent, permissions, use and deletion.

A likeness is a real person's face, enrolled by that person from a short clip that shows a random
head movement. Its face descriptor and reference crops are stored only as AES-256-GCM ciphertext
under the likeness's own data key (:mod:`kinema.crypto`); deleting the likeness shreds that key,
so every copy of the ciphertext (backups included) becomes unreadable. Plaintext face data exists
only in memory: during enrolment, a match, or the worker's job that needs it.

Visibility: another user's likeness that the caller may not use is indistinguishable from a missing
one (404), and a face that matches someone else's likeness is refused without saying whose.
"""

from __future__ import annotations

import hashlib
import io
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from PIL import Image
from sqlalchemy import Text, cast, delete, or_, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from kinema.audit.log import AuditLog
from kinema.blobs import BlobStore
from kinema.crypto import CryptoError, KeyShredded, LikenessVault
from kinema.db.models import (
    AlertRow,
    CharacterRow,
    CharacterUseRow,
    ConsentRow,
    EnrolmentChallengeRow,
    VideoRow,
)
from kinema.db.usage import refund_in
from kinema.faces import FaceAnalyzer
from kinema.faces.enrolment import EnrolmentError, analyze_enrolment, describe_challenge, random_challenge
from kinema.faces.matching import SAME_PERSON, best_match
from kinema.services.auth import Principal, new_id
from kinema.services.errors import Conflict, Forbidden, InvalidRequest, NotFound, ServiceError
from kinema.services.purge import input_prefix, purge_videos, scrub_deleted
from kinema.services.uploads import UploadLimits, decode_analysis_clip

CHARACTER_ID = re.compile(r"^char_[0-9a-f]{24}$")
CHALLENGE_ID = re.compile(r"^chal_[0-9a-f]{24}$")
NAME = re.compile(r"^[a-z0-9][a-z0-9_]{1,31}$")
MENTION = re.compile(r"(?<![\w@])@([a-z0-9][a-z0-9_]{1,31})\b", re.IGNORECASE)
Visibility = Literal["private", "users", "everyone"]
VISIBILITIES: tuple[Visibility, ...] = ("private", "users", "everyone")

CONSENT_VERSION = "2026-12-1"
CONSENT_TEXT = (
    "I am the person shown in this clip. I consent to Kinema storing my face data (a face descriptor and a "
    "few face crops, encrypted under a key only this likeness uses) for the purposes I select, and to videos "
    "being generated with my likeness by the people I allow. Pictures and clips of me that people upload to "
    "make such videos are kept encrypted under the same key. I can narrow or withdraw this consent at any "
    "time; withdrawing it stops new videos at once. Deleting my likeness destroys its key and its data, and "
    "deletes every video made with it, by anyone, with the uploads they were made from (I may choose to keep "
    "the videos I made myself). Every video made with my likeness is listed for me, and I can delete any of them."
)
CONSENT_SHA256 = hashlib.sha256(CONSENT_TEXT.encode()).hexdigest()
PURPOSES = ("generation", "matching")
"""``generation``: videos with this likeness; ``matching``: recognising this face in uploads (the face guard)."""


@dataclass(frozen=True)
class ConsentInput:
    """The consent a request carries; every field is required."""

    text_version: str
    purposes: list[str]
    retention_days: int
    signature: str


@dataclass(frozen=True)
class Permissions:
    """Who may use a likeness."""

    visibility: Visibility = "private"
    allowed_users: list[str] = field(default_factory=list)
    expires_at: float | None = None
    restrictions: str | None = None


def _png(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def chip_key(character_id: str, index: int) -> str:
    """Blob key of a likeness's encrypted reference crop."""
    return f"characters/{character_id}/chip-{index}.bin"


def input_purpose(blob_key: str) -> str:
    """The purpose a sealed job input is bound to: its blob key (``inputs/<video id>/<name>``), so a sealed
    input copied to another video or slot does not open."""
    return f"input:{blob_key}"


@dataclass(frozen=True)
class LikenessDeletion:
    """What deleting a likeness removed: the videos that used it, and the owner's videos kept on request."""

    videos_deleted: int
    videos_kept: int


class CharacterService:
    """Enrol, permit, use, revoke and delete likenesses."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        blobs: BlobStore,
        vault: LikenessVault,
        faces: FaceAnalyzer,
        audit: AuditLog,
        *,
        uploads: UploadLimits,
        challenge_ttl_seconds: float = 300,
        challenge_max_attempts: int = 3,
        max_retention_days: int = 365,
        unknown_faces: Literal["refuse", "allow"] = "refuse",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._sessions = sessions
        self._blobs = blobs
        self.vault = vault
        self.faces = faces
        self._audit = audit
        self._uploads = uploads
        self._challenge_ttl = challenge_ttl_seconds
        self.challenge_max_attempts = challenge_max_attempts
        self.max_retention_days = max_retention_days
        self.unknown_faces = unknown_faces
        self._clock = clock
        self._enrol_lock = threading.Lock()  # one enrolment at a time: the impersonation check sees every other

    # -- enrolment -------------------------------------------------------------------------------

    def new_challenge(self, principal: Principal) -> EnrolmentChallengeRow:
        """A random head movement to perform in the enrolment clip, valid for a few minutes."""
        now = self._clock()
        row = EnrolmentChallengeRow(
            id=new_id("chal"),
            user_id=principal.id,
            moves=list(random_challenge()),
            created_at=now,
            expires_at=now + self._challenge_ttl,
        )
        with self._sessions.begin() as s:
            s.add(row)
        return row

    @staticmethod
    def describe(moves: Iterable[str]) -> str:
        return describe_challenge(list(moves))  # type: ignore[arg-type]

    def _check_consent(self, consent: ConsentInput | None) -> None:
        if consent is None:
            raise InvalidRequest(
                "Missing required parameter: 'consent'. Enrolment needs your consent first: text_version, "
                "purposes, retention_days and your typed name as signature (GET /v1/videos/characters/consent).",
                param="consent",
                code="consent_required",
            )
        if consent.text_version != CONSENT_VERSION:
            raise InvalidRequest(
                f"Invalid value for 'consent.text_version': the current consent text is version {CONSENT_VERSION}.",
                param="consent.text_version",
                code="consent_outdated",
            )
        unknown = [p for p in consent.purposes if p not in PURPOSES]
        if not consent.purposes or unknown or "generation" not in consent.purposes:
            raise InvalidRequest(
                f"Invalid value for 'consent.purposes': choose from {', '.join(PURPOSES)}; 'generation' is required.",
                param="consent.purposes",
            )
        if not 1 <= consent.retention_days <= self.max_retention_days:
            raise InvalidRequest(
                f"Invalid value for 'consent.retention_days': 1 to {self.max_retention_days}.",
                param="consent.retention_days",
            )
        if not consent.signature.strip() or len(consent.signature) > 128:
            raise InvalidRequest(
                "Invalid value for 'consent.signature': type your full name (at most 128 characters).",
                param="consent.signature",
            )

    def enrol(
        self,
        principal: Principal,
        *,
        name: str,
        video: bytes,
        challenge_id: str | None,
        consent: ConsentInput | None,
        mirrored: bool = False,
    ) -> CharacterRow:
        """Enrol the caller's own likeness. Nothing is stored unless every check passes.

        Each upload counts as one attempt at the challenge, refused ones included (the count is committed
        before the clip is looked at); after ``challenge_max_attempts`` the challenge is spent. ``mirrored``:
        the clip was recorded mirrored (most front cameras), so the person's left shows on the image's left.
        """
        self._check_consent(consent)
        assert consent is not None
        name = name.strip().lower().lstrip("@")
        if not NAME.match(name):
            raise InvalidRequest(
                "Invalid value for 'name': 2 to 32 lower-case letters, digits or '_' (used as @name in prompts).",
                param="name",
            )
        now = self._clock()
        with self._sessions() as s:
            if s.scalar(select(CharacterRow.id).where(CharacterRow.owner_id == principal.id)):
                raise Conflict(
                    "You already have a likeness; an account may hold one, its own. Delete it to enrol again.",
                    param="video",
                    code="likeness_exists",
                )
            if s.scalar(select(CharacterRow.id).where(CharacterRow.name == name)):
                raise Conflict(f"The name '@{name}' is taken; choose another.", param="name", code="name_taken")
            challenge = s.get(EnrolmentChallengeRow, challenge_id) if challenge_id else None
        if challenge is None or challenge.user_id != principal.id:
            raise InvalidRequest(
                "Missing or unknown 'challenge_id': start with POST /v1/videos/characters/challenges.",
                param="challenge_id",
                code="challenge_invalid",
            )
        if challenge.used_at is not None or challenge.expires_at <= now:
            raise InvalidRequest(
                "This challenge expired or was used; ask for a new one.", param="challenge_id", code="challenge_expired"
            )
        # Decoding and face analysis, a few at a time; a refusal for being busy spends no attempt.
        with self._uploads.gate.slot("video"):
            left = self._spend_attempt(challenge.id)
            # Every frame at the clip's own rate, scaled to about 640 px while decoding: 1080p and 4K fit.
            clip = decode_analysis_clip(video, self._uploads, "video")
            try:
                enrolment = analyze_enrolment(
                    clip.frames,
                    challenge.moves,  # type: ignore[arg-type]
                    analyzer=self.faces,
                    fps=clip.fps,
                    mirrored=mirrored,
                )
            except EnrolmentError as exc:
                raise InvalidRequest(
                    f"Enrolment refused: {exc.message} {_attempts_left(left)}", param="video", code=exc.code
                ) from None
            finally:
                del clip
        descriptor = np.asarray(enrolment.mean_descriptor, dtype=np.float32)

        character_id = new_id("char")
        with self._enrol_lock, self._sessions.begin() as s:
            # 1. The consent record and a pending row first, under a lock that serializes enrolments across
            #    processes (the challenge update takes SQLite's write lock; PostgreSQL gets an advisory lock),
            #    with the one-per-account, name and impersonation checks repeated inside it.
            self._lock_enrolments(s)
            used = s.execute(
                update(EnrolmentChallengeRow)
                .where(EnrolmentChallengeRow.id == challenge.id, EnrolmentChallengeRow.used_at.is_(None))
                .values(used_at=now)
                .returning(EnrolmentChallengeRow.id)
            ).first()
            if used is None:
                raise InvalidRequest(
                    "This challenge was used; ask for a new one.", param="challenge_id", code="challenge_expired"
                )
            if s.scalar(select(CharacterRow.id).where(CharacterRow.owner_id == principal.id)):
                raise Conflict(
                    "You already have a likeness; an account may hold one, its own.",
                    param="video",
                    code="likeness_exists",
                )
            if s.scalar(select(CharacterRow.id).where(CharacterRow.name == name)):
                raise Conflict(f"The name '@{name}' is taken; choose another.", param="name", code="name_taken")
            self._refuse_someone_elses_face(principal.id, descriptor)
            s.add(
                CharacterRow(
                    id=character_id,
                    owner_id=principal.id,
                    name=name,
                    kind="human",
                    status="pending",
                    visibility="private",
                    allowed_users=[],
                    descriptor=b"",
                    chip_count=0,
                    created_at=now,
                )
            )
            s.add(self._consent_row(character_id, principal.id, 1, consent, {"op": "enrol"}, now))
        # 2. The data key and the ciphertext. A crash from here on leaves a pending row, which the
        #    retention sweeper shreds; an error shreds at once.
        try:
            self.vault.create(character_id)
            for i, chip in enumerate(enrolment.chips):
                self._blobs.put(chip_key(character_id, i), self.vault.encrypt(character_id, _png(chip), f"chip:{i}"))
            sealed = self.vault.encrypt(character_id, descriptor.tobytes(), "descriptor")
            with self._enrol_lock, self._sessions.begin() as s:
                self._lock_enrolments(s)
                s.execute(
                    update(CharacterRow)
                    .where(CharacterRow.id == character_id)
                    .values(descriptor=sealed, chip_count=len(enrolment.chips), status="active")
                )
                # Again under the lock: another process may have activated the same face meanwhile.
                self._refuse_someone_elses_face(principal.id, descriptor)
                self._audit.append_in(
                    s,
                    "character.create",
                    actor=principal.id,
                    target=character_id,
                    details={"chips": len(enrolment.chips)},
                )
        except BaseException:
            self.delete(None, character_id, reason="enrolment_failed")
            raise
        return self.owned(principal, character_id)

    def _spend_attempt(self, challenge_id: str) -> int:
        """Count one upload against the challenge in its own, committed transaction (so a refused upload
        counts too); ``challenge_exhausted`` once every attempt is spent. Returns the attempts left after this one."""
        with self._sessions.begin() as s:
            counted = s.execute(
                update(EnrolmentChallengeRow)
                .where(
                    EnrolmentChallengeRow.id == challenge_id,
                    EnrolmentChallengeRow.used_at.is_(None),
                    EnrolmentChallengeRow.attempts < self.challenge_max_attempts,
                )
                .values(attempts=EnrolmentChallengeRow.attempts + 1)
                .returning(EnrolmentChallengeRow.attempts)
            ).first()
        if counted is None:
            raise InvalidRequest(
                f"This challenge is spent: it allows {self.challenge_max_attempts} enrolment attempts. Ask for a new "
                "one (POST /v1/videos/characters/challenges) and record a new clip doing what it says.",
                param="challenge_id",
                code="challenge_exhausted",
            )
        return self.challenge_max_attempts - int(counted.attempts)

    @staticmethod
    def _lock_enrolments(s: Session) -> None:
        """Serialize enrolment steps across processes until ``s`` ends (SQLite: the write that follows)."""
        if s.get_bind().dialect.name == "postgresql":
            s.execute(text("SELECT pg_advisory_xact_lock(727275)"))

    def _consent_row(
        self, character_id: str, user_id: str, revision: int, consent: ConsentInput, change: dict[str, Any], now: float
    ) -> ConsentRow:
        return ConsentRow(
            character_id=character_id,
            user_id=user_id,
            revision=revision,
            text_version=consent.text_version,
            text_sha256=CONSENT_SHA256,
            purposes=sorted(set(consent.purposes)),
            retention_days=consent.retention_days,
            signature=consent.signature.strip(),
            change=change,
            created_at=now,
        )

    def _descriptors(
        self, exclude_owner: str | None = None, purpose: str | None = None
    ) -> list[tuple[str, np.ndarray]]:
        """Decrypted descriptors of every likeness (in memory only, for one comparison)."""
        with self._sessions() as s:
            stmt = select(CharacterRow.id, CharacterRow.descriptor)
            if exclude_owner is not None:
                stmt = stmt.where(CharacterRow.owner_id != exclude_owner)
            rows = s.execute(stmt).all()
            if purpose is not None:
                allowed = {cid for cid, purposes in self._latest_purposes(s).items() if purpose in purposes}
                rows = [r for r in rows if r.id in allowed]
        out = []
        for r in rows:
            try:
                raw = self.vault.decrypt(r.id, r.descriptor, "descriptor")
            except CryptoError:
                continue  # being deleted
            out.append((r.id, np.frombuffer(raw, dtype=np.float32)))
        return out

    def _latest_purposes(self, s: Session) -> dict[str, list[str]]:
        latest: dict[str, tuple[int, list[str]]] = {}
        for cid, rev, purposes in s.execute(select(ConsentRow.character_id, ConsentRow.revision, ConsentRow.purposes)):
            if cid not in latest or rev > latest[cid][0]:
                latest[cid] = (rev, list(purposes))
        return {cid: p for cid, (_, p) in latest.items()}

    def _refuse_someone_elses_face(self, owner_id: str, descriptor: np.ndarray) -> None:
        """The impersonation guard: 409 when the face matches another account's likeness (not saying whose)."""
        if best_match(descriptor, self._descriptors(exclude_owner=owner_id), SAME_PERSON) is not None:
            raise Conflict(
                "This face matches a likeness enrolled by another account, so it cannot be enrolled here.",
                param="video",
                code="face_already_enrolled",
            )

    # -- reading ---------------------------------------------------------------------------------

    def may_use(self, row: CharacterRow, user_id: str, now: float | None = None) -> bool:
        """Whether ``user_id`` may generate with this likeness now."""
        if row.owner_id == user_id:
            return row.status == "active"
        if row.status != "active":
            return False
        if row.permission_expires_at is not None and row.permission_expires_at <= (now or self._clock()):
            return False
        return row.visibility == "everyone" or (row.visibility == "users" and user_id in (row.allowed_users or []))

    def get(self, principal: Principal, character_id: str) -> CharacterRow:
        """A likeness the caller owns or may use; :class:`NotFound` otherwise (also for other users')."""
        if not CHARACTER_ID.match(character_id):
            raise NotFound("character", character_id[:80])
        with self._sessions() as s:
            row = s.get(CharacterRow, character_id)
        if row is None or not (row.owner_id == principal.id or self.may_use(row, principal.id)):
            raise NotFound("character", character_id)
        return row

    def owned(self, principal: Principal, character_id: str) -> CharacterRow:
        """A likeness the caller owns; :class:`NotFound` otherwise."""
        row = self.get(principal, character_id)
        if row.owner_id != principal.id:
            raise NotFound("character", character_id)
        return row

    def visible(self, principal: Principal) -> list[CharacterRow]:
        """The caller's likeness and every likeness the caller may use."""
        with self._sessions() as s:
            rows = list(s.scalars(select(CharacterRow).order_by(CharacterRow.created_at, CharacterRow.id)))
        return [r for r in rows if r.owner_id == principal.id or self.may_use(r, principal.id)]

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

    # -- permissions, revocation, deletion -------------------------------------------------------

    def set_permissions(self, principal: Principal, character_id: str, perms: Permissions) -> CharacterRow:
        """Change who may use the likeness (one call); appends a consent revision; stops now-forbidden jobs."""
        row = self.owned(principal, character_id)
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
            self._append_revision(
                s,
                row,
                principal.id,
                {
                    "op": "permissions",
                    "visibility": perms.visibility,
                    "users": len(users),
                    "expires_at": perms.expires_at,
                },
                now,
            )
            self._audit.append_in(
                s,
                "character.permissions",
                actor=principal.id,
                target=character_id,
                details={"visibility": perms.visibility},
            )
        updated = self.owned(principal, character_id)
        self._stop_forbidden_jobs(updated, "The likeness's owner no longer permits this use.")
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

    def _append_revision(self, s: Session, row: CharacterRow, user_id: str, change: dict[str, Any], now: float) -> None:
        last = s.scalar(
            select(ConsentRow).where(ConsentRow.character_id == row.id).order_by(ConsentRow.revision.desc()).limit(1)
        )
        assert last is not None
        s.add(
            ConsentRow(
                character_id=row.id,
                user_id=user_id,
                revision=last.revision + 1,
                text_version=last.text_version,
                text_sha256=last.text_sha256,
                purposes=list(last.purposes),
                retention_days=last.retention_days,
                signature=last.signature,
                change=change,
                created_at=now,
            )
        )

    def revoke(self, principal: Principal, character_id: str) -> CharacterRow:
        """Withdraw consent: nobody (the owner included) may generate with it; queued jobs are cancelled.
        The data is deleted after the retention period for revoked likenesses, or at once with delete."""
        row = self.owned(principal, character_id)
        now = self._clock()
        with self._revision() as s:
            s.execute(
                update(CharacterRow).where(CharacterRow.id == character_id).values(status="revoked", revoked_at=now)
            )
            self._append_revision(s, row, principal.id, {"op": "revoke"}, now)
            self._audit.append_in(s, "character.revoke", actor=principal.id, target=character_id)
        updated = self.owned(principal, character_id)
        self._stop_forbidden_jobs(updated, "The person depicted withdrew their consent.")
        return updated

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
            row = self.owned(principal, character_id)
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
        self._stop_forbidden_jobs(row, "The likeness was deleted.")  # the owner's kept ones that had not run
        return LikenessDeletion(len(set(deleted)), len(kept))

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

    def _stop_forbidden_jobs(self, row: CharacterRow, message: str) -> int:
        """Cancel queued jobs that use the likeness and may no longer; running ones stop at their start check."""
        now = self._clock()
        with self._sessions.begin() as s:
            queued = s.execute(
                select(VideoRow.id, VideoRow.owner_id, VideoRow.characters).where(
                    VideoRow.status.in_(("queued", "in_progress"))
                )
            ).all()
            stop = [
                v.id
                for v in queued
                if row.id in (v.characters or []) and (row.status != "active" or not self.may_use(row, v.owner_id, now))
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

    # -- use in generation -----------------------------------------------------------------------

    def resolve(self, principal: Principal, ids: list[str], prompt: str) -> list[CharacterRow]:
        """The likenesses a request names (``characters`` ids and ``@name`` mentions), each one the caller
        may use; otherwise a 404 (by id) or 400 (by name) that does not reveal a private likeness."""
        wanted: dict[str, CharacterRow] = {}
        for cid in ids:
            try:
                row = self.get(principal, cid)
            except NotFound:
                raise NotFound("character", cid[:80]) from None
            if not self.may_use(row, principal.id):
                raise Forbidden(
                    f"Likeness '{cid}' may not be used now (revoked or expired).",
                    param="characters",
                    code="likeness_not_permitted",
                )
            wanted[row.id] = row
        names = {m.lower() for m in MENTION.findall(prompt)}
        if names:
            with self._sessions() as s:
                by_name = {r.name: r for r in s.scalars(select(CharacterRow).where(CharacterRow.name.in_(names)))}
            for n in sorted(names):
                named = by_name.get(n)
                if named is None or not self.may_use(named, principal.id):
                    raise InvalidRequest(
                        f"No likeness '@{n}' that you may use. Mention only likenesses you own or were given.",
                        param="prompt",
                        code="likeness_not_found",
                    )
                wanted[named.id] = named
        if len(wanted) > 1:
            raise InvalidRequest(
                "One likeness per video for now (the reference-image path takes one face).",
                param="characters",
                code="unsupported_value",
            )
        return list(wanted.values())

    def record_use_in(self, s: Session, rows: list[CharacterRow], video: VideoRow, now: float) -> None:
        """In the enqueue transaction: the usage log entry and, for someone else's likeness, an alert."""
        for row in rows:
            s.add(
                CharacterUseRow(
                    character_id=row.id, video_id=video.id, user_id=video.owner_id, prompt=video.prompt, created_at=now
                )
            )
            s.execute(update(CharacterRow).where(CharacterRow.id == row.id).values(last_used_at=now))
            if row.owner_id != video.owner_id:
                s.add(
                    AlertRow(
                        id=new_id("alert"),
                        user_id=row.owner_id,
                        kind="likeness_used",
                        subject=row.id,
                        message=f"Your likeness @{row.name} was used in video {video.id} by another user. "
                        "You can see and delete it in your likeness's usage log.",
                        created_at=now,
                    )
                )

    def job_permitted(self, video: VideoRow) -> bool:
        """Whether every likeness of the job may still be used by its requester."""
        try:
            self.check_job(video)
        except LikenessRevoked:
            return False
        return True

    def check_job(self, video: VideoRow) -> None:
        """At a worker's start: every likeness of the job must still be usable by its requester."""
        for cid in video.characters or []:
            with self._sessions() as s:
                row = s.get(CharacterRow, cid)
            if row is None or not self.may_use(row, video.owner_id):
                raise LikenessRevoked(
                    "A likeness in this video was revoked, deleted or its permission changed; the video was stopped."
                )

    def seal_input(self, likeness_ids: list[str], blob_key: str, data: bytes) -> bytes:
        """Seal a job's input blob (an upload that shows these likenesses) under each one's data key."""
        try:
            return self.vault.seal(likeness_ids, data, input_purpose(blob_key))
        except KeyShredded:
            raise Forbidden(
                "A likeness this request shows was deleted a moment ago; it may not be used.",
                param="characters",
                code="likeness_not_permitted",
            ) from None

    def open_input(self, likeness_ids: list[str], blob_key: str, blob: bytes) -> bytes:
        """Open a sealed job input in memory; :class:`LikenessRevoked` once any of its likenesses is deleted."""
        try:
            return self.vault.unseal(likeness_ids, blob, input_purpose(blob_key))
        except KeyShredded:
            raise LikenessRevoked(
                "A likeness this video's input shows was deleted, and the input with it; the video was stopped."
            ) from None

    def reference_image(self, character_id: str) -> Image.Image:
        """The likeness's first reference crop, decrypted in memory (the worker's first frame)."""
        data = self._blobs.get(chip_key(character_id, 0))
        raw = self.vault.decrypt(character_id, data, "chip:0")
        return Image.open(io.BytesIO(raw)).convert("RGB")

    # -- face guard on uploads -------------------------------------------------------------------

    def guard_upload(self, principal: Principal, frames: Iterable[np.ndarray], param: str) -> list[CharacterRow]:
        """Refuse an upload showing a face the caller may not use; return the likenesses it shows.

        A face matching a likeness the caller may not use: 403 (without saying whose). A realistic face
        matching no likeness: refused unless ``unknown_faces`` is ``allow``.
        """
        found: dict[str, CharacterRow] = {}
        candidates: list[tuple[str, np.ndarray]] | None = None
        for frame in frames:
            faces = self.faces.detect(np.ascontiguousarray(frame))
            if not faces:
                continue
            if candidates is None:
                candidates = self._descriptors(purpose="matching")
            for face in faces:
                match = best_match(face.descriptor, candidates, SAME_PERSON)
                if match is None:
                    if self.unknown_faces == "refuse":
                        raise Forbidden(
                            f"Invalid '{param}': it shows a real person's face that is not an enrolled likeness "
                            "you may use. Enrol your own likeness, or ask its owner for permission.",
                            param=param,
                            code="unknown_face",
                        )
                    continue
                with self._sessions() as s:
                    row = s.get(CharacterRow, match[0])
                if row is None or not self.may_use(row, principal.id):
                    raise Forbidden(
                        f"Invalid '{param}': it shows a person whose likeness you may not use.",
                        param=param,
                        code="likeness_not_permitted",
                    )
                found[row.id] = row
        return list(found.values())

    # -- retention -------------------------------------------------------------------------------

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

    def owned_ids(self, user_id: str) -> list[str]:
        with self._sessions() as s:
            return list(s.scalars(select(CharacterRow.id).where(CharacterRow.owner_id == user_id)))


def _attempts_left(left: int) -> str:
    if left <= 0:
        return "That was this challenge's last attempt: ask for a new one."
    return f"{left} more attempt{'s' if left > 1 else ''} with this challenge."


class LikenessRevoked(ServiceError):
    """A job's likeness may no longer be used (checked when a worker starts it)."""

    status = 403
    type = "permission_error"

    def __init__(self, message: str) -> None:
        super().__init__(message, code="likeness_not_permitted")
