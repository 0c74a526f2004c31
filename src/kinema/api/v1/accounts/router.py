"""/v1/auth (sign-up with an invite, login, logout), /v1/me, /v1/keys and /v1/alerts. Thin routes."""

from __future__ import annotations

import json
import time

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from kinema.api.deps import (
    SESSION_COOKIE,
    AlertsDep,
    ClientDep,
    CurrentPrincipal,
    HttpsDep,
    InvitesDep,
    KeyServiceDep,
    KeysRead,
    KeysWrite,
    PasswordsDep,
    PrivacyServiceDep,
    RateLimiterDep,
    SessionPrincipal,
    SettingsDep,
    UsageDep,
    UsersDep,
    WebSessionsDep,
)
from kinema.api.v1.accounts.protocol import (
    Alert,
    AlertList,
    ApiKey,
    ApiKeyCreated,
    ApiKeyList,
    DeleteAccountBody,
    KeyCreateBody,
    LoginBody,
    Me,
    PasswordBody,
    Session,
    SignupBody,
    User,
)
from kinema.config import Settings
from kinema.services.accounts import NewSession

router = APIRouter(prefix="/v1", tags=["accounts"])


def _set_session_cookie(response: Response, settings: Settings, https: bool, new: NewSession) -> None:
    secure = https if settings.session_cookie_secure is None else settings.session_cookie_secure
    response.set_cookie(
        SESSION_COOKIE,
        new.cookie,
        httponly=True,
        secure=secure,
        samesite="lax",
        path="/",
        max_age=int(settings.session_absolute_seconds),
    )


@router.post("/auth/signup", response_model=User, status_code=201)
async def signup(body: SignupBody, invites: InvitesDep, ratelimiter: RateLimiterDep, client: ClientDep) -> User:
    """Create an account with a single-use invite code bound to this email."""
    ratelimiter.check_anonymous("signup", client.ip)
    row = await run_in_threadpool(invites.accept_invite, body.invite_code, body.email, body.password)
    return User.from_row(row)


@router.post("/auth/login", response_model=Session)
async def login(
    body: LoginBody,
    request: Request,
    response: Response,
    web_sessions: WebSessionsDep,
    ratelimiter: RateLimiterDep,
    settings: SettingsDep,
    https: HttpsDep,
    client: ClientDep,
) -> Session:
    """Sign in: a new session id every time (any session this browser had is ended) and a CSRF token."""
    ratelimiter.check_anonymous("login", client.ip)
    new = await run_in_threadpool(
        web_sessions.login, body.email, body.password, replaces=request.cookies.get(SESSION_COOKIE), ip=client.ip
    )
    _set_session_cookie(response, settings, https, new)
    return Session(user=User.from_row(new.user), csrf_token=new.csrf_token)


@router.post("/auth/logout", status_code=204)
def logout(request: Request, principal: SessionPrincipal, web_sessions: WebSessionsDep) -> Response:
    """End this browser session."""
    web_sessions.logout(request.cookies.get(SESSION_COOKIE, ""))
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.post("/me/password", response_model=Session)
async def change_password(
    body: PasswordBody,
    response: Response,
    principal: SessionPrincipal,
    passwords: PasswordsDep,
    users: UsersDep,
    web_sessions: WebSessionsDep,
    settings: SettingsDep,
    https: HttpsDep,
) -> Session:
    """Change your password: every session ends, and this browser gets a new one."""
    await run_in_threadpool(passwords.change_password, principal.id, body.current_password, body.new_password)
    user = users.get_user(principal.id)
    new = await run_in_threadpool(web_sessions.login, user.email, body.new_password)
    _set_session_cookie(response, settings, https, new)
    return Session(user=User.from_row(new.user), csrf_token=new.csrf_token)


@router.get("/me/export", response_class=Response, responses={200: {"content": {"application/zip": {}}}})
async def export_me(principal: SessionPrincipal, privacy: PrivacyServiceDep) -> Response:
    """Everything Kinema holds about you: me.json (account, keys, videos, likeness, consent history,
    usage log, security events) plus your videos and your likeness's reference images, as a ZIP."""
    data = await run_in_threadpool(privacy.export, principal.id)
    return Response(
        data,
        media_type="application/zip",
        headers={"Content-Disposition": 'attachment; filename="kinema-export.zip"', "Cache-Control": "no-store"},
    )


@router.delete("/me", status_code=200)
async def delete_me(
    body: DeleteAccountBody,
    request: Request,
    principal: SessionPrincipal,
    passwords: PasswordsDep,
    privacy: PrivacyServiceDep,
) -> Response:
    """Delete your account: your likeness is shredded, your videos and keys deleted, your sessions ended."""
    await run_in_threadpool(passwords.confirm_password, principal.id, body.password)
    done = await run_in_threadpool(privacy.delete_account, principal.id)
    response = Response(
        json.dumps({"object": "account.deleted", "id": principal.id, "deleted": True, **done}),
        media_type="application/json",
    )
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/me", response_model=Me)
def me(request: Request, principal: CurrentPrincipal, users: UsersDep, usage: UsageDep) -> Me:
    """Who you are, how you authenticated, your scopes, limits and current usage."""
    user = users.get_user(principal.id)
    csrf = request.state.csrf_token if principal.via == "session" else None
    return Me(
        user=User.from_row(user),
        via=principal.via,
        key_id=principal.key_id,
        scopes=sorted(principal.scopes),
        usage=usage,
        csrf_token=csrf,
    )


@router.post("/keys", response_model=ApiKeyCreated, status_code=201)
def create_key(body: KeyCreateBody, principal: KeysWrite, keys: KeyServiceDep) -> ApiKeyCreated:
    """A new API key for yourself; the secret is in this response only."""
    new = keys.create(
        principal.id,
        body.name,
        scopes=body.scopes,
        expires_in=body.expires_in,
        ip_allowlist=body.ip_allowlist,
        granted_by=principal,
    )
    return ApiKeyCreated(**ApiKey.from_row(new.row, time.time()).model_dump(), key=new.secret)


@router.get("/keys", response_model=ApiKeyList)
def list_keys(principal: KeysRead, keys: KeyServiceDep) -> ApiKeyList:
    """Your API keys (never their secrets), newest first."""
    now = time.time()
    return ApiKeyList(data=[ApiKey.from_row(r, now) for r in keys.list(principal.id)])


@router.get("/keys/{key_id}", response_model=ApiKey)
def get_key(key_id: str, principal: KeysRead, keys: KeyServiceDep) -> ApiKey:
    """One of your API keys."""
    return ApiKey.from_row(keys.get(principal.id, key_id), time.time())


@router.delete("/keys/{key_id}", response_model=ApiKey)
def revoke_key(key_id: str, principal: KeysWrite, keys: KeyServiceDep) -> ApiKey:
    """Revoke one of your API keys for good."""
    return ApiKey.from_row(keys.revoke(principal.id, principal.id, key_id), time.time())


@router.get("/alerts", response_model=AlertList)
def list_alerts(principal: KeysRead, alerts: AlertsDep, unread: bool = False) -> AlertList:
    """Security alerts for you, e.g. a key of yours suspended for looking shared; newest first."""
    return AlertList(data=[Alert.from_row(r) for r in alerts.list_alerts(principal.id, unread_only=unread)])


@router.post("/alerts/{alert_id}/read", response_model=Alert)
def mark_alert_read(alert_id: str, principal: KeysRead, alerts: AlertsDep) -> Alert:
    """Mark one of your alerts read."""
    return Alert.from_row(alerts.mark_alert_read(principal.id, alert_id))
