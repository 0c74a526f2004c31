"""/v1/videos/characters: enrol your likeness (SDK ``create_character``), read it (``get_character``),
and Kinema's extras: challenge, consent text and history, permissions, revoke, delete, usage log.

Included before the videos router, so ``/v1/videos/characters`` is not taken for a video id.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from kinema.api.deps import ContainerDep, require
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
def consent_text(principal: CharactersRead, container: ContainerDep) -> ConsentText:
    """The consent text to show before enrolment, its version and hash, and the choices it offers."""
    return ConsentText(
        version=CONSENT_VERSION,
        text=CONSENT_TEXT,
        sha256=CONSENT_SHA256,
        purposes=list(PURPOSES),
        max_retention_days=container.characters.max_retention_days,
    )


@router.post("/challenges", response_model=Challenge, status_code=201)
def new_challenge(principal: CharactersWrite, container: ContainerDep) -> Challenge:
    """A random head movement your enrolment clip must show, valid for a few minutes."""
    row = container.characters.new_challenge(principal)
    return Challenge.from_row(row, container.characters.describe(row.moves))


@router.post("", response_model=Character, openapi_extra=body_doc(CreateCharacterBody, ("video",)))
async def create_character(request: Request, principal: CharactersWrite, container: ContainerDep) -> Character:
    """Enrol your own likeness from a short clip of you performing the challenge, with your consent."""
    body, uploads = await serving.read(
        request, CreateCharacterBody, frozenset({"video"}), container.settings.max_upload_bytes
    )
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
        container.characters.enrol,
        principal,
        name=body.name,
        video=uploads["video"],
        challenge_id=body.challenge_id,
        consent=consent,
        mirrored=body.mirrored,
    )
    return Character.from_row(row, principal.id)


@router.get("", response_model=CharacterList)
def list_characters(principal: CharactersRead, container: ContainerDep) -> CharacterList:
    """Your likeness and the likenesses others allow you to use."""
    return CharacterList(data=[Character.from_row(r, principal.id) for r in container.characters.visible(principal)])


@router.get("/{character_id}", response_model=Character)
def get_character(character_id: str, principal: CharactersRead, container: ContainerDep) -> Character:
    """One likeness you own or may use."""
    return Character.from_row(container.characters.get(principal, character_id), principal.id)


@router.post("/{character_id}/permissions", response_model=Character)
def set_permissions(
    character_id: str, body: PermissionsBody, principal: CharactersWrite, container: ContainerDep
) -> Character:
    """Who may use your likeness: only you, chosen users, or everyone here; optional expiry."""
    row = container.characters.set_permissions(
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
def revoke_character(character_id: str, principal: CharactersWrite, container: ContainerDep) -> Character:
    """Withdraw consent: nobody may generate with it any more; queued videos using it are cancelled."""
    return Character.from_row(container.characters.revoke(principal, character_id), principal.id)


@router.delete("/{character_id}", response_model=CharacterDeleted)
def delete_character(
    character_id: str,
    principal: CharactersWrite,
    container: ContainerDep,
    keep_videos: Annotated[
        bool,
        Query(description="Keep the videos you made yourself with your likeness; other people's are deleted always."),
    ] = False,
) -> CharacterDeleted:
    """Delete your likeness now: its key is destroyed, so no copy of its data can be read again, and every
    video made with it, by anyone, is deleted with its inputs and outputs (``keep_videos=true``: except yours)."""
    done = container.characters.delete(principal, character_id, keep_videos=keep_videos)
    return CharacterDeleted(id=character_id, videos_deleted=done.videos_deleted, videos_kept=done.videos_kept)


@router.get("/{character_id}/consents", response_model=ConsentList)
def consent_history(character_id: str, principal: CharactersRead, container: ContainerDep) -> ConsentList:
    """Every revision of your consent, oldest first."""
    return ConsentList(data=[Consent.from_row(r) for r in container.characters.consents(principal, character_id)])


@router.get("/{character_id}/uses", response_model=UseList)
def usage_log(character_id: str, principal: CharactersRead, container: ContainerDep) -> UseList:
    """Every video that used your likeness: by whom, when, with what prompt, and its status."""
    return UseList(data=[Use.from_row(r, st) for r, st in container.characters.uses(principal, character_id)])


@router.get("/{character_id}/uses/{video_id}/content", response_class=StreamingResponse)
def use_content(
    character_id: str,
    video_id: str,
    principal: CharactersRead,
    container: ContainerDep,
    variant: Literal["video", "thumbnail", "spritesheet"] = "video",
) -> StreamingResponse:
    """Watch a video that used your likeness, whoever made it."""
    row = container.characters.video_of_likeness(principal, character_id, video_id)
    key = container.videos.content_key(row.owner_id, video_id, variant)
    return StreamingResponse(
        container.blobs.iter_chunks(key),
        media_type=MEDIA_TYPES[variant],
        headers={"Content-Length": str(container.blobs.size(key))},
    )


@router.delete("/{character_id}/uses/{video_id}", response_model=VideoDeleted)
def delete_use(character_id: str, video_id: str, principal: CharactersWrite, container: ContainerDep) -> VideoDeleted:
    """Delete a video that used your likeness, whoever made it."""
    row = container.characters.video_of_likeness(principal, character_id, video_id)
    container.videos.delete(row.owner_id, video_id, actor=principal.id)
    return VideoDeleted(id=video_id)
