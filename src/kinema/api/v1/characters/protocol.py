"""Wire models for /v1/videos/characters: the SDK's ``create_character`` / ``get_character`` shapes
(``id``, ``created_at``, ``name``) plus Kinema's extras in the same style."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from kinema.api.strict import Strict
from kinema.db.models import CharacterRow, CharacterUseRow, ConsentRow, EnrolmentChallengeRow


class ConsentBody(Strict):
    text_version: str = Field(max_length=32)
    purposes: list[str] = Field(max_length=4)
    retention_days: int
    signature: str = Field(max_length=128, description="Your full name, typed: your signature.")


class CreateCharacterBody(Strict):
    """``POST /v1/videos/characters`` (multipart: ``video`` is the enrolment clip)."""

    name: str = Field(max_length=64)
    challenge_id: str | None = Field(None, max_length=64)
    consent: ConsentBody | None = None
    mirrored: bool = Field(
        False,
        description="The clip was recorded mirrored, as most front (selfie) cameras store it: your left turn "
        "shows toward the image's left. Leave false for an unmirrored recording.",
    )


class Character(BaseModel):
    id: str
    object: Literal["character"] = "character"
    created_at: int
    name: str
    status: str
    owned: bool = Field(description="Whether this is your own likeness.")
    visibility: str | None = None
    allowed_users: list[str] | None = None
    permission_expires_at: int | None = None
    restrictions: str | None = None
    last_used_at: int | None = None

    @classmethod
    def from_row(cls, row: CharacterRow, viewer: str) -> Character:
        mine = row.owner_id == viewer
        return cls(
            id=row.id,
            created_at=int(row.created_at),
            name=row.name,
            status=row.status,
            owned=mine,
            # Only the person depicted sees who else may use their likeness, and how it is used.
            visibility=row.visibility if mine else None,
            allowed_users=list(row.allowed_users or []) if mine else None,
            permission_expires_at=int(row.permission_expires_at) if mine and row.permission_expires_at else None,
            restrictions=row.restrictions,
            last_used_at=int(row.last_used_at) if mine and row.last_used_at else None,
        )


class CharacterList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Character]


class CharacterDeleted(BaseModel):
    id: str
    object: Literal["character.deleted"] = "character.deleted"
    deleted: bool = True
    videos_deleted: int = Field(0, description="Videos that used the likeness, anyone's, deleted with it.")
    videos_kept: int = Field(0, description="Your own videos kept because you asked for keep_videos=true.")


class PermissionsBody(Strict):
    visibility: Literal["private", "users", "everyone"] = "private"
    allowed_users: list[str] = Field(default_factory=list, max_length=1000, description="User ids (for `users`).")
    expires_at: int | None = Field(None, description="Unix time after which nobody else may use it.")
    restrictions: str | None = Field(None, max_length=2000, description="Free text kept for the moderation policy.")


class Challenge(BaseModel):
    id: str
    object: Literal["character.challenge"] = "character.challenge"
    moves: list[str]
    instruction: str
    expires_at: int

    @classmethod
    def from_row(cls, row: EnrolmentChallengeRow, instruction: str) -> Challenge:
        return cls(id=row.id, moves=list(row.moves), instruction=instruction, expires_at=int(row.expires_at))


class ConsentText(BaseModel):
    object: Literal["character.consent_text"] = "character.consent_text"
    version: str
    text: str
    sha256: str
    purposes: list[str]
    max_retention_days: int


class Consent(BaseModel):
    object: Literal["character.consent"] = "character.consent"
    revision: int
    text_version: str
    text_sha256: str
    purposes: list[str]
    retention_days: int
    signature: str
    change: dict[str, Any]
    created_at: int

    @classmethod
    def from_row(cls, row: ConsentRow) -> Consent:
        return cls(
            revision=row.revision,
            text_version=row.text_version,
            text_sha256=row.text_sha256,
            purposes=list(row.purposes),
            retention_days=row.retention_days,
            signature=row.signature,
            change=dict(row.change or {}),
            created_at=int(row.created_at),
        )


class ConsentList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Consent]


class Use(BaseModel):
    object: Literal["character.use"] = "character.use"
    video_id: str
    user_id: str
    prompt: str
    status: str = Field(description="The video's status now; `deleted` once it is gone.")
    created_at: int

    @classmethod
    def from_row(cls, row: CharacterUseRow, status: str | None) -> Use:
        return cls(
            video_id=row.video_id,
            user_id=row.user_id,
            prompt=row.prompt,
            status=status or "deleted",
            created_at=int(row.created_at),
        )


class UseList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Use]
