"""What every studio page shares: the signed-in viewer, rendering a template, the CSRF check of a signed-in
form, and the error pages (403 for a bad form token, 404 for what is not the viewer's, the service's own
errors). The page modules (:mod:`kinema.web.router`, :mod:`kinema.web.admin`) stay thin on top of these.
"""

from __future__ import annotations

import hmac
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from kinema.api.body import read_body
from kinema.api.deps import SESSION_COOKIE, get_container
from kinema.container import Container
from kinema.db.models import UserRow
from kinema.services.auth import Principal
from kinema.services.errors import ServiceError, Unauthorized

HERE = Path(__file__).parent

templates = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=True, undefined=StrictUndefined)
templates.filters["when"] = lambda t: time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(float(t)))


@dataclass(frozen=True)
class Viewer:
    """The signed-in user of a page: principal, account row and the session's CSRF token."""

    principal: Principal
    user: UserRow
    csrf: str


def current_viewer(request: Request, container: Container) -> Viewer | None:
    """The user of the request's live session cookie (rate limited like an API call), or None."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    try:
        principal, csrf = container.web_sessions.session_principal(cookie)
    except Unauthorized:
        return None
    container.ratelimiter.check(principal)
    return Viewer(principal, container.users.get_user(principal.id), csrf)


def render(request: Request, name: str, viewer: Viewer | None, *, status: int = 200, **context: Any) -> HTMLResponse:
    """A template as an uncached page; ``csrf`` is the viewer's token (or the caller's pre-sign-in one)."""
    html = templates.get_template(name).render(
        viewer=viewer,
        path=request.url.path,
        csrf=viewer.csrf if viewer else context.pop("csrf", ""),
        **context,
    )
    return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})


def to_login(request: Request) -> RedirectResponse:
    """To the sign-in page, coming back to this page after."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)


def safe_next(value: object) -> str:
    """Only a path on this site: never ``//host`` or ``/\\host``, which browsers treat as another origin."""
    text = value if isinstance(value, str) else ""
    if not text.startswith("/") or text.startswith(("//", "/\\")) or any(c in text for c in "\r\n\t"):
        return "/"
    return text


def token_matches(sent: object, expected: str) -> bool:
    """A non-empty sent token equal to the non-empty expected one (compared in constant time)."""
    return (
        isinstance(sent, str)
        and bool(sent)
        and bool(expected)
        and hmac.compare_digest(sent.encode(), expected.encode())
    )


def csrf_refused(request: Request, viewer: Viewer | None) -> HTMLResponse:
    """The 403 page for a form without the right CSRF token."""
    return render(
        request,
        "error.html",
        viewer,
        status=403,
        title="Form expired",
        message="This form was missing its security token or the token was wrong (code csrf_failed). "
        "Nothing was changed. Go back, reload the page and try again.",
    )


def not_found(request: Request, viewer: Viewer | None) -> HTMLResponse:
    """The 404 page: for what is missing and for what is someone else's alike."""
    return render(
        request, "error.html", viewer, status=404, title="Not found", message="There is nothing here for you."
    )


def service_error(request: Request, viewer: Viewer | None, exc: ServiceError) -> HTMLResponse:
    """A service's refusal as a page, with its status and message."""
    return render(request, "error.html", viewer, status=exc.status, title="Not done", message=exc.message)


async def read_form(
    request: Request, container: Container, files: frozenset[str] = frozenset()
) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The form's fields and its uploads (only under ``files``), bounded by the upload limit."""
    return await read_body(request, file_fields=files, max_upload_bytes=container.settings.max_upload_bytes)


@dataclass(frozen=True)
class Post:
    """A signed-in user's form POST whose CSRF token matched (the token itself taken out of ``fields``)."""

    container: Container
    viewer: Viewer
    fields: dict[str, Any]
    uploads: dict[str, bytes]


def signed_in(request: Request, *, admin: bool = False) -> tuple[Container, Viewer] | Response:
    """The container and the signed-in viewer, or the response for anyone else: the sign-in page without a
    session, a 404 for a non-admin when ``admin``."""
    container = get_container(request)
    viewer = current_viewer(request, container)
    if viewer is None:
        return to_login(request)
    if admin and not viewer.principal.is_admin:
        return not_found(request, viewer)
    return container, viewer


async def signed_in_post(
    request: Request, files: frozenset[str] = frozenset(), *, admin: bool = False
) -> Post | Response:
    """The form of a signed-in user's POST, or the response that refuses it and changes nothing: the sign-in
    page without a session, a 404 for a non-admin when ``admin`` (before the form is read), a 403 without
    the session's CSRF token."""
    found = signed_in(request, admin=admin)
    if isinstance(found, Response):
        return found
    container, viewer = found
    fields, uploads = await read_form(request, container, files)
    if not token_matches(fields.pop("csrf_token", None), viewer.csrf):
        return csrf_refused(request, viewer)
    return Post(container, viewer, fields, uploads)
