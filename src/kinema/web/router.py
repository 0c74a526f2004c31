"""The studio's pages and form actions. Thin, like the API routes: read the form, call one service method,
render a template or redirect (POST, then 303 to a page, so a reload never repeats an action).

- Signed in means a live ``kinema_session`` cookie, the same one ``POST /v1/auth/login`` sets.
- Every form carries a CSRF token in the hidden field ``csrf_token``: the session's token once signed in
  (the one the API wants in ``X-CSRF-Token``), and before sign-in a random token also kept in the
  ``kinema_form_csrf`` cookie (double submit). A POST without the right token is a 403 and does nothing.
- Another user's video or likeness is a 404 page, exactly like a missing one.
- Templates autoescape everything; no page has inline script (the CSP forbids it).
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.concurrency import run_in_threadpool

from kinema.api.body import read_body
from kinema.api.deps import SESSION_COOKIE, get_client, get_container, is_https
from kinema.api.v1.characters.protocol import PermissionsBody
from kinema.api.v1.videos import serving
from kinema.api.v1.videos.protocol import CreateVideoBody
from kinema.container import Container
from kinema.db.models import UserRow, VideoRow
from kinema.services.auth import DEFAULT_KEY_SCOPES, SCOPES, Principal
from kinema.services.characters import CONSENT_SHA256, CONSENT_TEXT, CONSENT_VERSION, PURPOSES, Permissions
from kinema.services.errors import NotFound, ServiceError, Unauthorized

HERE = Path(__file__).parent
STATIC = HERE / "static"
ASSET_TYPES = {".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml"}
ASSETS: dict[str, Path] = {p.name: p for p in sorted(STATIC.iterdir()) if p.suffix in ASSET_TYPES}
"""The only files served under /assets/: a fixed list made at import, so no path from a request reaches the disk."""

FORM_CSRF_COOKIE = "kinema_form_csrf"
STATUSES = ("queued", "in_progress", "completed", "failed")
PAGE_SIZE = 24

templates = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=True, undefined=StrictUndefined)
templates.filters["when"] = lambda t: time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(float(t)))
router = APIRouter(include_in_schema=False)


@dataclass(frozen=True)
class Viewer:
    """The signed-in user of a page: principal, account row and the session's CSRF token."""

    principal: Principal
    user: UserRow
    csrf: str


# -- helpers -------------------------------------------------------------------------------------


def _viewer(request: Request, container: Container) -> Viewer | None:
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    try:
        principal, csrf = container.accounts.session_principal(cookie)
    except Unauthorized:
        return None
    container.ratelimiter.check(principal)
    return Viewer(principal, container.accounts.get_user(principal.id), csrf)


def _render(request: Request, name: str, viewer: Viewer | None, *, status: int = 200, **context: Any) -> HTMLResponse:
    html = templates.get_template(name).render(
        viewer=viewer,
        path=request.url.path,
        csrf=viewer.csrf if viewer else context.pop("csrf", ""),
        **context,
    )
    return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})


def _to_login(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)


def _safe_next(value: object) -> str:
    """Only a path on this site: never ``//host`` or ``/\\host``, which browsers treat as another origin."""
    text = value if isinstance(value, str) else ""
    if not text.startswith("/") or text.startswith(("//", "/\\")) or any(c in text for c in "\r\n\t"):
        return "/"
    return text


def _token_matches(sent: object, expected: str) -> bool:
    return (
        isinstance(sent, str)
        and bool(sent)
        and bool(expected)
        and hmac.compare_digest(sent.encode(), expected.encode())
    )


def _csrf_refused(request: Request, viewer: Viewer | None) -> HTMLResponse:
    return _render(
        request,
        "error.html",
        viewer,
        status=403,
        title="Form expired",
        message="This form was missing its security token or the token was wrong (code csrf_failed). "
        "Nothing was changed. Go back, reload the page and try again.",
    )


def _not_found(request: Request, viewer: Viewer | None) -> HTMLResponse:
    return _render(
        request, "error.html", viewer, status=404, title="Not found", message="There is nothing here for you."
    )


def _service_error(request: Request, viewer: Viewer | None, exc: ServiceError) -> HTMLResponse:
    return _render(request, "error.html", viewer, status=exc.status, title="Not done", message=exc.message)


async def _form(
    request: Request, container: Container, files: frozenset[str] = frozenset()
) -> tuple[dict[str, Any], dict[str, bytes]]:
    return await read_body(request, file_fields=files, max_upload_bytes=container.settings.max_upload_bytes)


@dataclass(frozen=True)
class _Post:
    """A signed-in user's form POST whose CSRF token matched (the token itself taken out of ``fields``)."""

    container: Container
    viewer: Viewer
    fields: dict[str, Any]
    uploads: dict[str, bytes]


async def _signed_in_post(request: Request, files: frozenset[str] = frozenset()) -> _Post | Response:
    """The form of a signed-in user's POST, or the response that refuses it and changes nothing: the sign-in
    page without a session, a 403 without the session's CSRF token."""
    container = get_container(request)
    viewer = _viewer(request, container)
    if viewer is None:
        return _to_login(request)
    fields, uploads = await _form(request, container, files)
    if not _token_matches(fields.pop("csrf_token", None), viewer.csrf):
        return _csrf_refused(request, viewer)
    return _Post(container, viewer, fields, uploads)


def _set_session_cookie(request: Request, response: Response, container: Container, cookie: str) -> None:
    secure = container.settings.session_cookie_secure
    if secure is None:
        secure = is_https(request, container)
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        httponly=True,
        secure=secure,
        samesite="lax",
        path="/",
        max_age=int(container.settings.session_absolute_seconds),
    )


def _form_token(request: Request) -> str:
    """The pre-sign-in CSRF token: the cookie's, or a new one (set on the response by the caller)."""
    token = request.cookies.get(FORM_CSRF_COOKIE, "")
    return token if len(token) >= 32 else secrets.token_urlsafe(32)


def _anonymous_page(
    request: Request, container: Container, name: str, *, status: int = 200, **ctx: Any
) -> HTMLResponse:
    token = _form_token(request)
    response = _render(request, name, None, status=status, csrf=token, **ctx)
    response.set_cookie(
        FORM_CSRF_COOKIE,
        token,
        httponly=True,
        secure=bool(container.settings.session_cookie_secure) or is_https(request, container),
        samesite="strict",
        path="/",
    )
    return response


# -- assets --------------------------------------------------------------------------------------


@router.get("/assets/{name}")
def asset(name: str) -> FileResponse:
    """One of the studio's own static files (style and script), cached for an hour."""
    path = ASSETS.get(name)
    if path is None:
        raise NotFound("file", name[:80])
    return FileResponse(path, media_type=ASSET_TYPES[path.suffix], headers={"Cache-Control": "public, max-age=3600"})


# -- sign in, sign up, sign out ------------------------------------------------------------------


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request) -> Response:
    container = get_container(request)
    if _viewer(request, container) is not None:
        return RedirectResponse(_safe_next(request.query_params.get("next")), status_code=303)
    return _anonymous_page(
        request,
        container,
        "login.html",
        next=_safe_next(request.query_params.get("next")),
        signed_up=request.query_params.get("signed_up") == "1",
        error=None,
        email="",
    )


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    container = get_container(request)
    fields, _ = await _form(request, container)
    if not _token_matches(fields.get("csrf_token"), request.cookies.get(FORM_CSRF_COOKIE, "")):
        return _csrf_refused(request, None)
    email, password = str(fields.get("email", "")), str(fields.get("password", ""))
    target = _safe_next(fields.get("next"))
    client = get_client(request, container)
    try:
        container.ratelimiter.check_anonymous("login", client.ip)
        new = await run_in_threadpool(
            container.accounts.login, email, password, replaces=request.cookies.get(SESSION_COOKIE), ip=client.ip
        )
    except ServiceError as exc:
        return _anonymous_page(
            request,
            container,
            "login.html",
            status=exc.status,
            next=target,
            signed_up=False,
            error=exc.message,
            email=email,
        )
    response = RedirectResponse(target, status_code=303)
    _set_session_cookie(request, response, container, new.cookie)
    response.delete_cookie(FORM_CSRF_COOKIE, path="/")
    return response


@router.get("/signup", response_class=HTMLResponse)
def signup_page(request: Request) -> Response:
    container = get_container(request)
    return _anonymous_page(
        request, container, "signup.html", error=None, email="", invite_code=request.query_params.get("invite", "")
    )


@router.post("/signup", response_class=HTMLResponse)
async def signup(request: Request) -> Response:
    container = get_container(request)
    fields, _ = await _form(request, container)
    if not _token_matches(fields.get("csrf_token"), request.cookies.get(FORM_CSRF_COOKIE, "")):
        return _csrf_refused(request, None)
    email, code = str(fields.get("email", "")), str(fields.get("invite_code", ""))
    try:
        container.ratelimiter.check_anonymous("signup", get_client(request, container).ip)
        await run_in_threadpool(container.accounts.accept_invite, code, email, str(fields.get("password", "")))
    except ServiceError as exc:
        return _anonymous_page(
            request, container, "signup.html", status=exc.status, error=exc.message, email=email, invite_code=code
        )
    return RedirectResponse("/login?signed_up=1", status_code=303)


@router.post("/logout")
async def logout(request: Request) -> Response:
    container = get_container(request)
    viewer = _viewer(request, container)
    if viewer is None:
        return RedirectResponse("/login", status_code=303)
    fields, _ = await _form(request, container)
    if not _token_matches(fields.get("csrf_token"), viewer.csrf):
        return _csrf_refused(request, viewer)
    container.accounts.logout(request.cookies.get(SESSION_COOKIE, ""))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# -- create --------------------------------------------------------------------------------------


def _catalogue(container: Container) -> list[dict[str, Any]]:
    return [
        {
            "name": spec.name,
            "description": spec.description,
            "sizes": list(spec.sizes),
            "default_size": spec.default_size,
            "seconds": list(spec.seconds),
            "default_seconds": spec.default_seconds,
            "default_steps": spec.default_steps,
            "i2v": "i2v" in spec.tasks,
        }
        for spec in container.registry.specs()
    ]


def _create_page(
    request: Request, container: Container, viewer: Viewer, values: dict[str, Any], *, error: ServiceError | None = None
) -> HTMLResponse:
    models = _catalogue(container)
    chosen = str(values.get("model") or request.query_params.get("model") or container.registry.default)
    model = next((m for m in models if m["name"] == chosen), None) or next(
        m for m in models if m["name"] == container.registry.default
    )
    likenesses = [r for r in container.characters.visible(viewer.principal) if r.status == "active"]
    return _render(
        request,
        "create.html",
        viewer,
        status=error.status if error else 200,
        models=models,
        model=model,
        values=values,
        likenesses=likenesses,
        error=error.message if error else None,
        error_param=error.param if error else None,
    )


@router.get("/", response_class=HTMLResponse)
def home(request: Request) -> Response:
    container = get_container(request)
    if _viewer(request, container) is None:
        return _to_login(request)
    return RedirectResponse("/create", status_code=303)


@router.get("/create", response_class=HTMLResponse)
def create_page(request: Request) -> Response:
    container = get_container(request)
    viewer = _viewer(request, container)
    if viewer is None:
        return _to_login(request)
    return _create_page(request, container, viewer, {})


@router.post("/create", response_class=HTMLResponse)
async def create(request: Request) -> Response:
    form = await _signed_in_post(request, frozenset({"input_reference"}))
    if isinstance(form, Response):
        return form
    container, viewer, fields, uploads = form.container, form.viewer, form.fields, form.uploads
    # An empty field means "the model's default"; an empty file input sends an empty part.
    body = {k: v for k, v in fields.items() if v not in ("", [], None)}
    uploads = {k: v for k, v in uploads.items() if v}
    try:
        parsed = serving.parse(CreateVideoBody, body)
        row = await run_in_threadpool(
            container.videos.create, viewer.principal, serving.create_request(parsed, uploads)
        )
    except ServiceError as exc:
        return _create_page(request, container, viewer, fields, error=exc)
    return RedirectResponse(f"/videos/{row.id}", status_code=303)


# -- library and video pages ---------------------------------------------------------------------


def _filtered_page(
    container: Container, owner: str, status: str | None, after: str | None
) -> tuple[list[VideoRow], bool]:
    """Up to PAGE_SIZE of the owner's videos, newest first, with ``status`` if given."""
    found: list[VideoRow] = []
    cursor = after
    while True:
        page = container.videos.list(owner, after=cursor, limit=100, order="desc")
        for row in page.rows:
            if status is None or row.status == status:
                found.append(row)
                if len(found) > PAGE_SIZE:
                    return found[:PAGE_SIZE], True
        if not page.has_more or not page.rows:
            return found, False
        cursor = page.rows[-1].id


@router.get("/videos", response_class=HTMLResponse)
def library(request: Request) -> Response:
    container = get_container(request)
    viewer = _viewer(request, container)
    if viewer is None:
        return _to_login(request)
    status = request.query_params.get("status") or None
    if status not in (None, *STATUSES):
        status = None
    after = request.query_params.get("after") or None
    try:
        rows, more = _filtered_page(container, viewer.principal.id, status, after)
    except ServiceError as exc:
        return _service_error(request, viewer, exc)
    next_url = None
    if more and rows:
        next_url = "/videos?" + urlencode({k: v for k, v in (("status", status), ("after", rows[-1].id)) if v})
    return _render(
        request,
        "library.html",
        viewer,
        videos=rows,
        filter_status=status,
        statuses=STATUSES,
        next_url=next_url,
        after=after,
    )


@router.get("/videos/{video_id}", response_class=HTMLResponse)
def video_page(video_id: str, request: Request) -> Response:
    container = get_container(request)
    viewer = _viewer(request, container)
    if viewer is None:
        return _to_login(request)
    try:
        row = container.videos.get(viewer.principal.id, video_id)
    except NotFound:
        return _not_found(request, viewer)
    return _render(request, "video.html", viewer, video=row, poll_ms=container.settings.poll_after_ms)


async def _video_action(request: Request, video_id: str, action: str) -> Response:
    form = await _signed_in_post(request)
    if isinstance(form, Response):
        return form
    container, viewer, fields = form.container, form.viewer, form.fields
    try:
        if action == "delete":
            await run_in_threadpool(container.videos.delete, viewer.principal.id, video_id)
            return RedirectResponse(_safe_next(fields.get("next") or "/videos"), status_code=303)
        await run_in_threadpool(container.videos.cancel, viewer.principal.id, video_id)
    except NotFound:
        return _not_found(request, viewer)
    except ServiceError as exc:
        return _service_error(request, viewer, exc)
    return RedirectResponse(f"/videos/{video_id}", status_code=303)


@router.post("/videos/{video_id}/delete")
async def delete_video(video_id: str, request: Request) -> Response:
    return await _video_action(request, video_id, "delete")


@router.post("/videos/{video_id}/cancel")
async def cancel_video(video_id: str, request: Request) -> Response:
    return await _video_action(request, video_id, "cancel")


# -- my likeness ---------------------------------------------------------------------------------


@router.get("/likeness", response_class=HTMLResponse)
def likeness_page(request: Request) -> Response:
    container = get_container(request)
    viewer = _viewer(request, container)
    if viewer is None:
        return _to_login(request)
    chars = container.characters
    mine = next((r for r in chars.visible(viewer.principal) if r.owner_id == viewer.principal.id), None)
    consents = chars.consents(viewer.principal, mine.id) if mine else []
    uses = chars.uses(viewer.principal, mine.id) if mine else []
    return _render(
        request,
        "likeness.html",
        viewer,
        mine=mine,
        consents=consents,
        uses=uses,
        consent_text=CONSENT_TEXT,
        consent_version=CONSENT_VERSION,
        consent_sha256=CONSENT_SHA256,
        purposes=PURPOSES,
        max_retention_days=chars.max_retention_days,
    )


@router.post("/likeness/{character_id}/{action}")
async def likeness_action(character_id: str, action: str, request: Request) -> Response:
    """permissions, revoke or delete the caller's likeness."""
    container = get_container(request)
    viewer = _viewer(request, container)
    if viewer is None:
        return _to_login(request)
    if action not in ("permissions", "revoke", "delete"):
        return _not_found(request, viewer)
    fields, _ = await _form(request, container)
    if not _token_matches(fields.get("csrf_token"), viewer.csrf):
        return _csrf_refused(request, viewer)
    chars = container.characters
    try:
        chars.owned(viewer.principal, character_id)
        if action == "revoke":
            await run_in_threadpool(chars.revoke, viewer.principal, character_id)
        elif action == "delete":
            keep = fields.get("keep_videos") == "on"
            await run_in_threadpool(chars.delete, viewer.principal, character_id, keep_videos=keep)
        else:
            allowed = [u for u in str(fields.get("allowed_users", "")).replace(",", " ").split() if u]
            body = serving.parse(
                PermissionsBody,
                {
                    "visibility": fields.get("visibility", "private"),
                    "allowed_users": allowed,
                    "restrictions": str(fields.get("restrictions") or "") or None,
                },
            )
            perms = Permissions(
                visibility=body.visibility,
                allowed_users=body.allowed_users,
                expires_at=None,
                restrictions=body.restrictions,
            )
            await run_in_threadpool(chars.set_permissions, viewer.principal, character_id, perms)
    except NotFound:
        return _not_found(request, viewer)
    except ServiceError as exc:
        return _service_error(request, viewer, exc)
    return RedirectResponse("/likeness", status_code=303)


@router.post("/likeness/{character_id}/uses/{video_id}/delete")
async def delete_use(character_id: str, video_id: str, request: Request) -> Response:
    """Delete a video that used the caller's likeness, whoever made it."""
    form = await _signed_in_post(request)
    if isinstance(form, Response):
        return form
    container, viewer = form.container, form.viewer
    try:
        row = container.characters.video_of_likeness(viewer.principal, character_id, video_id)
        await run_in_threadpool(container.videos.delete, row.owner_id, video_id, actor=viewer.principal.id)
    except NotFound:
        return _not_found(request, viewer)
    except ServiceError as exc:
        return _service_error(request, viewer, exc)
    return RedirectResponse("/likeness", status_code=303)


# -- API keys and alerts -------------------------------------------------------------------------


def _keys_page(request: Request, container: Container, viewer: Viewer, **extra: Any) -> HTMLResponse:
    return _render(
        request,
        "keys.html",
        viewer,
        keys=container.keys.list(viewer.principal.id),
        alerts=container.accounts.alerts(viewer.principal.id),
        scopes={s: d for s, d in SCOPES.items() if s in viewer.principal.scopes},
        default_scopes=DEFAULT_KEY_SCOPES,
        now=time.time(),
        status=extra.pop("status", 200),
        **{"created": None, "error": None, **extra},
    )


@router.get("/keys", response_class=HTMLResponse)
def keys_page(request: Request) -> Response:
    container = get_container(request)
    viewer = _viewer(request, container)
    if viewer is None:
        return _to_login(request)
    return _keys_page(request, container, viewer)


@router.post("/keys", response_class=HTMLResponse)
async def create_key(request: Request) -> Response:
    form = await _signed_in_post(request)
    if isinstance(form, Response):
        return form
    container, viewer, fields = form.container, form.viewer, form.fields
    scopes = fields.get("scopes") or []
    try:
        new = await run_in_threadpool(
            container.keys.create,
            viewer.principal.id,
            str(fields.get("name", "")),
            scopes=list(scopes) if isinstance(scopes, list) else [str(scopes)],
            granted_by=viewer.principal,
        )
    except ServiceError as exc:
        return _keys_page(request, container, viewer, status=exc.status, error=exc.message)
    return _keys_page(request, container, viewer, created=new.secret)


@router.post("/keys/{key_id}/revoke")
async def revoke_key(key_id: str, request: Request) -> Response:
    form = await _signed_in_post(request)
    if isinstance(form, Response):
        return form
    container, viewer = form.container, form.viewer
    try:
        await run_in_threadpool(container.keys.revoke, viewer.principal.id, viewer.principal.id, key_id)
    except NotFound:
        return _not_found(request, viewer)
    except ServiceError as exc:
        return _service_error(request, viewer, exc)
    return RedirectResponse("/keys", status_code=303)
