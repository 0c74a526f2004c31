"""Enrolment: a person enrols their own likeness from a short clip that shows a random head movement
(the challenge), with their consent. A face that matches someone else's likeness is refused without
saying whose."""

from __future__ import annotations

import io
import re
import threading
import time
from collections.abc import Callable, Iterable

import numpy as np
from PIL import Image
from sqlalchemy import select, text, update
from sqlalchemy.orm import Session, sessionmaker

from kinema.audit.log import AuditLog
from kinema.blobs import BlobStore
from kinema.crypto import LikenessVault
from kinema.db.models import CharacterRow, EnrolmentChallengeRow
from kinema.faces import FaceAnalyzer
from kinema.faces.enrolment import EnrolmentError, analyze_enrolment, describe_challenge, random_challenge
from kinema.faces.matching import SAME_PERSON, best_match
from kinema.services.auth import Principal, new_id
from kinema.services.characters._rows import chip_key, descriptors, owned_row
from kinema.services.characters.consent import ConsentInput, check_consent, first_consent_row
from kinema.services.characters.erasure import LikenessErasure
from kinema.services.errors import Conflict, InvalidRequest
from kinema.services.uploads import UploadLimits, decode_analysis_clip

NAME = re.compile(r"^[a-z0-9][a-z0-9_]{1,31}$")


class Enrolment:
    """Challenges and enrolment of the caller's own likeness."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        blobs: BlobStore,
        vault: LikenessVault,
        faces: FaceAnalyzer,
        audit: AuditLog,
        uploads: UploadLimits,
        erasure: LikenessErasure,
        challenge_ttl_seconds: float = 300,
        challenge_max_attempts: int = 3,
        max_retention_days: int = 365,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._sessions = sessions
        self._blobs = blobs
        self._vault = vault
        self._faces = faces
        self._audit = audit
        self._uploads = uploads
        self._erasure = erasure
        self._challenge_ttl = challenge_ttl_seconds
        self.challenge_max_attempts = challenge_max_attempts
        self.max_retention_days = max_retention_days
        self._clock = clock
        self._enrol_lock = threading.Lock()  # one enrolment at a time: the impersonation check sees every other

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
        """The challenge's moves in words, to show the person before they record."""
        return describe_challenge(list(moves))  # type: ignore[arg-type]

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
        consent = check_consent(consent, self.max_retention_days)
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
                    analyzer=self._faces,
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
            _lock_enrolments(s)
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
            s.add(first_consent_row(character_id, principal.id, consent, {"op": "enrol"}, now))
        # 2. The data key and the ciphertext. A crash from here on leaves a pending row, which the
        #    retention sweeper shreds; an error shreds at once.
        try:
            self._vault.create(character_id)
            for i, chip in enumerate(enrolment.chips):
                self._blobs.put(chip_key(character_id, i), self._vault.encrypt(character_id, _png(chip), f"chip:{i}"))
            sealed = self._vault.encrypt(character_id, descriptor.tobytes(), "descriptor")
            with self._enrol_lock, self._sessions.begin() as s:
                _lock_enrolments(s)
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
            self._erasure.delete(None, character_id, reason="enrolment_failed")
            raise
        return owned_row(self._sessions, principal, character_id, self._clock())

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

    def _refuse_someone_elses_face(self, owner_id: str, descriptor: np.ndarray) -> None:
        """The impersonation guard: 409 when the face matches another account's likeness (not saying whose)."""
        others = descriptors(self._sessions, self._vault, exclude_owner=owner_id)
        if best_match(descriptor, others, SAME_PERSON) is not None:
            raise Conflict(
                "This face matches a likeness enrolled by another account, so it cannot be enrolled here.",
                param="video",
                code="face_already_enrolled",
            )


def _lock_enrolments(s: Session) -> None:
    """Serialize enrolment steps across processes until ``s`` ends (SQLite: the write that follows)."""
    if s.get_bind().dialect.name == "postgresql":
        s.execute(text("SELECT pg_advisory_xact_lock(727275)"))


def _png(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def _attempts_left(left: int) -> str:
    if left <= 0:
        return "That was this challenge's last attempt: ask for a new one."
    return f"{left} more attempt{'s' if left > 1 else ''} with this challenge."
