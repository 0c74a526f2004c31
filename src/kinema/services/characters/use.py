"""Likenesses in video jobs: resolving the likenesses a request names, the usage log, the worker's
check that a job may still use them, inputs sealed under their keys, and the face guard on uploads.

Plaintext face data exists only in memory: during a match, or the worker's job that needs it.
"""

from __future__ import annotations

import io
import re
import time
from collections.abc import Callable, Iterable
from typing import Literal

import numpy as np
from PIL import Image
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from kinema.blobs import BlobStore
from kinema.crypto import KeyShredded, LikenessVault
from kinema.db.models import AlertRow, CharacterRow, CharacterUseRow, VideoRow
from kinema.faces import FaceAnalyzer
from kinema.faces.matching import SAME_PERSON, best_match
from kinema.services.auth import Principal, new_id
from kinema.services.characters._rows import chip_key, descriptors, may_use, visible_row
from kinema.services.errors import Forbidden, InvalidRequest, NotFound, ServiceError

MENTION = re.compile(r"(?<![\w@])@([a-z0-9][a-z0-9_]{1,31})\b", re.IGNORECASE)

MAX_LIKENESSES_PER_VIDEO = 3
"""Likenesses one video may feature. In a reference-to-video (VACE) job each is a reference image that the
model denoises as one more latent frame (+5% tokens each on a 5 s 480p clip) and that competes with the
others for the prompt's attention; past three people, identities blur. An image-to-video job takes one."""


def input_purpose(blob_key: str) -> str:
    """The purpose a sealed job input is bound to: its blob key (``inputs/<video id>/<name>``), so a sealed
    input copied to another video or slot does not open."""
    return f"input:{blob_key}"


class LikenessRevoked(ServiceError):
    """A job's likeness may no longer be used (checked when a worker starts it)."""

    status = 403
    type = "permission_error"

    def __init__(self, message: str) -> None:
        super().__init__(message, code="likeness_not_permitted")


class LikenessUse:
    """What video creation and the worker ask of likenesses."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        blobs: BlobStore,
        vault: LikenessVault,
        faces: FaceAnalyzer,
        unknown_faces: Literal["refuse", "allow"] = "refuse",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._sessions = sessions
        self._blobs = blobs
        self._vault = vault
        self._faces = faces
        self.unknown_faces = unknown_faces
        self._clock = clock

    def resolve(self, principal: Principal, ids: list[str], prompt: str) -> list[CharacterRow]:
        """The likenesses a request names (``characters`` ids and ``@name`` mentions), each one the caller
        may use; otherwise a 404 (by id) or 400 (by name) that does not reveal a private likeness."""
        wanted: dict[str, CharacterRow] = {}
        for cid in ids:
            try:
                row = visible_row(self._sessions, principal, cid, self._clock())
            except NotFound:
                raise NotFound("character", cid[:80]) from None
            if not may_use(row, principal.id, self._clock()):
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
                if named is None or not may_use(named, principal.id, self._clock()):
                    raise InvalidRequest(
                        f"No likeness '@{n}' that you may use. Mention only likenesses you own or were given.",
                        param="prompt",
                        code="likeness_not_found",
                    )
                wanted[named.id] = named
        if len(wanted) > MAX_LIKENESSES_PER_VIDEO:
            raise InvalidRequest(
                f"{len(wanted)} likenesses named (ids and @mentions together); at most {MAX_LIKENESSES_PER_VIDEO} "
                "fit in one video.",
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
            if row is None or not may_use(row, video.owner_id, self._clock()):
                raise LikenessRevoked(
                    "A likeness in this video was revoked, deleted or its permission changed; the video was stopped."
                )

    def seal_input(self, likeness_ids: list[str], blob_key: str, data: bytes) -> bytes:
        """Seal a job's input blob (an upload that shows these likenesses) under each one's data key."""
        try:
            return self._vault.seal(likeness_ids, data, input_purpose(blob_key))
        except KeyShredded:
            raise Forbidden(
                "A likeness this request shows was deleted a moment ago; it may not be used.",
                param="characters",
                code="likeness_not_permitted",
            ) from None

    def open_input(self, likeness_ids: list[str], blob_key: str, blob: bytes) -> bytes:
        """Open a sealed job input in memory; :class:`LikenessRevoked` once any of its likenesses is deleted."""
        try:
            return self._vault.unseal(likeness_ids, blob, input_purpose(blob_key))
        except KeyShredded:
            raise LikenessRevoked(
                "A likeness this video's input shows was deleted, and the input with it; the video was stopped."
            ) from None

    def reference_image(self, character_id: str) -> Image.Image:
        """The likeness's first reference crop, decrypted in memory: a vace job's reference image, or an
        i2v job's first frame."""
        data = self._blobs.get(chip_key(character_id, 0))
        raw = self._vault.decrypt(character_id, data, "chip:0")
        return Image.open(io.BytesIO(raw)).convert("RGB")

    def guard_upload(self, principal: Principal, frames: Iterable[np.ndarray], param: str) -> list[CharacterRow]:
        """Refuse an upload showing a face the caller may not use; return the likenesses it shows.

        A face matching a likeness the caller may not use: 403 (without saying whose). A realistic face
        matching no likeness: refused unless ``unknown_faces`` is ``allow``.
        """
        found: dict[str, CharacterRow] = {}
        candidates: list[tuple[str, np.ndarray]] | None = None
        for frame in frames:
            faces = self._faces.detect(np.ascontiguousarray(frame))
            if not faces:
                continue
            if candidates is None:
                candidates = descriptors(self._sessions, self._vault, purpose="matching")
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
                if row is None or not may_use(row, principal.id, self._clock()):
                    raise Forbidden(
                        f"Invalid '{param}': it shows a person whose likeness you may not use.",
                        param=param,
                        code="likeness_not_permitted",
                    )
                found[row.id] = row
        return list(found.values())
