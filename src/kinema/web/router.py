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

import inspect
import secrets
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from kinema.api.deps import SESSION_COOKIE, get_client, get_container, is_https
from kinema.api.v1.characters.protocol import PermissionsBody
from kinema.api.v1.provenance.protocol import Verification
from kinema.api.v1.videos import serving
from kinema.api.v1.videos.protocol import CreateVideoBody, EditBody, ExtendBody, RemixBody
from kinema.container import Container
from kinema.db.models import VideoRow
from kinema.engine.registry import UnknownModel
from kinema.media.previews import make_spritesheet, spritesheet_grid
from kinema.services.auth import DEFAULT_KEY_SCOPES, SCOPES
from kinema.services.characters import CONSENT_SHA256, CONSENT_TEXT, CONSENT_VERSION, PURPOSES, Permissions
from kinema.services.errors import InvalidRequest, NotFound, ServiceError
from kinema.web import account, admin, guide
from kinema.web.pages import (
    HERE,
    Viewer,
    csrf_refused,
    current_viewer,
    not_found,
    read_form,
    render,
    safe_next,
    service_error,
    signed_in,
    signed_in_post,
    to_login,
    token_matches,
)

STATIC = HERE / "static"
ASSET_TYPES = {".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml"}
ASSETS: dict[str, Path] = {p.name: p for p in sorted(STATIC.iterdir()) if p.suffix in ASSET_TYPES}
"""The only files served under /assets/: a fixed list made at import, so no path from a request reaches the disk."""

FORM_CSRF_COOKIE = "kinema_form_csrf"
STATUSES = ("queued", "in_progress", "completed", "failed")
PAGE_SIZE = 24

router = APIRouter(include_in_schema=False)
router.include_router(admin.router)  # /admin/...: the admin pages, admins only
router.include_router(account.router)  # /account: alerts, export my data, delete my account
router.include_router(guide.router)  # /likeness/guide: the live face guide of webcam enrolment


# -- sign-in helpers ------------------------------------------------------------------------------


def _set_session_cookie(request: Request, response: Response, container: Container, cookie: str) -> None:
    secure = container.settings.session_cookie_secure
    if secure is None:
        secure = is_https(request, container.trusted_proxies)
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
    response = render(request, name, None, status=status, csrf=token, **ctx)
    response.set_cookie(
        FORM_CSRF_COOKIE,
        token,
        httponly=True,
        secure=bool(container.settings.session_cookie_secure) or is_https(request, container.trusted_proxies),
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
    if current_viewer(request, container) is not None:
        return RedirectResponse(safe_next(request.query_params.get("next")), status_code=303)
    return _anonymous_page(
        request,
        container,
        "login.html",
        next=safe_next(request.query_params.get("next")),
        signed_up=request.query_params.get("signed_up") == "1",
        account_deleted=request.query_params.get("deleted") == "1",
        error=None,
        email="",
    )


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    container = get_container(request)
    fields, _ = await read_form(request, container)
    if not token_matches(fields.get("csrf_token"), request.cookies.get(FORM_CSRF_COOKIE, "")):
        return csrf_refused(request, None)
    email, password = str(fields.get("email", "")), str(fields.get("password", ""))
    target = safe_next(fields.get("next"))
    client = get_client(request)
    try:
        container.ratelimiter.check_anonymous("login", client.ip)
        new = await run_in_threadpool(
            container.web_sessions.login, email, password, replaces=request.cookies.get(SESSION_COOKIE), ip=client.ip
        )
    except ServiceError as exc:
        return _anonymous_page(
            request,
            container,
            "login.html",
            status=exc.status,
            next=target,
            signed_up=False,
            account_deleted=False,
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
    fields, _ = await read_form(request, container)
    if not token_matches(fields.get("csrf_token"), request.cookies.get(FORM_CSRF_COOKIE, "")):
        return csrf_refused(request, None)
    email, code = str(fields.get("email", "")), str(fields.get("invite_code", ""))
    try:
        container.ratelimiter.check_anonymous("signup", get_client(request).ip)
        await run_in_threadpool(container.invites.accept_invite, code, email, str(fields.get("password", "")))
    except ServiceError as exc:
        return _anonymous_page(
            request, container, "signup.html", status=exc.status, error=exc.message, email=email, invite_code=code
        )
    return RedirectResponse("/login?signed_up=1", status_code=303)


@router.post("/logout")
async def logout(request: Request) -> Response:
    container = get_container(request)
    viewer = current_viewer(request, container)
    if viewer is None:
        return RedirectResponse("/login", status_code=303)
    fields, _ = await read_form(request, container)
    if not token_matches(fields.get("csrf_token"), viewer.csrf):
        return csrf_refused(request, viewer)
    container.web_sessions.logout(request.cookies.get(SESSION_COOKIE, ""))
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
    likenesses = [r for r in container.likenesses.visible(viewer.principal) if r.status == "active"]
    return render(
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
    if current_viewer(request, container) is None:
        return to_login(request)
    return RedirectResponse("/create", status_code=303)


@router.get("/create", response_class=HTMLResponse)
def create_page(request: Request) -> Response:
    found = signed_in(request)
    if isinstance(found, Response):
        return found
    container, viewer = found
    return _create_page(request, container, viewer, {})


@router.post("/create", response_class=HTMLResponse)
async def create(request: Request) -> Response:
    form = await signed_in_post(request, frozenset({"input_reference"}))
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


SPRITE_TILES: int = inspect.signature(make_spritesheet).parameters["tiles"].default
"""The tiles of every video's spritesheet (the worker makes it with ``make_spritesheet``'s defaults)."""


def sprite_layout(row: VideoRow) -> dict[str, int]:
    """Where the frames lie in a completed video's spritesheet, for the library's scrub preview: ``tiles``
    frames left to right, top to bottom on ``columns`` x ``rows`` (see ``make_spritesheet``).

    An extension's output also holds its source clip, so it has at least ``num_frames`` frames: for one
    shorter than ``SPRITE_TILES`` frames the scrub then shows only the first tiles (none is shorter in practice).
    """
    tiles = max(1, min(SPRITE_TILES, row.num_frames))
    columns, rows = spritesheet_grid(tiles)
    return {"tiles": tiles, "columns": columns, "rows": rows}


@router.get("/videos", response_class=HTMLResponse)
def library(request: Request) -> Response:
    found = signed_in(request)
    if isinstance(found, Response):
        return found
    container, viewer = found
    status = request.query_params.get("status") or None
    if status not in (None, *STATUSES):
        status = None
    after = request.query_params.get("after") or None
    try:
        rows, more = _filtered_page(container, viewer.principal.id, status, after)
    except ServiceError as exc:
        return service_error(request, viewer, exc)
    next_url = None
    if more and rows:
        next_url = "/videos?" + urlencode({k: v for k, v in (("status", status), ("after", rows[-1].id)) if v})
    return render(
        request,
        "library.html",
        viewer,
        videos=rows,
        sprites={row.id: sprite_layout(row) for row in rows if row.status == "completed"},
        filter_status=status,
        statuses=STATUSES,
        next_url=next_url,
        after=after,
    )


def _video_page(
    request: Request,
    container: Container,
    viewer: Viewer,
    row: VideoRow,
    *,
    error: ServiceError | None = None,
    action: str | None = None,
    values: dict[str, Any] | None = None,
) -> HTMLResponse:
    """A video's page; a completed one offers remix, and extend and edit where its model can do them."""
    try:
        spec = container.registry.resolve(row.model)
        extend_seconds = list(spec.seconds) if "i2v" in spec.tasks else []
        can_edit = "v2v" in spec.tasks
        default_seconds = spec.default_seconds
    except UnknownModel:  # a model since removed from the catalogue: remix only (the service says why not)
        extend_seconds, can_edit, default_seconds = [], False, ""
    return render(
        request,
        "video.html",
        viewer,
        status=error.status if error else 200,
        video=row,
        poll_ms=container.settings.poll_after_ms,
        extend_seconds=extend_seconds,
        default_seconds=default_seconds,
        can_edit=can_edit,
        action=action,
        action_error=error.message if error else None,
        values=values or {},
    )


@router.get("/videos/{video_id}", response_class=HTMLResponse)
def video_page(video_id: str, request: Request) -> Response:
    found = signed_in(request)
    if isinstance(found, Response):
        return found
    container, viewer = found
    try:
        row = container.videos.get(viewer.principal.id, video_id)
    except NotFound:
        return not_found(request, viewer)
    return _video_page(request, container, viewer, row)


async def _video_action(request: Request, video_id: str, action: str) -> Response:
    form = await signed_in_post(request)
    if isinstance(form, Response):
        return form
    container, viewer, fields = form.container, form.viewer, form.fields
    try:
        if action == "delete":
            await run_in_threadpool(container.videos.delete, viewer.principal.id, video_id)
            return RedirectResponse(safe_next(fields.get("next") or "/videos"), status_code=303)
        await run_in_threadpool(container.videos.cancel, viewer.principal.id, video_id)
    except NotFound:
        return not_found(request, viewer)
    except ServiceError as exc:
        return service_error(request, viewer, exc)
    return RedirectResponse(f"/videos/{video_id}", status_code=303)


@router.post("/videos/{video_id}/delete")
async def delete_video(video_id: str, request: Request) -> Response:
    return await _video_action(request, video_id, "delete")


@router.post("/videos/{video_id}/cancel")
async def cancel_video(video_id: str, request: Request) -> Response:
    return await _video_action(request, video_id, "cancel")


async def _new_from_video(request: Request, video_id: str, action: str) -> Response:
    """Remix (new prompt), extend (new prompt and seconds) or edit (new prompt) one of the viewer's completed
    videos: the service calls of ``POST /v1/videos/{id}/remix`` and of ``/v1/videos/extensions`` and
    ``/v1/videos/edits`` with ``video={"id": video_id}``. Then to the new video's page."""
    form = await signed_in_post(request)
    if isinstance(form, Response):
        return form
    container, viewer, fields = form.container, form.viewer, form.fields
    try:
        source = container.videos.get(viewer.principal.id, video_id)
    except NotFound:
        return not_found(request, viewer)
    prompt = fields.get("prompt", "")
    try:
        if action == "remix":
            remix = serving.parse(RemixBody, {"prompt": prompt})
            options = remix.options()
            row = await run_in_threadpool(container.videos.remix, viewer.principal, video_id, remix.prompt, options)
        elif action == "extend":
            body = {"prompt": prompt, "seconds": fields.get("seconds", ""), "video": {"id": video_id}}
            extend = serving.extend_request(serving.parse(ExtendBody, body), {})
            row = await run_in_threadpool(container.videos.extend, viewer.principal, extend)
        else:
            edit = serving.edit_request(serving.parse(EditBody, {"prompt": prompt, "video": {"id": video_id}}), {})
            row = await run_in_threadpool(container.videos.edit, viewer.principal, edit)
    except ServiceError as exc:  # the source is the viewer's (checked above): say what went wrong, on its page
        return _video_page(request, container, viewer, source, error=exc, action=action, values=fields)
    return RedirectResponse(f"/videos/{row.id}", status_code=303)


@router.post("/videos/{video_id}/remix", response_class=HTMLResponse)
async def remix_video(video_id: str, request: Request) -> Response:
    return await _new_from_video(request, video_id, "remix")


@router.post("/videos/{video_id}/extend", response_class=HTMLResponse)
async def extend_video(video_id: str, request: Request) -> Response:
    return await _new_from_video(request, video_id, "extend")


@router.post("/videos/{video_id}/edit", response_class=HTMLResponse)
async def edit_video(video_id: str, request: Request) -> Response:
    return await _new_from_video(request, video_id, "edit")


# -- my likeness ---------------------------------------------------------------------------------


DAY = 86400


def _last_day(expires_at: float | None) -> str:
    """The last whole UTC day before ``expires_at`` ("YYYY-MM-DD"; "" for none): what the date field shows."""
    if expires_at is None:
        return ""
    return datetime.fromtimestamp(expires_at - 1, UTC).strftime("%Y-%m-%d")


def _expiry(fields: dict[str, Any]) -> float | None:
    """The permission's expiry from the form: the end of the chosen UTC day, or none when the field is empty.

    The form also carries the expiry it showed (``expires_was``): while the date is unchanged that exact
    time is kept, so saving the form keeps an expiry set to any second through the API."""
    day = str(fields.get("expires_on") or "").strip()
    if not day:
        return None
    try:
        was: float | None = float(str(fields.get("expires_was") or ""))
    except ValueError:
        was = None
    if was is not None and _last_day(was) == day:
        return was
    try:
        start = datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise InvalidRequest(
            "Invalid value for 'expires_on': a date as YYYY-MM-DD.", param="expires_on", code="invalid_value"
        ) from None
    return start.timestamp() + DAY


@router.get("/likeness", response_class=HTMLResponse)
def likeness_page(request: Request) -> Response:
    found = signed_in(request)
    if isinstance(found, Response):
        return found
    container, viewer = found
    chars = container.likenesses
    mine = next((r for r in chars.visible(viewer.principal) if r.owner_id == viewer.principal.id), None)
    consents = chars.consents(viewer.principal, mine.id) if mine else []
    uses = chars.uses(viewer.principal, mine.id) if mine else []
    return render(
        request,
        "likeness.html",
        viewer,
        mine=mine,
        consents=consents,
        uses=uses,
        expires_day=_last_day(mine.permission_expires_at) if mine else "",
        now=time.time(),
        consent_text=CONSENT_TEXT,
        consent_version=CONSENT_VERSION,
        consent_sha256=CONSENT_SHA256,
        purposes=PURPOSES,
        max_retention_days=container.enrolment.max_retention_days,
    )


@router.post("/likeness/{character_id}/{action}")
async def likeness_action(character_id: str, action: str, request: Request) -> Response:
    """permissions, revoke or delete the caller's likeness."""
    found = signed_in(request)
    if isinstance(found, Response):
        return found
    container, viewer = found
    if action not in ("permissions", "revoke", "delete"):
        return not_found(request, viewer)
    fields, _ = await read_form(request, container)
    if not token_matches(fields.get("csrf_token"), viewer.csrf):
        return csrf_refused(request, viewer)
    chars = container.likenesses
    try:
        chars.owned(viewer.principal, character_id)
        if action == "revoke":
            await run_in_threadpool(chars.revoke, viewer.principal, character_id)
        elif action == "delete":
            keep = fields.get("keep_videos") == "on"
            await run_in_threadpool(container.likeness_erasure.delete, viewer.principal, character_id, keep_videos=keep)
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
                expires_at=_expiry(fields),
                restrictions=body.restrictions,
            )
            await run_in_threadpool(chars.set_permissions, viewer.principal, character_id, perms)
    except NotFound:
        return not_found(request, viewer)
    except ServiceError as exc:
        return service_error(request, viewer, exc)
    return RedirectResponse("/likeness", status_code=303)


@router.post("/likeness/{character_id}/uses/{video_id}/delete")
async def delete_use(character_id: str, video_id: str, request: Request) -> Response:
    """Delete a video that used the caller's likeness, whoever made it."""
    form = await signed_in_post(request)
    if isinstance(form, Response):
        return form
    container, viewer = form.container, form.viewer
    try:
        row = container.likenesses.video_of_likeness(viewer.principal, character_id, video_id)
        await run_in_threadpool(container.videos.delete, row.owner_id, video_id, actor=viewer.principal.id)
    except NotFound:
        return not_found(request, viewer)
    except ServiceError as exc:
        return service_error(request, viewer, exc)
    return RedirectResponse("/likeness", status_code=303)


# -- API keys and alerts -------------------------------------------------------------------------


def _keys_page(request: Request, container: Container, viewer: Viewer, **extra: Any) -> HTMLResponse:
    return render(
        request,
        "keys.html",
        viewer,
        keys=container.keys.list(viewer.principal.id),
        alerts=container.alerts.list_alerts(viewer.principal.id),
        scopes={s: d for s, d in SCOPES.items() if s in viewer.principal.scopes},
        default_scopes=DEFAULT_KEY_SCOPES,
        now=time.time(),
        status=extra.pop("status", 200),
        **{"created": None, "error": None, **extra},
    )


@router.get("/keys", response_class=HTMLResponse)
def keys_page(request: Request) -> Response:
    found = signed_in(request)
    if isinstance(found, Response):
        return found
    container, viewer = found
    return _keys_page(request, container, viewer)


@router.post("/keys", response_class=HTMLResponse)
async def create_key(request: Request) -> Response:
    form = await signed_in_post(request)
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
    form = await signed_in_post(request)
    if isinstance(form, Response):
        return form
    container, viewer = form.container, form.viewer
    try:
        await run_in_threadpool(container.keys.revoke, viewer.principal.id, viewer.principal.id, key_id)
    except NotFound:
        return not_found(request, viewer)
    except ServiceError as exc:
        return service_error(request, viewer, exc)
    return RedirectResponse("/keys", status_code=303)


# -- verify a file -------------------------------------------------------------------------------


def _verify_page(request: Request, container: Container, viewer: Viewer, **extra: Any) -> HTMLResponse:
    return render(
        request,
        "verify.html",
        viewer,
        status=extra.pop("status", 200),
        max_mb=container.settings.max_upload_bytes // (1024 * 1024),
        **{"result": None, "error": None, **extra},
    )


@router.get("/verify", response_class=HTMLResponse)
def verify_page(request: Request) -> Response:
    found = signed_in(request)
    if isinstance(found, Response):
        return found
    container, viewer = found
    return _verify_page(request, container, viewer)


@router.post("/verify", response_class=HTMLResponse)
async def verify_file(request: Request) -> Response:
    """The C2PA state and watermark of an uploaded file, as ``POST /v1/provenance/verify`` finds them (the same
    service call, bounded by the same upload limit); the video is named only to its owner."""
    form = await signed_in_post(request, frozenset({"file"}))
    if isinstance(form, Response):
        return form
    container, viewer = form.container, form.viewer
    data = form.uploads.get("file")
    if not data:
        return _verify_page(request, container, viewer, status=400, error="Choose a file to verify.")
    try:
        result = await run_in_threadpool(container.verification.verify, data, owner_id=viewer.principal.id)
    except ServiceError as exc:
        return _verify_page(request, container, viewer, status=exc.status, error=exc.message)
    return _verify_page(request, container, viewer, result=Verification.from_result(result))
