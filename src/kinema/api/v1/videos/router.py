"""/v1/videos routes. Thin: parse, call one service method, shape the response."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import RedirectResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from kinema.api.deps import BlobsDep, SettingsDep, VideoServiceDep, VideosRead, VideosWrite
from kinema.api.openapi import body_doc
from kinema.api.v1.videos import serving
from kinema.api.v1.videos.protocol import (
    CreateVideoBody,
    EditBody,
    ExtendBody,
    RemixBody,
    Video,
    VideoDeleted,
    VideoList,
)
from kinema.services.videos import MEDIA_TYPES

router = APIRouter(prefix="/v1/videos", tags=["videos"])


@router.post("", response_model=Video, openapi_extra=body_doc(CreateVideoBody, ("input_reference",)))
async def create_video(
    request: Request, principal: VideosWrite, videos: VideoServiceDep, settings: SettingsDep
) -> Video:
    """Queue a video: text-to-video, or image-to-video with ``input_reference``."""
    body, uploads = await serving.read(
        request, CreateVideoBody, frozenset({"input_reference"}), settings.max_upload_bytes
    )
    return Video.from_row(await run_in_threadpool(videos.create, principal, serving.create_request(body, uploads)))


@router.get("", response_model=VideoList)
def list_videos(
    principal: VideosRead,
    videos: VideoServiceDep,
    after: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    order: Literal["asc", "desc"] = "desc",
) -> VideoList:
    """The caller's videos, newest first unless ``order=asc``."""
    page = videos.list(principal.id, after=after, limit=limit, order=order)
    data = [Video.from_row(r) for r in page.rows]
    return VideoList(
        data=data, first_id=data[0].id if data else None, last_id=data[-1].id if data else None, has_more=page.has_more
    )


@router.post("/edits", response_model=Video, openapi_extra=body_doc(EditBody, ("video",)))
async def edit_video(request: Request, principal: VideosWrite, videos: VideoServiceDep, settings: SettingsDep) -> Video:
    """Queue a video-to-video edit of a completed video or an uploaded clip."""
    body, uploads = await serving.read(request, EditBody, frozenset({"video"}), settings.max_upload_bytes)
    return Video.from_row(await run_in_threadpool(videos.edit, principal, serving.edit_request(body, uploads)))


@router.post("/extensions", response_model=Video, openapi_extra=body_doc(ExtendBody, ("video",)))
async def extend_video(
    request: Request, principal: VideosWrite, videos: VideoServiceDep, settings: SettingsDep
) -> Video:
    """Queue an extension that continues a clip from its last frame."""
    body, uploads = await serving.read(request, ExtendBody, frozenset({"video"}), settings.max_upload_bytes)
    return Video.from_row(await run_in_threadpool(videos.extend, principal, serving.extend_request(body, uploads)))


@router.get("/{video_id}", response_model=Video)
def retrieve_video(
    video_id: str, principal: VideosRead, videos: VideoServiceDep, response: Response, settings: SettingsDep
) -> Video:
    """One video; ``openai-poll-after-ms`` tells ``create_and_poll`` how long to wait."""
    response.headers["openai-poll-after-ms"] = str(settings.poll_after_ms)
    return Video.from_row(videos.get(principal.id, video_id))


@router.delete("/{video_id}", response_model=VideoDeleted)
def delete_video(video_id: str, principal: VideosWrite, videos: VideoServiceDep) -> VideoDeleted:
    """Delete a video and every file it produced."""
    videos.delete(principal.id, video_id)
    return VideoDeleted(id=video_id)


@router.get(
    "/{video_id}/content",
    response_class=StreamingResponse,
    responses={
        200: {"content": {t: {} for t in MEDIA_TYPES.values()}},
        307: {"description": "Only with `KINEMA_S3_PRESIGN_SECONDS`: a short-lived presigned URL of the file."},
    },
)
def download_content(
    video_id: str,
    principal: VideosRead,
    videos: VideoServiceDep,
    blobs: BlobsDep,
    variant: Literal["video", "thumbnail", "spritesheet"] = "video",
) -> Response:
    """The MP4, a WebP thumbnail or a JPEG spritesheet of a completed video."""
    key = videos.content_key(principal.id, video_id, variant)
    blobs = blobs
    ext = {"video": "mp4", "thumbnail": "webp", "spritesheet": "jpg"}[variant]
    url = blobs.download_url(key, filename=f"{video_id}.{ext}", media_type=MEDIA_TYPES[variant])
    if url is not None:  # the owner check above is the authorization; the URL is the bucket's, signed
        return RedirectResponse(url, status_code=307, headers={"Cache-Control": "no-store"})
    size = blobs.size(key)  # before opening, so a deletion in between cannot leave a file handle open
    return StreamingResponse(
        blobs.iter_chunks(key),
        media_type=MEDIA_TYPES[variant],
        headers={
            "Content-Length": str(size),
            "Content-Disposition": f'attachment; filename="{video_id}.{ext}"',
        },
    )


@router.post("/{video_id}/remix", response_model=Video, openapi_extra=body_doc(RemixBody))
async def remix_video(
    video_id: str, request: Request, principal: VideosWrite, videos: VideoServiceDep, settings: SettingsDep
) -> Video:
    """Queue the same settings as a completed video with a new prompt."""
    body, _ = await serving.read(request, RemixBody, frozenset(), settings.max_upload_bytes)
    return Video.from_row(await run_in_threadpool(videos.remix, principal, video_id, body.prompt, body.options()))


@router.post("/{video_id}/cancel", response_model=Video)
def cancel_video(video_id: str, principal: VideosWrite, videos: VideoServiceDep) -> Video:
    """Cancel (Kinema extra): the video ends ``failed`` with error code ``cancelled``."""
    return Video.from_row(videos.cancel(principal.id, video_id))
