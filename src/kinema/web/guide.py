"""``POST /likeness/guide``: the live face guide of the webcam enrolment page (static/enrol.js).

While the camera runs, the page sends a small unmirrored frame (JPEG, PNG or WebP, at most ``MAX_FRAME_SIDE``
px and ``MAX_FRAME_BYTES``) a few times a second as the raw request body, with ``?target=straight|left|right``
and, once measured, the resting yaw ``?rest=``; the answer is the face box, the yaw and a hint
(:mod:`kinema.faces.guide`).

A studio route, not an API one: the OpenAI-shaped API stays as it is, and only a signed-in browser uses it
(the session cookie and its ``X-CSRF-Token``; no API key). Errors are the API's JSON envelope, since the page
reads them with fetch. Frames are decoded and analysed in memory and dropped with the request: never stored,
never logged. The guide has its own per-second limit (``GUIDE_PER_SECOND`` per user) instead of the per-minute
API limit, which a few frames a second would use up; its own ``FaceAnalyzer`` keeps it from queueing behind
an enrolment clip's analysis (and the other way round). A frame costs about 0.05 s of one core at 320 x 240 px
(``FaceAnalyzer.locate``: no descriptor).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Final, get_args

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from limits import RateLimitItemPerSecond
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter
from starlette.concurrency import run_in_threadpool

from kinema.api.deps import SESSION_COOKIE, get_container
from kinema.container import Container
from kinema.faces import FaceAnalyzer
from kinema.faces.guide import Guidance, Target, guide
from kinema.media.errors import MediaError
from kinema.media.images import decode_image
from kinema.services.auth import Principal
from kinema.services.errors import (
    Forbidden,
    InvalidRequest,
    PayloadTooLarge,
    RateLimited,
    Unauthorized,
    from_media_error,
)
from kinema.web.pages import token_matches

GUIDE_PATH: Final = "/likeness/guide"
MAX_FRAME_BYTES: Final = 96 * 1024
"""Largest frame accepted: a 320 x 240 JPEG is 10-25 KB."""
MAX_FRAME_SIDE: Final = 640
"""Longest side of a frame accepted, in px (the page sends at most 320)."""
GUIDE_PER_SECOND: Final = 6
"""Frames per second per user (the page sends at most 4)."""
MAX_REST: Final = 1.0
"""Largest resting yaw accepted (a yaw of 1 is a face seen from the side)."""

router = APIRouter(include_in_schema=False)


class _Guides:
    """One analyzer and one per-second limiter per container (a process has one), made on first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._made: dict[int, tuple[Container, FaceAnalyzer, MovingWindowRateLimiter]] = {}

    def get(self, container: Container) -> tuple[FaceAnalyzer, MovingWindowRateLimiter]:
        with self._lock:
            made = self._made.get(id(container))
            if made is None or made[0] is not container:
                models_dir: Path | None = container.settings.face_models_dir
                storage = storage_from_string(container.ratelimiter.storage_uri)
                made = (container, FaceAnalyzer(models_dir), MovingWindowRateLimiter(storage))
                self._made[id(container)] = made
            return made[1], made[2]


_guides = _Guides()
_LIMIT = RateLimitItemPerSecond(GUIDE_PER_SECOND, namespace="kinema-guide")


def _principal(request: Request, container: Container) -> Principal:
    """The signed-in user of this fetch, refused without a session (401) or without its CSRF token (403)."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        raise Unauthorized("Sign in first: the face guide needs a signed-in studio session.", code="not_signed_in")
    principal, csrf = container.web_sessions.session_principal(cookie)
    if not token_matches(request.headers.get("x-csrf-token"), csrf):
        raise Forbidden(
            "Missing or wrong X-CSRF-Token header: send the page's CSRF token with every frame.", code="csrf_failed"
        )
    return principal


def _query(request: Request) -> tuple[Target, float | None]:
    target = request.query_params.get("target", "straight")
    if target not in get_args(Target):
        raise InvalidRequest(
            f"Invalid 'target': {target[:20]!r}; use straight, left or right.", param="target", code="invalid_value"
        )
    raw = request.query_params.get("rest")
    if raw is None:
        return target, None  # type: ignore[return-value]  # checked against Target's values above
    try:
        rest = float(raw)
    except ValueError:
        rest = float("nan")
    if not -MAX_REST <= rest <= MAX_REST:  # also refuses nan
        raise InvalidRequest(
            f"Invalid 'rest': a number between -{MAX_REST} and {MAX_REST}.", param="rest", code="invalid_value"
        )
    return target, rest  # type: ignore[return-value]  # checked against Target's values above


async def _frame(request: Request) -> bytes:
    """The body, read no further than ``MAX_FRAME_BYTES`` (also for a chunked or lying upload)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_FRAME_BYTES:
        raise _too_big()
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > MAX_FRAME_BYTES:
            raise _too_big()
    if not data:
        raise InvalidRequest("Send one camera frame (JPEG, PNG or WebP) as the body.", param="frame", code="no_frame")
    return bytes(data)


def _too_big() -> PayloadTooLarge:
    return PayloadTooLarge(
        f"Invalid 'frame': frames may be at most {MAX_FRAME_BYTES} bytes; send a small JPEG "
        f"(at most {MAX_FRAME_SIDE} px).",
        param="frame",
        code="file_too_large",
    )


def _analyse(analyzer: FaceAnalyzer, data: bytes, target: Target, rest: float | None) -> Guidance:
    import numpy as np

    try:
        image = decode_image(data, max_bytes=MAX_FRAME_BYTES, max_pixels=MAX_FRAME_SIDE * MAX_FRAME_SIDE)
    except MediaError as exc:
        raise from_media_error(exc, "frame") from None
    if max(image.size) > MAX_FRAME_SIDE:
        raise InvalidRequest(
            f"Invalid 'frame': {image.size[0]} x {image.size[1]} px; send at most {MAX_FRAME_SIDE} px a side.",
            param="frame",
            code="too_many_pixels",
        )
    return guide(analyzer, np.asarray(image), target, rest)


@router.post(GUIDE_PATH)
async def face_guide(request: Request) -> JSONResponse:
    """Where the face is in one camera frame and what the person should do next; see the module docstring."""
    container = get_container(request)
    principal = _principal(request, container)
    analyzer, limiter = _guides.get(container)
    if not limiter.hit(_LIMIT, principal.id):
        raise RateLimited(
            f"Too many guide frames: at most {GUIDE_PER_SECOND} a second.", code="rate_limit_exceeded", retry_after=1
        )
    target, rest = _query(request)
    data = await _frame(request)
    result = await run_in_threadpool(_analyse, analyzer, data, target, rest)
    body: dict[str, Any] = {
        "object": "enrolment.guide",
        "hint": result.hint,
        "message": result.message,
        "box": None if result.box is None else dict(zip(("left", "top", "right", "bottom"), result.box, strict=True)),
        "yaw": result.yaw,
        "turn": result.turn,
    }
    return JSONResponse(body, headers={"Cache-Control": "no-store"})
