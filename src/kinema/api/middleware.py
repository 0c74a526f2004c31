"""Pure ASGI middleware: the request-body cap and the security headers on every response.

Both are plain ASGI callables (no ``BaseHTTPMiddleware``), so streaming responses stay streaming and
the request body is never buffered here.
"""

from __future__ import annotations

from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kinema.api.errors import envelope
from kinema.container import Container
from kinema.services.errors import PayloadTooLarge

# JSON, media and text responses load nothing, run nothing and may not be framed.
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
# Pages (the API docs, the retention policy) load their scripts, styles and images from this origin
# only: no inline script, no CDN, no eval.
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HSTS = "max-age=31536000; includeSubDomains"
COMMON_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
}


def security_headers(content_type: str, *, https: bool) -> dict[str, str]:
    """The headers for one response: a strict CSP (looser for HTML pages, still 'self' only), no
    sniffing, no framing, no referrer, and HSTS when the client reached us over https."""
    page = content_type.split(";")[0].strip().lower() == "text/html"
    headers = {**COMMON_HEADERS, "content-security-policy": PAGE_CSP if page else API_CSP}
    if https:
        headers["strict-transport-security"] = HSTS
    return headers


class SecurityHeaders:
    """Adds :func:`security_headers` to every HTTP response of the wrapped app."""

    def __init__(self, app: ASGIApp, container: Container) -> None:
        self.app = app
        self.container = container

    def _https(self, scope: Scope) -> bool:
        # Same rule as the session cookie's Secure flag: the setting when given, else the connection.
        from kinema.api.deps import is_https

        forced = self.container.settings.session_cookie_secure
        return forced if forced is not None else is_https(Request(scope), self.container)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        https = self._https(scope)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in security_headers(headers.get("content-type", ""), https=https).items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodyLimit:
    """Refuses a request body over ``limit`` bytes with a 413 in the error envelope.

    A declared Content-Length over the limit is refused before the app runs (before authentication,
    as a proxy would); a chunked body is counted as it streams in, and the route reading it gets
    :class:`PayloadTooLarge`, which the error handlers turn into the same 413.
    """

    def __init__(self, app: ASGIApp, limit: int, max_upload_bytes: int) -> None:
        self.app = app
        self.limit = limit
        self.max_upload_bytes = max_upload_bytes

    def _refusal(self, size: int | None) -> PayloadTooLarge:
        said = f"Request body is {size} bytes; " if size is not None else "Request body is too large; "
        return PayloadTooLarge(f"{said}uploads may be at most {self.max_upload_bytes} bytes.", code="file_too_large")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.limit:
            await self._respond(self._refusal(int(declared)), scope, receive, send)
            return
        total = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal total
            message = await receive()
            if message["type"] == "http.request":
                total += len(message.get("body", b""))
                if total > self.limit:
                    raise self._refusal(None)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except PayloadTooLarge as exc:
            if started:
                raise
            await self._respond(exc, scope, receive, tracking_send)

    @staticmethod
    async def _respond(exc: PayloadTooLarge, scope: Scope, receive: Receive, send: Send) -> None:
        response = envelope(
            exc.status, exc.message, type=exc.type, param=exc.param, code=exc.code, headers={"x-should-retry": "false"}
        )
        await response(scope, receive, send)
