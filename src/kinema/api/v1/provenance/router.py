"""/v1/provenance routes: verify a file (Kinema extra)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from kinema.api.body import read_body
from kinema.api.deps import SettingsDep, VerificationServiceDep, VideosRead
from kinema.api.v1.provenance.protocol import Verification
from kinema.services.errors import InvalidRequest

router = APIRouter(prefix="/v1/provenance", tags=["provenance"])


@router.post(
    "/verify",
    response_model=Verification,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {"file": {"type": "string", "format": "binary"}},
                    }
                }
            },
        }
    },
)
async def verify(
    request: Request, principal: VideosRead, settings: SettingsDep, verification: VerificationServiceDep
) -> Verification:
    """C2PA state (trusted / valid_untrusted / tampered / absent), the watermark, and, to its owner or an
    admin, the video."""
    fields, files = await read_body(
        request, file_fields=frozenset({"file"}), max_upload_bytes=settings.max_upload_bytes
    )
    if fields:
        name = next(iter(fields))
        raise InvalidRequest(f"Unknown parameter: '{name}'.", param=name, code="unknown_parameter")
    if "file" not in files:
        raise InvalidRequest(
            "Missing required parameter: 'file' (upload the video or image).",
            param="file",
            code="missing_required_parameter",
        )
    result = await run_in_threadpool(
        verification.verify, files["file"], owner_id=principal.id, operator=principal.is_admin
    )
    return Verification.from_result(result)
