"""One error shape for every failure: ``{"error": {"message", "type", "param", "code"}}``."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from kinema.api.headers import security_headers
from kinema.blobs import BlobNotFound, BlobStoreUnavailable
from kinema.services.errors import ServiceError

log = logging.getLogger(__name__)


def envelope(
    status: int,
    message: str,
    *,
    type: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """A JSON error response in the OpenAI envelope."""
    body = {"error": {"message": message, "type": type, "param": param, "code": code}}
    return JSONResponse(body, status_code=status, headers=dict(headers) if headers else None)


PRIVILEGED_FIELDS = frozenset(
    {"owner", "owner_id", "user_id", "role", "roles", "is_admin", "admin", "quota", "quotas", "limits", "cohort"}
)
"""Fields a client might try to slip into a body to escalate; refused with their own code."""


def validation_message(loc: tuple[str | int, ...], msg: str, kind: str) -> tuple[str, str | None, str]:
    """(message, param, code) for one pydantic error, worded like the hosted API's."""
    parts = [str(p) for p in loc if p not in ("body", "query", "path")]
    param = ".".join(parts) or None
    if kind == "missing":
        return f"Missing required parameter: '{param}'.", param, "missing_required_parameter"
    if kind == "extra_forbidden":
        if parts and parts[-1] in PRIVILEGED_FIELDS:
            return (
                f"Parameter '{param}' cannot be set in a request: ownership, roles and quotas are decided "
                "by the server (admins change them through the admin API).",
                param,
                "forbidden_parameter",
            )
        return f"Unknown parameter: '{param}'.", param, "unknown_parameter"
    return f"Invalid value for '{param}': {msg}.", param, "invalid_value"


def allowed_methods(request: Request) -> str:
    """The methods served at this path's route template (Starlette's own 405 names only one route's).

    The first route that matches decides the template: ``/v1/videos/characters`` is the characters
    collection, not a video whose id is "characters"."""
    methods: set[str] = set()
    template: str | None = None
    for route in iter_route_contexts(request.app.routes):
        match, _ = route.matches(request.scope)
        if match != Match.NONE and template in (None, route.path_format):
            template = route.path_format
            methods |= set(route.methods or ())
    return ", ".join(sorted(methods))


def install_error_handlers(app: FastAPI) -> None:
    """Route every exception the API can raise to the envelope with the right status."""

    @app.exception_handler(ServiceError)
    async def _service(_: Request, exc: ServiceError) -> JSONResponse:
        # The SDK retries 409s by default; a video that is not ready, or a refusal, does not change by
        # retrying at once, so say so (the SDK honours x-should-retry).
        headers = {**exc.headers, "x-should-retry": "true" if exc.retryable else "false"}
        return envelope(exc.status, exc.message, type=exc.type, param=exc.param, code=exc.code, headers=headers)

    @app.exception_handler(BlobNotFound)
    async def _blob(_: Request, exc: BlobNotFound) -> JSONResponse:
        # A file removed between the row read and the file read: the video was deleted meanwhile.
        return envelope(
            404, "The requested content no longer exists.", code="not_found", headers={"x-should-retry": "false"}
        )

    @app.exception_handler(BlobStoreUnavailable)
    async def _blob_store_down(_: Request, exc: BlobStoreUnavailable) -> JSONResponse:
        # The details (bucket, store error code) go to the log, not to the client.
        log.warning("blob store unavailable: %s", exc)
        return envelope(
            503,
            "The storage service is unavailable at the moment. Please retry shortly.",
            type="server_error",
            code="storage_unavailable",
            headers={"Retry-After": "5", "x-should-retry": "true"},
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        message, param, code = validation_message(tuple(first["loc"]), first["msg"], first["type"])
        return envelope(400, message, param=param, code=code)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if isinstance(exc.detail, dict) and "message" in exc.detail:
            d = exc.detail
            return envelope(
                exc.status_code,
                d["message"],
                type=d.get("type", "invalid_request_error"),
                param=d.get("param"),
                code=d.get("code"),
                headers=exc.headers,
            )
        message, code = str(exc.detail), None
        if exc.status_code == 404:
            message, code = f"Unknown path: {request.url.path[:200]} (the API is described at /docs).", "not_found"
        elif exc.status_code == 405:
            allowed = allowed_methods(request)
            message = f"Method {request.method} is not allowed on this path; allowed: {allowed}."
            code = "method_not_allowed"
            return envelope(405, message, code=code, headers={"Allow": allowed})
        return envelope(exc.status_code, message, code=code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        # Sent from outside the middleware stack, so it carries the security headers itself.
        return envelope(
            500,
            "The server hit an unexpected error; it has been logged. Please retry.",
            type="server_error",
            code="internal_error",
            headers=security_headers("application/json", https=False),
        )
