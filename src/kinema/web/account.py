"""The studio's account page, /account: my alerts (mark read), export my data, delete my account.

The same service calls as the JSON API (:mod:`kinema.api.v1.accounts.router`): the export is the ZIP of
``GET /v1/me/export``, and deleting is ``DELETE /v1/me`` (password again, then the privacy service), here
also behind a typed confirmation. Every form needs the session's CSRF token.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from kinema.api.deps import SESSION_COOKIE
from kinema.container import Container
from kinema.services.errors import NotFound, ServiceError
from kinema.web.pages import Viewer, not_found, render, service_error, signed_in, signed_in_post

router = APIRouter(include_in_schema=False)

DELETE_PHRASE = "delete my account"
"""What the user types to confirm deleting their account."""


def _account_page(
    request: Request, container: Container, viewer: Viewer, *, status: int = 200, error: str | None = None
) -> HTMLResponse:
    return render(
        request,
        "account.html",
        viewer,
        status=status,
        alerts=container.alerts.list_alerts(viewer.principal.id),
        delete_phrase=DELETE_PHRASE,
        error=error,
    )


@router.get("/account", response_class=HTMLResponse)
def account_page(request: Request) -> Response:
    found = signed_in(request)
    if isinstance(found, Response):
        return found
    container, viewer = found
    return _account_page(request, container, viewer)


@router.post("/account/alerts/{alert_id}/read")
async def mark_alert_read(alert_id: str, request: Request) -> Response:
    form = await signed_in_post(request)
    if isinstance(form, Response):
        return form
    try:
        form.container.alerts.mark_alert_read(form.viewer.principal.id, alert_id)
    except NotFound:
        return not_found(request, form.viewer)
    return RedirectResponse("/account", status_code=303)


@router.post("/account/export")
async def export(request: Request) -> Response:
    """The ZIP of ``GET /v1/me/export``, as a download."""
    form = await signed_in_post(request)
    if isinstance(form, Response):
        return form
    try:
        data = await run_in_threadpool(form.container.privacy.export, form.viewer.principal.id)
    except ServiceError as exc:
        return service_error(request, form.viewer, exc)
    return Response(
        data,
        media_type="application/zip",
        headers={"Content-Disposition": 'attachment; filename="kinema-export.zip"', "Cache-Control": "no-store"},
    )


@router.post("/account/delete", response_class=HTMLResponse)
async def delete_account(request: Request) -> Response:
    """Delete the account (password and the typed phrase first), then sign out to the sign-in page."""
    form = await signed_in_post(request)
    if isinstance(form, Response):
        return form
    container, viewer, fields = form.container, form.viewer, form.fields
    typed = fields.get("confirm", "")
    if not isinstance(typed, str) or typed.strip().lower() != DELETE_PHRASE:
        return _account_page(
            request, container, viewer, status=400, error=f'Type "{DELETE_PHRASE}" to confirm. Nothing was deleted.'
        )
    password = fields.get("password", "")
    try:
        await run_in_threadpool(
            container.passwords.confirm_password, viewer.principal.id, password if isinstance(password, str) else ""
        )
    except ServiceError as exc:
        return _account_page(request, container, viewer, status=exc.status, error=f"{exc.message} Nothing was deleted.")
    try:
        await run_in_threadpool(container.privacy.delete_account, viewer.principal.id)
    except ServiceError as exc:  # e.g. 409 last_admin, refused before anything is deleted
        return _account_page(request, container, viewer, status=exc.status, error=exc.message)
    response = RedirectResponse("/login?deleted=1", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
