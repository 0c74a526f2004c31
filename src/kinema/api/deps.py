"""FastAPI dependencies as ``Annotated`` aliases: the caller (principal), its scopes, and the services.

Handlers declare what they need, e.g. ``principal: VideosWrite`` or ``videos: VideoServiceDep``.
Authentication, CSRF, the shared-key defense and the per-minute rate limit all happen here, once per
request, so no router can forget one:

1. the client address, believing ``X-Forwarded-For`` only from configured trusted proxies;
2. ``Authorization: Bearer kin_...`` (an API key), else the ``kinema_session`` cookie; a cookie
   request that changes state must also send the session's ``X-CSRF-Token``;
3. the per-minute rate limits of the user and the key;
4. for a key, the shared-key defense observes the request (and may suspend the key);
5. the route's scope (``require(scope)``), or admin (``AdminPrincipal``).
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable, Sequence
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.orm import Session, sessionmaker

from kinema.blobs import BlobStore
from kinema.config import Settings
from kinema.container import Container
from kinema.netaddr import IPNetwork, client_ip, parse_address
from kinema.services.accounts import Alerts, Cohorts, Invites, Passwords, Users, WebSessions
from kinema.services.auth import SCOPES, ClientInfo, Principal
from kinema.services.characters import Enrolment, LikenessErasure, Likenesses
from kinema.services.errors import Forbidden, Unauthorized
from kinema.services.keyguard import KeyGuard
from kinema.services.keys import KeyService
from kinema.services.pause import PauseService
from kinema.services.privacy import PrivacyService
from kinema.services.quotas import RateLimiter, usage
from kinema.services.verification import VerificationService
from kinema.services.videos import VideoService
from kinema.services.webhooks import WebhookService

SESSION_COOKIE = "kinema_session"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def get_container(request: Request) -> Container:
    """The application's wired services (set once by ``create_app``)."""
    container: Container = request.app.state.container
    return container


def get_client(request: Request) -> ClientInfo:
    """The client's address (after trusted proxies) and user agent."""
    peer = request.client.host if request.client else "0.0.0.0"
    forwarded = ",".join(request.headers.getlist("x-forwarded-for")) or None
    ip = client_ip(peer, forwarded, get_container(request).trusted_proxies)
    return ClientInfo(ip=ip, user_agent=request.headers.get("user-agent", "")[:512])


ClientDep = Annotated[ClientInfo, Depends(get_client)]


def is_https(request: Request, trusted_proxies: Sequence[IPNetwork]) -> bool:
    """The client's connection was https: directly, or as a trusted proxy says in X-Forwarded-Proto."""
    if request.url.scheme == "https":
        return True
    proto = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    peer = parse_address(request.client.host) if request.client else None
    return proto == "https" and peer is not None and any(peer in net for net in trusted_proxies)


def request_is_https(request: Request) -> bool:
    """This request came over https (see :func:`is_https`)."""
    return is_https(request, get_container(request).trusted_proxies)


HttpsDep = Annotated[bool, Depends(request_is_https)]


def get_principal(
    request: Request,
    client: ClientDep,
    keys: KeyServiceDep,
    web_sessions: WebSessionsDep,
    ratelimiter: RateLimiterDep,
    keyguard: KeyGuardDep,
) -> Principal:
    """Authenticate the request (key or session), apply the shared-key defense and the rate limits."""
    header = request.headers.get("authorization")
    cookie = request.cookies.get(SESSION_COOKIE)
    if header is not None:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("Malformed Authorization header: send 'Authorization: Bearer <API key>'.")
        principal = keys.authenticate(token.strip(), client)
        # Rate limit first: a request refused with 429 (which clients retry) does not count as usage
        # towards the shared-key defense's rate threshold.
        ratelimiter.check(principal)
        keyguard.observe(principal, client)
    elif cookie:
        principal, csrf = web_sessions.session_principal(cookie)
        request.state.csrf_token = csrf  # for GET /v1/me, without a second session lookup
        if request.method not in SAFE_METHODS:
            sent = request.headers.get(CSRF_HEADER, "")
            if not sent or not hmac.compare_digest(sent.encode(), csrf.encode()):
                raise Forbidden(
                    f"Missing or wrong {CSRF_HEADER} header: a signed-in browser request that changes something "
                    "must echo the session's CSRF token.",
                    code="csrf_failed",
                )
        ratelimiter.check(principal)
    else:
        raise Unauthorized("Missing bearer authentication in header: send 'Authorization: Bearer <API key>'.")
    request.state.principal = principal
    return principal


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


def require(scope: str) -> Callable[[Principal], Principal]:
    """A dependency that lets the request through only when the credential holds ``scope``."""
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}")

    def check(principal: CurrentPrincipal) -> Principal:
        if scope not in principal.scopes:
            raise Forbidden(
                f"This API key lacks the '{scope}' scope needed here; create a key with it.",
                code="insufficient_scope",
            )
        return principal

    check.required_scope = scope  # type: ignore[attr-defined]  # read by the route-table tests
    return check


def require_admin(principal: CurrentPrincipal) -> Principal:
    """Admins (with the ``admin`` scope) only; every admin router depends on this."""
    if not principal.is_admin:
        raise Forbidden("This endpoint is for administrators.", code="admin_required")
    return principal


def require_session(principal: CurrentPrincipal) -> Principal:
    """A signed-in browser session only: an API key cannot change the password behind it."""
    if principal.via != "session":
        raise Forbidden("Sign in with your password to do this; an API key cannot.", code="session_required")
    return principal


VideosRead = Annotated[Principal, Depends(require("videos:read"))]
VideosWrite = Annotated[Principal, Depends(require("videos:write"))]
KeysRead = Annotated[Principal, Depends(require("keys:read"))]
KeysWrite = Annotated[Principal, Depends(require("keys:write"))]
AdminPrincipal = Annotated[Principal, Depends(require_admin)]
SessionPrincipal = Annotated[Principal, Depends(require_session)]


# One typed dependency per service: a handler names the services it uses, and only those (the container stays
# the wiring, not a locator the routes reach into).


def get_settings(request: Request) -> Settings:
    """The process's settings."""
    return get_container(request).settings


def get_sessions(request: Request) -> sessionmaker[Session]:
    """The database session factory (for read-only reports that span tables)."""
    return get_container(request).sessions


def get_blobs(request: Request) -> BlobStore:
    """The blob store (outputs, previews, sealed inputs)."""
    return get_container(request).blobs


def get_video_service(request: Request) -> VideoService:
    """Videos: create, remix, edit, extend, list, cancel, delete."""
    return get_container(request).videos


def get_enrolment(request: Request) -> Enrolment:
    """Likeness enrolment: challenges, consent limits, enrol."""
    return get_container(request).enrolment


def get_likenesses(request: Request) -> Likenesses:
    """Likenesses: read, consent history, usage log, permissions, revoke."""
    return get_container(request).likenesses


def get_likeness_erasure(request: Request) -> LikenessErasure:
    """Likeness deletion (crypto-shredding, with every video made with it)."""
    return get_container(request).likeness_erasure


def get_users(request: Request) -> Users:
    """Accounts: create, read, update, and their effective limits."""
    return get_container(request).users


def get_passwords(request: Request) -> Passwords:
    """Change or confirm your password."""
    return get_container(request).passwords


def get_web_sessions(request: Request) -> WebSessions:
    """Browser sessions: login, logout, the principal of a session cookie."""
    return get_container(request).web_sessions


def get_invites(request: Request) -> Invites:
    """Invites: create, list, revoke, and sign up with one."""
    return get_container(request).invites


def get_cohorts(request: Request) -> Cohorts:
    """Cohorts: default limits, member counts, revoking one."""
    return get_container(request).cohorts


def get_alerts(request: Request) -> Alerts:
    """Users' security alerts."""
    return get_container(request).alerts


def get_key_service(request: Request) -> KeyService:
    """API keys: create, list, limits, revoke, reinstate."""
    return get_container(request).keys


def get_keyguard(request: Request) -> KeyGuard:
    """The shared-key defense."""
    return get_container(request).keyguard


def get_rate_limiter(request: Request) -> RateLimiter:
    """Per-minute rate limits (also for anonymous sign-in attempts)."""
    return get_container(request).ratelimiter


def get_pause_service(request: Request) -> PauseService:
    """The pause switch."""
    return get_container(request).pause


def get_privacy_service(request: Request) -> PrivacyService:
    """Export my data, delete my account."""
    return get_container(request).privacy


def get_verification_service(request: Request) -> VerificationService:
    """Provenance verification of uploaded files."""
    return get_container(request).verification


def get_webhook_service(request: Request) -> WebhookService:
    """Webhook endpoints and their deliveries."""
    return get_container(request).webhooks


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionsDep = Annotated[sessionmaker[Session], Depends(get_sessions)]
BlobsDep = Annotated[BlobStore, Depends(get_blobs)]
VideoServiceDep = Annotated[VideoService, Depends(get_video_service)]
EnrolmentDep = Annotated[Enrolment, Depends(get_enrolment)]
LikenessesDep = Annotated[Likenesses, Depends(get_likenesses)]
LikenessErasureDep = Annotated[LikenessErasure, Depends(get_likeness_erasure)]
UsersDep = Annotated[Users, Depends(get_users)]
PasswordsDep = Annotated[Passwords, Depends(get_passwords)]
WebSessionsDep = Annotated[WebSessions, Depends(get_web_sessions)]
InvitesDep = Annotated[Invites, Depends(get_invites)]
CohortsDep = Annotated[Cohorts, Depends(get_cohorts)]
AlertsDep = Annotated[Alerts, Depends(get_alerts)]
KeyServiceDep = Annotated[KeyService, Depends(get_key_service)]
RateLimiterDep = Annotated[RateLimiter, Depends(get_rate_limiter)]
KeyGuardDep = Annotated[KeyGuard, Depends(get_keyguard)]
PauseServiceDep = Annotated[PauseService, Depends(get_pause_service)]
PrivacyServiceDep = Annotated[PrivacyService, Depends(get_privacy_service)]
VerificationServiceDep = Annotated[VerificationService, Depends(get_verification_service)]
WebhookServiceDep = Annotated[WebhookService, Depends(get_webhook_service)]


def current_usage(principal: CurrentPrincipal, sessions: SessionsDep) -> dict[str, Any]:
    """The caller's limits and current use (active jobs, video-seconds in 24 h)."""
    with sessions() as s:
        return usage(s, principal, time.time())


UsageDep = Annotated[dict[str, Any], Depends(current_usage)]
