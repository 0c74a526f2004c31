"""Verify a file: its C2PA state, its watermark, and (to the job's owner only) which video it came from."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, sessionmaker

from kinema.db.models import VideoRow
from kinema.media.errors import MediaError
from kinema.media.sniff import sniff_image, sniff_video
from kinema.services.errors import PayloadTooLarge, UnsupportedMediaType, from_media_error
from kinema.services.mediagate import MediaGate
from kinema.services.provenance import ProvenanceService, Verification

MIMES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}


@dataclass(frozen=True)
class VerifyResult:
    """A verification, and the video it traces back to when the caller may know that."""

    verification: Verification
    video_id: str | None
    traced: bool  # a job of this deployment was found (told to everyone; which job only to its owner)


class VerificationService:
    """Checks uploaded files against this deployment's trust anchor and watermark."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        provenance: ProvenanceService,
        max_bytes: int,
        gate: MediaGate | None = None,
    ) -> None:
        self._sessions = sessions
        self._provenance = provenance
        self._max_bytes = max_bytes
        self._gate = gate or MediaGate()

    def verify(self, data: bytes, *, owner_id: str | None, operator: bool = False) -> VerifyResult:
        """Verify ``data``; name the video only if ``owner_id`` owns it, or for the operator (CLI)."""
        if len(data) > self._max_bytes:
            raise PayloadTooLarge(
                f"The file is larger than {self._max_bytes} bytes.", param="file", code="file_too_large"
            )
        mime = self._mime(data)
        try:
            with self._gate.slot("file"):  # decoding, a few uploads at a time
                result = self._provenance.verify(data, mime)
        except MediaError as exc:  # recognised by its header, but not decodable
            raise from_media_error(exc, "file") from None
        row = self._trace(result)
        visible = row is not None and (operator or row.owner_id == owner_id)
        return VerifyResult(result, row.id if visible and row else None, traced=row is not None)

    @staticmethod
    def _mime(data: bytes) -> str:
        if sniff_video(data) == "mov":  # the MP4/MOV family
            return "video/mp4"
        kind = sniff_image(data)
        if kind in MIMES:
            return MIMES[kind]
        raise UnsupportedMediaType(
            "Only MP4/MOV videos and JPEG, PNG or WebP images can be verified.",
            param="file",
            code="unsupported_media_type",
        )

    def _trace(self, result: Verification) -> VideoRow | None:
        conditions = []
        if result.job_ref and result.c2pa.state == "trusted":
            conditions.append(VideoRow.provenance_ref == result.job_ref)
        if result.watermark_tag is not None:
            conditions.append(VideoRow.watermark_tag == result.watermark_tag)
        if not conditions:
            return None
        with self._sessions() as s:
            return s.scalars(select(VideoRow).where(or_(*conditions)).limit(1)).first()
