"""The studio's admin pages under /admin: users, invites and cohorts, the pause switch, every API key, the
transparency report with charts, and the audit log's verification.

Built on the same service calls as the JSON admin API (:mod:`kinema.api.v1.admin`). Admins only: to anyone
else every /admin page and form is the same 404 as another user's video, and a signed-in admin's form
still needs the session's CSRF token. Charts are inline SVG drawn here from the numbers (no script, no
inline style: the page CSP forbids both).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from kinema.api.v1.accounts.protocol import ApiKey
from kinema.api.v1.admin.protocol import Invite
from kinema.container import Container
from kinema.services import transparency
from kinema.services.accounts import check_cohort
from kinema.services.errors import InvalidRequest, NotFound, ServiceError
from kinema.web.pages import Viewer, not_found, render, signed_in, signed_in_post

router = APIRouter(prefix="/admin", include_in_schema=False)

SECTIONS = (
    ("/admin/users", "Users"),
    ("/admin/invites", "Invites and cohorts"),
    ("/admin/pause", "Pause"),
    ("/admin/keys", "Keys"),
    ("/admin/transparency", "Transparency"),
    ("/admin/audit", "Audit log"),
)
LIMIT_FIELDS = ("requests_per_minute", "concurrent_jobs", "video_seconds_per_day")


def _page(request: Request, name: str, viewer: Viewer, *, status: int = 200, **context: Any) -> HTMLResponse:
    context.setdefault("error", None)
    context.setdefault("notice", None)
    return render(request, name, viewer, status=status, sections=SECTIONS, **context)


def _text(fields: dict[str, Any], name: str) -> str:
    value = fields.get(name, "")
    return value.strip() if isinstance(value, str) else ""


# -- users ---------------------------------------------------------------------------------------


def _users_page(request: Request, container: Container, viewer: Viewer, **extra: Any) -> HTMLResponse:
    return _page(request, "admin/users.html", viewer, users=container.users.list_users(), **extra)


@router.get("/users", response_class=HTMLResponse)
def users_page(request: Request) -> Response:
    found = signed_in(request, admin=True)
    if isinstance(found, Response):
        return found
    return _users_page(request, *found)


@router.post("/users/{user_id}")
async def update_user(user_id: str, request: Request) -> Response:
    """Role, cohort and disabled state of one account; only what the form changed is passed on (and audited)."""
    form = await signed_in_post(request, admin=True)
    if isinstance(form, Response):
        return form
    container, viewer, fields = form.container, form.viewer, form.fields
    try:
        user = container.users.get_user(user_id)
        role, cohort, status = _text(fields, "role"), _text(fields, "cohort"), _text(fields, "status")
        was_disabled = user.disabled_at is not None
        disabled = {"active": False, "disabled": True}.get(status, was_disabled)
        await run_in_threadpool(
            container.users.update_user,
            viewer.principal.id,
            user_id,
            role=role if role and role != user.role else None,
            cohort=cohort if cohort and cohort != user.cohort else None,
            disabled=disabled if disabled != was_disabled else None,
        )
    except NotFound:
        return not_found(request, viewer)
    except ServiceError as exc:
        return _users_page(request, container, viewer, status=exc.status, error=exc.message)
    return RedirectResponse("/admin/users", status_code=303)


# -- invites and cohorts -------------------------------------------------------------------------


def _days_in_seconds(days: str) -> float | None:
    """A form's number of days as seconds; empty means the deployment's default (None)."""
    if not days:
        return None
    try:
        return float(days) * 86400
    except ValueError:
        raise InvalidRequest(
            "Invalid value for 'expires_in_days': a number of days.", param="expires_in_days"
        ) from None


def _invites_page(request: Request, container: Container, viewer: Viewer, **extra: Any) -> HTMLResponse:
    now = time.time()
    extra.setdefault("created", None)
    return _page(
        request,
        "admin/invites.html",
        viewer,
        invites=[Invite.from_row(r, now) for r in reversed(container.invites.list_invites())],
        cohorts=container.cohorts.list_cohorts(),
        limit_fields=LIMIT_FIELDS,
        **extra,
    )


@router.get("/invites", response_class=HTMLResponse)
def invites_page(request: Request) -> Response:
    found = signed_in(request, admin=True)
    if isinstance(found, Response):
        return found
    return _invites_page(request, *found)


@router.post("/invites", response_class=HTMLResponse)
async def create_invite(request: Request) -> Response:
    """A new invite; its code (and sign-up link) is on this response's page only."""
    form = await signed_in_post(request, admin=True)
    if isinstance(form, Response):
        return form
    container, viewer, fields = form.container, form.viewer, form.fields
    try:
        new = await run_in_threadpool(
            container.invites.create_invite,
            viewer.principal.id,
            _text(fields, "email"),
            cohort=_text(fields, "cohort") or "default",
            ttl_seconds=_days_in_seconds(_text(fields, "expires_in_days")),
        )
    except ServiceError as exc:
        return _invites_page(request, container, viewer, status=exc.status, error=exc.message)
    return _invites_page(request, container, viewer, status=201, created={"code": new.code, "email": new.row.email})


@router.post("/invites/{invite_id}/revoke")
async def revoke_invite(invite_id: str, request: Request) -> Response:
    form = await signed_in_post(request, admin=True)
    if isinstance(form, Response):
        return form
    try:
        await run_in_threadpool(form.container.invites.revoke_invite, form.viewer.principal.id, invite_id)
    except NotFound:
        return not_found(request, form.viewer)
    except ServiceError as exc:
        return _invites_page(request, form.container, form.viewer, status=exc.status, error=exc.message)
    return RedirectResponse("/admin/invites", status_code=303)


@router.post("/cohorts/limits")
async def set_cohort_limits(request: Request) -> Response:
    """A cohort's default limits; an empty field leaves that limit at the deployment's default."""
    form = await signed_in_post(request, admin=True)
    if isinstance(form, Response):
        return form
    container, viewer, fields = form.container, form.viewer, form.fields
    try:
        limits: dict[str, float] = {}
        for name in LIMIT_FIELDS:
            value = _text(fields, name)
            if value:
                try:
                    limits[name] = float(value) if name == "video_seconds_per_day" else int(value)
                except ValueError:
                    raise InvalidRequest(f"Invalid value for '{name}': a positive number.", param=name) from None
        await run_in_threadpool(container.cohorts.set_cohort_limits, viewer.principal.id, _text(fields, "name"), limits)
    except ServiceError as exc:
        return _invites_page(request, container, viewer, status=exc.status, error=exc.message)
    return RedirectResponse("/admin/invites#cohorts", status_code=303)


@router.post("/cohorts/revoke", response_class=HTMLResponse)
async def revoke_cohort(request: Request) -> Response:
    """Every key of the cohort's users and every unused invite of the cohort, revoked at once."""
    form = await signed_in_post(request, admin=True)
    if isinstance(form, Response):
        return form
    container, viewer = form.container, form.viewer
    name = _text(form.fields, "name")
    try:
        done = await run_in_threadpool(container.cohorts.revoke_cohort, viewer.principal.id, name)
    except ServiceError as exc:
        return _invites_page(request, container, viewer, status=exc.status, error=exc.message)
    notice = f"Cohort {name}: {done['keys_revoked']} key(s) and {done['invites_revoked']} unused invite(s) revoked."
    return _invites_page(request, container, viewer, notice=notice)


# -- pause ---------------------------------------------------------------------------------------


def _pause_page(request: Request, container: Container, viewer: Viewer, **extra: Any) -> HTMLResponse:
    return _page(
        request,
        "admin/pause.html",
        viewer,
        pauses=container.pause.states(),
        hold_default=container.settings.pause_hold_running,
        **extra,
    )


@router.get("/pause", response_class=HTMLResponse)
def pause_page(request: Request) -> Response:
    found = signed_in(request, admin=True)
    if isinstance(found, Response):
        return found
    return _pause_page(request, *found)


@router.post("/pause")
async def pause(request: Request) -> Response:
    """Pause generation for everyone (no cohort given) or one cohort, with an optional reason."""
    form = await signed_in_post(request, admin=True)
    if isinstance(form, Response):
        return form
    container, viewer, fields = form.container, form.viewer, form.fields
    cohort = _text(fields, "cohort") or None
    try:
        if cohort is not None:
            check_cohort(cohort)
        await run_in_threadpool(
            container.pause.pause,
            viewer.principal.id,
            cohort,
            hold_running=fields.get("hold_running") == "on",
            reason=_text(fields, "reason") or None,
        )
    except ServiceError as exc:
        return _pause_page(request, container, viewer, status=exc.status, error=exc.message)
    return RedirectResponse("/admin/pause", status_code=303)


@router.post("/resume")
async def resume(request: Request) -> Response:
    """Lift one pause: everyone's (no cohort given) or one cohort's."""
    form = await signed_in_post(request, admin=True)
    if isinstance(form, Response):
        return form
    container, viewer = form.container, form.viewer
    try:
        await run_in_threadpool(container.pause.resume, viewer.principal.id, _text(form.fields, "cohort") or None)
    except ServiceError as exc:
        return _pause_page(request, container, viewer, status=exc.status, error=exc.message)
    return RedirectResponse("/admin/pause", status_code=303)


# -- keys ----------------------------------------------------------------------------------------


def _keys_page(request: Request, container: Container, viewer: Viewer, **extra: Any) -> HTMLResponse:
    now = time.time()
    emails = {u.id: u.email for u in container.users.list_users()}
    keys = [ApiKey.from_row(r, now) for r in container.keys.list(None)]
    return _page(request, "admin/keys.html", viewer, keys=keys, emails=emails, **extra)


@router.get("/keys", response_class=HTMLResponse)
def keys_page(request: Request) -> Response:
    found = signed_in(request, admin=True)
    if isinstance(found, Response):
        return found
    return _keys_page(request, *found)


@router.post("/keys/{key_id}/{action}")
async def key_action(key_id: str, action: str, request: Request) -> Response:
    """``reinstate`` a suspended key or ``revoke`` any key."""
    form = await signed_in_post(request, admin=True)
    if isinstance(form, Response):
        return form
    container, viewer = form.container, form.viewer
    if action not in ("reinstate", "revoke"):
        return not_found(request, viewer)
    try:
        if action == "reinstate":
            await run_in_threadpool(container.keys.reinstate, viewer.principal.id, key_id)
        else:
            await run_in_threadpool(container.keys.revoke, viewer.principal.id, None, key_id)
    except NotFound:
        return not_found(request, viewer)
    except ServiceError as exc:
        return _keys_page(request, container, viewer, status=exc.status, error=exc.message)
    return RedirectResponse("/admin/keys", status_code=303)


# -- transparency --------------------------------------------------------------------------------

CHART_WIDTH = 640
CHART_HEIGHT = 200
CHART_TOP = 16  # room above the tallest bar for its number


@dataclass(frozen=True)
class Bar:
    """One bar of an SVG chart, in the chart's own units (its viewBox)."""

    label: str
    value: int
    x: float
    y: float
    width: float
    height: float


def column_chart(points: list[tuple[str, int]]) -> list[Bar]:
    """Vertical bars side by side across CHART_WIDTH, the largest value reaching CHART_TOP."""
    if not points:
        return []
    top = max(v for _, v in points) or 1
    slot = CHART_WIDTH / len(points)
    bars = []
    for i, (label, value) in enumerate(points):
        height = (CHART_HEIGHT - CHART_TOP) * value / top
        bars.append(Bar(label, value, i * slot + slot * 0.1, CHART_HEIGHT - height, slot * 0.8, height))
    return bars


def row_chart(points: list[tuple[str, int]], *, row: float = 28, label_width: float = 200) -> list[Bar]:
    """Horizontal bars one under another, the largest filling the width after the labels."""
    if not points:
        return []
    top = max(v for _, v in points) or 1
    room = CHART_WIDTH - label_width - 48  # the value is written after the bar
    return [
        Bar(label, value, label_width, i * row + 4, room * value / top, row - 8)
        for i, (label, value) in enumerate(points)
    ]


@router.get("/transparency", response_class=HTMLResponse)
def transparency_page(request: Request) -> Response:
    """The transparency report for a range (default: the last 30 days, by day), with two charts."""
    found = signed_in(request, admin=True)
    if isinstance(found, Response):
        return found
    container, viewer = found
    q = request.query_params
    since, until, period = q.get("since") or None, q.get("until") or None, q.get("period") or None
    try:
        start, end, p = transparency.resolve_range(since, until, period)
        report = transparency.report(container.sessions, since=start, until=end, period=p)
    except ServiceError as exc:
        return _page(
            request,
            "admin/transparency.html",
            viewer,
            status=exc.status,
            error=exc.message,
            report=None,
            form={"since": since or "", "until": until or "", "period": period or "day"},
        )
    jobs = column_chart([(x["label"], x["generations"]["requested"]) for x in report["periods"]])
    categories = sorted(report["totals"]["refusals"]["by_category"].items(), key=lambda kv: (-kv[1], kv[0]))
    refusals = row_chart(categories)
    return _page(
        request,
        "admin/transparency.html",
        viewer,
        report=report,
        jobs=jobs,
        refusals=refusals,
        chart={"width": CHART_WIDTH, "height": CHART_HEIGHT, "rows_height": max(len(refusals), 1) * 28},
        form={"since": since or "", "until": until or "", "period": p},
    )


# -- audit log -----------------------------------------------------------------------------------


@router.get("/audit", response_class=HTMLResponse)
def audit_page(request: Request) -> Response:
    """The audit log checked now: every entry against its hash, its sequence and the signed checkpoint."""
    found = signed_in(request, admin=True)
    if isinstance(found, Response):
        return found
    container, viewer = found
    report = container.audit.verify()
    checkpoint = container.audit.latest_checkpoint()
    return _page(request, "admin/audit.html", viewer, report=report, checkpoint=checkpoint, now=time.time())
