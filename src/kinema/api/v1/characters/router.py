"""/v1/videos/characters: enrol your likeness (SDK ``create_character``), read it (``get_character``),
and Kinema's extras: challenge, consent text and history, permissions, revoke, delete, usage log.

Included before the videos router, so ``/v1/videos/characters`` is not taken for a video id.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from kinema.api.deps import (
    BlobsDep,
    EnrolmentDep,
    LikenessErasureDep,
    LikenessesDep,
    SettingsDep,
    VideoServiceDep,
    require,
)
from kinema.api.openapi import body_doc
from kinema.api.v1.characters.protocol import (
    Challenge,
    Character,
    CharacterDeleted,
    CharacterList,
    Consent,
    ConsentList,
    ConsentText,
    CreateCharacterBody,
    PermissionsBody,
    Use,
    UseList,
)
from kinema.api.v1.videos import serving
from kinema.api.v1.videos.protocol import VideoDeleted
from kinema.services.auth import Principal
from kinema.services.characters import (
    CONSENT_SHA256,
    CONSENT_TEXT,
    CONSENT_VERSION,
    PURPOSES,
    ConsentInput,
    Permissions,
)
from kinema.services.errors import InvalidRequest
from kinema.services.videos import MEDIA_TYPES

router = APIRouter(prefix="/v1/videos/characters", tags=["characters"])
CharactersRead = Annotated[Principal, Depends(require("characters:read"))]
CharactersWrite = Annotated[Principal, Depends(require("characters:write"))]


@router.get("/consent", response_model=ConsentText)
def consent_text(principal: CharactersRead, enrolment: EnrolmentDep) -> ConsentText:
    """The consent text to show before enrolment, its version and hash, and the choices it offers."""
    return ConsentText(
        version=CONSENT_VERSION,
        text=CONSENT_TEXT,
        sha256=CONSENT_SHA256,
        purposes=list(PURPOSES),
        max_retention_days=enrolment.max_retention_days,
    )


@router.post("/challenges", response_model=Challenge, status_code=201)
def new_challenge(principal: CharactersWrite, enrolment: EnrolmentDep) -> Challenge:
    """A random head movement your enrolment clip must show, valid for a few minutes."""
    row = enrolment.new_challenge(principal)
    return Challenge.from_row(row, enrolment.describe(row.moves))


@router.post("", response_model=Character, openapi_extra=body_doc(CreateCharacterBody, ("video",)))
async def create_character(
    request: Request, principal: CharactersWrite, enrolment: EnrolmentDep, settings: SettingsDep
) -> Character:
    """Enrol your own likeness from a short clip of you performing the challenge, with your consent."""
    body, uploads = await serving.read(request, CreateCharacterBody, frozenset({"video"}), settings.max_upload_bytes)
    if "video" not in uploads:
        raise InvalidRequest("Missing required parameter: 'video' (the enrolment clip).", param="video")
    consent = (
        ConsentInput(
            text_version=body.consent.text_version,
            purposes=list(body.consent.purposes),
            retention_days=body.consent.retention_days,
            signature=body.consent.signature,
        )
        if body.consent is not None
        else None
    )
    row = await run_in_threadpool(
        enrolment.enrol,
        principal,
        name=body.name,
        video=uploads["video"],
        challenge_id=body.challenge_id,
        consent=consent,
        mirrored=body.mirrored,
    )
    return Character.from_row(row, principal.id)


@router.get("", response_model=CharacterList)
def list_characters(principal: CharactersRead, likenesses: LikenessesDep) -> CharacterList:
    """Your likeness and the likenesses others allow you to use."""
    return CharacterList(data=[Character.from_row(r, principal.id) for r in likenesses.visible(principal)])


@router.get("/{character_id}", response_model=Character)
def get_character(character_id: str, principal: CharactersRead, likenesses: LikenessesDep) -> Character:
    """One likeness you own or may use."""
    return Character.from_row(likenesses.get(principal, character_id), principal.id)


@router.post("/{character_id}/permissions", response_model=Character)
def set_permissions(
    character_id: str, body: PermissionsBody, principal: CharactersWrite, likenesses: LikenessesDep
) -> Character:
    """Who may use your likeness: only you, chosen users, or everyone here; optional expiry."""
    row = likenesses.set_permissions(
        principal,
        character_id,
        Permissions(
            visibility=body.visibility,
            allowed_users=body.allowed_users,
            expires_at=float(body.expires_at) if body.expires_at is not None else None,
            restrictions=body.restrictions,
        ),
    )
    return Character.from_row(row, principal.id)


@router.post("/{character_id}/revoke", response_model=Character)
def revoke_character(character_id: str, principal: CharactersWrite, likenesses: LikenessesDep) -> Character:
    """Withdraw consent: nobody may generate with it any more; queued videos using it are cancelled."""
    return Character.from_row(likenesses.revoke(principal, character_id), principal.id)


@router.delete("/{character_id}", response_model=CharacterDeleted)
def delete_character(
    character_id: str,
    principal: CharactersWrite,
    erasure: LikenessErasureDep,
    keep_videos: Annotated[
        bool,
        Query(description="Keep the videos you made yourself with your likeness; other people's are deleted always."),
    ] = False,
) -> CharacterDeleted:
    """Delete your likeness now: its key is destroyed, so no copy of its data can be read again, and every
    video made with it, by anyone, is deleted with its inputs and outputs (``keep_videos=true``: except yours)."""
    done = erasure.delete(principal, character_id, keep_videos=keep_videos)
    return CharacterDeleted(id=character_id, videos_deleted=done.videos_deleted, videos_kept=done.videos_kept)


@router.get("/{character_id}/consents", response_model=ConsentList)
def consent_history(character_id: str, principal: CharactersRead, likenesses: LikenessesDep) -> ConsentList:
    """Every revision of your consent, oldest first."""
    return ConsentList(data=[Consent.from_row(r) for r in likenesses.consents(principal, character_id)])


@router.get("/{character_id}/uses", response_model=UseList)
def usage_log(character_id: str, principal: CharactersRead, likenesses: LikenessesDep) -> UseList:
    """Every video that used your likeness: by whom, when, with what prompt, and its status."""
    return UseList(data=[Use.from_row(r, st) for r, st in likenesses.uses(principal, character_id)])


@router.get("/{character_id}/uses/{video_id}/content", response_class=StreamingResponse)
def use_content(
    character_id: str,
    video_id: str,
    principal: CharactersRead,
    blobs: BlobsDep,
    likenesses: LikenessesDep,
    videos: VideoServiceDep,
    variant: Literal["video", "thumbnail", "spritesheet"] = "video",
) -> StreamingResponse:
    """Watch a video that used your likeness, whoever made it."""
    row = likenesses.video_of_likeness(principal, character_id, video_id)
    key = videos.content_key(row.owner_id, video_id, variant)
    return StreamingResponse(
        blobs.iter_chunks(key),
        media_type=MEDIA_TYPES[variant],
        headers={"Content-Length": str(blobs.size(key))},
    )


@router.delete("/{character_id}/uses/{video_id}", response_model=VideoDeleted)
def delete_use(
    character_id: str,
    video_id: str,
    principal: CharactersWrite,
    likenesses: LikenessesDep,
    videos: VideoServiceDep,
) -> VideoDeleted:
    """Delete a video that used your likeness, whoever made it."""
    row = likenesses.video_of_likeness(principal, character_id, video_id)
    videos.delete(row.owner_id, video_id, actor=principal.id)
    return VideoDeleted(id=video_id)
