"""Consent to a likeness: the text a person agrees to, the choices it offers, the checks on a request's
consent, and the consent records (one revision per change, the enrolment's first)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from kinema.db.models import ConsentRow
from kinema.services.errors import InvalidRequest

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


def check_consent(consent: ConsentInput | None, max_retention_days: int) -> ConsentInput:
    """The request's consent if it is complete and current; :class:`InvalidRequest` naming the field otherwise."""
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
    if not 1 <= consent.retention_days <= max_retention_days:
        raise InvalidRequest(
            f"Invalid value for 'consent.retention_days': 1 to {max_retention_days}.",
            param="consent.retention_days",
        )
    if not consent.signature.strip() or len(consent.signature) > 128:
        raise InvalidRequest(
            "Invalid value for 'consent.signature': type your full name (at most 128 characters).",
            param="consent.signature",
        )
    return consent


def first_consent_row(
    character_id: str, user_id: str, consent: ConsentInput, change: dict[str, Any], now: float
) -> ConsentRow:
    """Revision 1 of a likeness's consent, as the person gave it at enrolment."""
    return ConsentRow(
        character_id=character_id,
        user_id=user_id,
        revision=1,
        text_version=consent.text_version,
        text_sha256=CONSENT_SHA256,
        purposes=sorted(set(consent.purposes)),
        retention_days=consent.retention_days,
        signature=consent.signature.strip(),
        change=change,
        created_at=now,
    )


def append_revision(s: Session, character_id: str, user_id: str, change: dict[str, Any], now: float) -> None:
    """Add the next consent revision, recording ``change`` and carrying the rest over from the latest."""
    last = s.scalar(
        select(ConsentRow).where(ConsentRow.character_id == character_id).order_by(ConsentRow.revision.desc()).limit(1)
    )
    assert last is not None
    s.add(
        ConsentRow(
            character_id=character_id,
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


def latest_purposes(s: Session) -> dict[str, list[str]]:
    """Each likeness's purposes under its latest consent revision."""
    latest: dict[str, tuple[int, list[str]]] = {}
    for cid, rev, purposes in s.execute(select(ConsentRow.character_id, ConsentRow.revision, ConsentRow.purposes)):
        if cid not in latest or rev > latest[cid][0]:
            latest[cid] = (rev, list(purposes))
    return {cid: p for cid, (_, p) in latest.items()}
