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
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request

from kinema.container import Container
from kinema.services.auth import SCOPES, ClientInfo, Principal
from kinema.services.errors import Forbidden, Unauthorized
from kinema.services.netaddr import client_ip, parse_address
from kinema.services.videos import VideoService

SESSION_COOKIE = "kinema_session"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def get_container(request: Request) -> Container:
    """The application's wired services (set once by ``create_app``)."""
    container: Container = request.app.state.container
    return container


ContainerDep = Annotated[Container, Depends(get_container)]


def get_client(request: Request, container: ContainerDep) -> ClientInfo:
    """The client's address (after trusted proxies) and user agent."""
    peer = request.client.host if request.client else "0.0.0.0"
    forwarded = ",".join(request.headers.getlist("x-forwarded-for")) or None
    ip = client_ip(peer, forwarded, container.trusted_proxies)
    return ClientInfo(ip=ip, user_agent=request.headers.get("user-agent", "")[:512])


ClientDep = Annotated[ClientInfo, Depends(get_client)]


def is_https(request: Request, container: Container) -> bool:
    """The client's connection was https: directly, or as a trusted proxy says in X-Forwarded-Proto."""
    if request.url.scheme == "https":
        return True
    proto = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    peer = parse_address(request.client.host) if request.client else None
    return proto == "https" and peer is not None and any(peer in net for net in container.trusted_proxies)


def get_principal(request: Request, container: ContainerDep, client: ClientDep) -> Principal:
    """Authenticate the request (key or session), apply the shared-key defense and the rate limits."""
    header = request.headers.get("authorization")
    cookie = request.cookies.get(SESSION_COOKIE)
    if header is not None:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("Malformed Authorization header: send 'Authorization: Bearer <API key>'.")
        principal = container.keys.authenticate(token.strip(), client)
        # Rate limit first: a request refused with 429 (which clients retry) does not count as usage
        # towards the shared-key defense's rate threshold.
        container.ratelimiter.check(principal)
        container.keyguard.observe(principal, client)
    elif cookie:
        principal, csrf = container.accounts.session_principal(cookie)
        request.state.csrf_token = csrf  # for GET /v1/me, without a second session lookup
        if request.method not in SAFE_METHODS:
            sent = request.headers.get(CSRF_HEADER, "")
            if not sent or not hmac.compare_digest(sent.encode(), csrf.encode()):
                raise Forbidden(
                    f"Missing or wrong {CSRF_HEADER} header: a signed-in browser request that changes something "
                    "must echo the session's CSRF token.",
                    code="csrf_failed",
                )
        container.ratelimiter.check(principal)
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


def get_video_service(container: ContainerDep) -> VideoService:
    """The video service."""
    return container.videos


VideosRead = Annotated[Principal, Depends(require("videos:read"))]
VideosWrite = Annotated[Principal, Depends(require("videos:write"))]
KeysRead = Annotated[Principal, Depends(require("keys:read"))]
KeysWrite = Annotated[Principal, Depends(require("keys:write"))]
AdminPrincipal = Annotated[Principal, Depends(require_admin)]
SessionPrincipal = Annotated[Principal, Depends(require_session)]
VideoServiceDep = Annotated[VideoService, Depends(get_video_service)]
