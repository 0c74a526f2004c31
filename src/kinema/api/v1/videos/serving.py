"""Turn parsed wire bodies into service calls: validation errors, uploads and data URLs."""

from __future__ import annotations

import base64
import binascii
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from kinema.api.body import read_body
from kinema.api.errors import validation_message
from kinema.api.v1.videos.protocol import CreateVideoBody, EditBody, ExtendBody, ImageReference, VideoReference
from kinema.services.errors import InvalidRequest
from kinema.services.options import CreateVideo, EditVideo, ExtendVideo, VideoSource

M = TypeVar("M", bound=BaseModel)


def parse(model: type[M], fields: dict[str, Any]) -> M:
    """Validate ``fields`` into ``model``; the first problem becomes a 400 naming the field."""
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        message, param, code = validation_message(tuple(first["loc"]), first["msg"], first["type"])
        raise InvalidRequest(message, param=param, code=code) from None


async def read(request: Request, model: type[M], files: frozenset[str], max_bytes: int) -> tuple[M, dict[str, bytes]]:
    """Read and validate a JSON or multipart body; uploaded files are returned apart."""
    fields, uploads = await read_body(request, file_fields=files, max_upload_bytes=max_bytes)
    return parse(model, fields), uploads


def create_request(body: CreateVideoBody, uploads: dict[str, bytes]) -> CreateVideo:
    """The service request for ``POST /v1/videos``."""
    image = uploads.get("input_reference")
    if body.input_reference is not None:
        if image is not None:
            raise InvalidRequest(
                "Send input_reference either as a file or as an object, not both.", param="input_reference"
            )
        image = _image_from_reference(body.input_reference)
    return CreateVideo(
        prompt=body.prompt,
        model=body.model,
        seconds=body.seconds,
        size=body.size,
        image=image,
        characters=list(body.characters or []),
        options=body.options(),
        likeness_mode=body.likeness_mode,
    )


def edit_request(body: EditBody, uploads: dict[str, bytes]) -> EditVideo:
    """The service request for ``POST /v1/videos/edits``."""
    return EditVideo(prompt=body.prompt, source=_source(body.video, uploads), model=body.model, options=body.options())


def extend_request(body: ExtendBody, uploads: dict[str, bytes]) -> ExtendVideo:
    """The service request for ``POST /v1/videos/extensions``."""
    return ExtendVideo(
        prompt=body.prompt,
        seconds=body.seconds,
        source=_source(body.video, uploads),
        model=body.model,
        options=body.options(),
    )


def _source(ref: VideoReference | None, uploads: dict[str, bytes]) -> VideoSource:
    upload = uploads.get("video")
    if (ref is None) == (upload is None):
        raise InvalidRequest(
            'Give \'video\' as a reference to a completed video ({"id": "video_..."}) or as an uploaded file.',
            param="video",
            code="missing_required_parameter" if ref is None else "invalid_value",
        )
    return VideoSource(video_id=ref.id if ref else None, upload=upload)


def _image_from_reference(ref: ImageReference) -> bytes:
    if ref.file_id is not None:
        raise InvalidRequest(
            "input_reference.file_id is not supported: Kinema has no Files API. Upload the image as a file "
            "or send it as a base64 data URL in input_reference.image_url.",
            param="input_reference.file_id",
            code="unsupported_value",
        )
    url = ref.image_url or ""
    if not url.startswith("data:") or ";base64," not in url:
        raise InvalidRequest(
            "input_reference.image_url must be a base64 data URL (data:image/png;base64,...); "
            "Kinema never fetches remote URLs.",
            param="input_reference.image_url",
            code="unsupported_value",
        )
    try:
        return base64.b64decode(url.split(";base64,", 1)[1], validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest(
            "input_reference.image_url is not valid base64.", param="input_reference.image_url", code="invalid_value"
        ) from None
