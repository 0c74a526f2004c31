"""The OpenAPI document at /openapi.json, made valid and truthful.

FastAPI's own document describes what FastAPI parses; Kinema parses JSON-or-multipart bodies by hand,
answers validation errors with 400 (not 422) and every error in the OpenAI envelope, and needs a key
or a session on most routes. :func:`install_openapi` finishes the document so that it says so:

- the request bodies read by hand (declared with :func:`body_doc`), their nested models included;
- on every operation, the error statuses it can answer, each with the ``Error`` envelope schema;
- the two security schemes (``Authorization: Bearer kin_...`` and the ``kinema_session`` cookie) and
  which operations need them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import RouteContext, iter_route_contexts

from kinema.api.deps import get_principal, require_admin, require_session

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Every error Kinema returns, as the OpenAI API shapes it.",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "param", "code"],
            "properties": {
                "message": {"type": "string", "description": "What was wrong and what to do."},
                "type": {"type": "string", "description": "invalid_request_error, server_error, ..."},
                "param": {"type": ["string", "null"], "description": "The request field at fault, if one is."},
                "code": {"type": ["string", "null"], "description": "A machine-readable reason."},
            },
        }
    },
}
DESCRIPTIONS = {
    400: "Invalid request: the message names the field (``param``) and what is wrong.",
    401: "Missing, unknown, revoked, suspended or expired credentials, or an ended session.",
    403: "Authenticated, but not allowed: missing scope, not an admin, a disallowed address, or CSRF failure.",
    404: "No such object (or not yours: other users' objects are never revealed).",
    409: "The object is in the wrong state for this request (for example a video not yet completed).",
    413: "The request body or an uploaded file is over the configured size.",
    415: "An uploaded file is not an accepted image or video format.",
    429: "Rate limit, quota or concurrent-job limit reached; see Retry-After.",
    500: "An unexpected server error (logged on the server).",
    503: "Generation is paused or the server is busy; see Retry-After.",
}
SECURITY_SCHEMES: dict[str, Any] = {
    "apiKey": {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key (kin_...) in 'Authorization: Bearer <key>'. Its scopes decide what it may do.",
    },
    "session": {
        "type": "apiKey",
        "in": "cookie",
        "name": "kinema_session",
        "description": "A browser session from POST /v1/auth/login. Requests that change something must also "
        "send the session's CSRF token in the X-CSRF-Token header.",
    },
}
UPLOAD_STATUSES = (413, 415, 429, 503)  # uploads are decoded in a bounded pool: busy is 429 or 503
GENERATION = frozenset({"/v1/videos", "/v1/videos/edits", "/v1/videos/extensions"})


def body_doc(model: type[Any], files: tuple[str, ...] = ()) -> dict[str, Any]:
    """``openapi_extra`` for a route that reads its JSON or multipart body itself (see kinema.api.body).

    In multipart, each of ``files`` is a file part; nested objects travel as bracketed fields
    (``video[id]``), as the openai SDK sends them.
    """
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    form = {
        **schema,
        "properties": {**schema.get("properties", {}), **{f: {"type": "string", "format": "binary"} for f in files}},
    }
    form.pop("$defs", None)
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": schema}, "multipart/form-data": {"schema": form}},
        }
    }


def install_openapi(app: FastAPI) -> None:
    """Replace ``app.openapi`` with one that builds (once) the finished document."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            finish(schema, _routes(app))
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _routes(app: FastAPI) -> dict[tuple[str, str], RouteContext]:
    # FastAPI's view of the included routers' effective routes (with the routers' own dependencies).
    return {
        (method.lower(), route.path_format or route.path or ""): route
        for route in iter_route_contexts(app.routes)
        if hasattr(route, "dependant")
        for method in route.methods or ()
    }


def _calls(route: RouteContext) -> set[Callable[..., Any]]:
    found: set[Callable[..., Any]] = set()
    stack = list(route.dependant.dependencies)
    while stack:
        dep = stack.pop()
        if dep.call is not None:
            found.add(dep.call)
        stack.extend(dep.dependencies)
    return found


def _operations(schema: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in schema.get("paths", {}).items():
        for method, op in item.items():
            if isinstance(op, dict) and method in {"get", "put", "post", "delete", "patch", "head", "options"}:
                yield path, method, op


def finish(schema: dict[str, Any], routes: dict[tuple[str, str], RouteContext]) -> None:
    """Complete FastAPI's document in place (see the module docstring)."""
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    schemas["Error"] = ERROR_SCHEMA
    components["securitySchemes"] = SECURITY_SCHEMES
    for path, method, op in _operations(schema):
        _hoist_defs(op, schemas)
        route = routes.get((method, path))
        calls = _calls(route) if route is not None else set()
        authed = get_principal in calls
        if authed:
            op["security"] = [{"apiKey": []}, {"session": []}]
            if require_session in calls:  # a password-only operation: an API key is refused with 403
                op["security"] = [{"session": []}]
        else:
            op["security"] = []
        responses = op.setdefault("responses", {})
        responses.pop("422", None)
        for status in sorted(_error_statuses(path, method, op, authed=authed, admin=require_admin in calls)):
            responses.setdefault(
                str(status),
                {
                    "description": DESCRIPTIONS[status],
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                },
            )


def _hoist_defs(op: dict[str, Any], schemas: dict[str, Any]) -> None:
    """Move the nested models of a hand-declared body (pydantic's ``$defs``) into the components."""
    for media in op.get("requestBody", {}).get("content", {}).values():
        for name, definition in media.get("schema", {}).pop("$defs", {}).items():
            schemas.setdefault(name, definition)


def _error_statuses(path: str, method: str, op: dict[str, Any], *, authed: bool, admin: bool) -> set[int]:
    """The error statuses this operation can answer."""
    statuses = {500}
    has_input = bool(op.get("parameters")) or "requestBody" in op
    if has_input:
        statuses |= {400}
    if "{" in path or "requestBody" in op:
        statuses |= {404, 409}  # an id in the path, or one referenced in the body (video.id, characters)
    if "requestBody" in op or method in {"post", "put", "patch", "delete"}:
        statuses |= {400, 413}  # any body is read under the size cap
    if "multipart/form-data" in op.get("requestBody", {}).get("content", {}):
        statuses |= set(UPLOAD_STATUSES)
    if authed:
        statuses |= {401, 403, 429}
    if path.startswith("/v1/auth/"):
        statuses |= {400, 401, 429}  # wrong credentials or invite; sign-in attempts are rate limited
    if method == "post" and (path in GENERATION or path.endswith("/remix")):
        statuses |= {503}  # generation paused
    if path == "/readyz":
        statuses |= {503}
    return statuses
