"""Errors services raise; the API turns each into the OpenAI error envelope with its status."""

from __future__ import annotations

from kinema.media.errors import MediaError


class ServiceError(Exception):
    """Base: a message safe to show the caller, the parameter at fault, and a machine code."""

    status = 400
    type = "invalid_request_error"

    retryable = False  # whether the caller may usefully retry (the SDK honours ``x-should-retry``)

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code
        self.headers = dict(headers or {})


class InvalidRequest(ServiceError):
    """The request is malformed or asks for something this deployment cannot do (400)."""


class NotFound(ServiceError):
    """No such object for this caller. Also used for other owners' objects, so existence never leaks."""

    status = 404

    def __init__(self, what: str, object_id: str) -> None:
        super().__init__(f"No {what} found with id '{object_id}'.", param="id", code="not_found")


class Unauthorized(ServiceError):
    """No valid credential: missing, malformed, unknown, revoked, expired or suspended (401)."""

    status = 401

    def __init__(self, message: str, *, code: str = "invalid_api_key") -> None:
        super().__init__(message, code=code, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(ServiceError):
    """A valid credential that may not do this: missing scope, not an admin, address not allowed (403)."""

    status = 403
    type = "permission_error"


class RateLimited(ServiceError):
    """Over a rate limit or quota (429, with ``Retry-After``)."""

    status = 429
    type = "rate_limit_error"

    def __init__(self, message: str, *, code: str, retry_after: float, retryable: bool = False) -> None:
        seconds = max(1, int(retry_after + 0.999))
        super().__init__(message, code=code, headers={"Retry-After": str(seconds)})
        self.retry_after = seconds
        self.retryable = retryable


class Unavailable(ServiceError):
    """Generation is paused (503, with ``Retry-After``); reads keep working."""

    status = 503
    type = "service_unavailable"

    def __init__(self, message: str, *, code: str, retry_after: float) -> None:
        super().__init__(message, code=code, headers={"Retry-After": str(max(1, int(retry_after)))})


class Conflict(ServiceError):
    """The object exists but is in the wrong state for this request (409)."""

    status = 409


class PayloadTooLarge(ServiceError):
    """An upload exceeds the configured cap (413)."""

    status = 413


class UnsupportedMediaType(ServiceError):
    """An upload is not an accepted format (415)."""

    status = 415


def from_media_error(exc: MediaError, param: str) -> ServiceError:
    """The API error for a refused upload: 413 too large, 415 wrong format, 400 otherwise."""
    cls: type[ServiceError] = {
        "file_too_large": PayloadTooLarge,
        "unsupported_media_type": UnsupportedMediaType,
    }.get(exc.code, InvalidRequest)
    return cls(f"Invalid '{param}': {exc}", param=param, code=exc.code)
