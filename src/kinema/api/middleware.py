"""Pure ASGI middleware: the request-body cap and the security headers on every response.

Both are plain ASGI callables (no ``BaseHTTPMiddleware``), so streaming responses stay streaming and
the request body is never buffered here.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kinema.api.deps import is_https
from kinema.api.errors import envelope
from kinema.api.headers import security_headers
from kinema.netaddr import IPNetwork
from kinema.services.errors import PayloadTooLarge


class SecurityHeaders:
    """Adds :func:`security_headers` to every HTTP response of the wrapped app."""

    def __init__(self, app: ASGIApp, *, secure_cookie: bool | None, trusted_proxies: Sequence[IPNetwork] = ()) -> None:
        self.app = app
        self.secure_cookie = secure_cookie
        self.trusted_proxies = trusted_proxies

    def _https(self, scope: Scope) -> bool:
        # Same rule as the session cookie's Secure flag: the setting when given, else the connection.
        if self.secure_cookie is not None:
            return self.secure_cookie
        return is_https(Request(scope), self.trusted_proxies)

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
