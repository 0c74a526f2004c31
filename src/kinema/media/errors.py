"""The single exception type for user-supplied media that we refuse."""

from __future__ import annotations

from typing import Literal, get_args

MediaErrorCode = Literal[
    "unsupported_media_type",
    "file_too_large",
    "too_many_pixels",
    "corrupt_media",
    "video_too_long",
]
"""Machine-readable reasons; the API layer maps them to HTTP statuses (415, 413, 422, ...)."""

MEDIA_ERROR_CODES: frozenset[str] = frozenset(get_args(MediaErrorCode))


class MediaError(ValueError):
    """A user-supplied file we refuse; message is safe to show the user.

    The message never contains decoder output, paths or exception text from FFmpeg/Pillow
    (those can leak internals); the original exception, if any, is chained as ``__cause__``
    for the server log.
    """

    def __init__(self, message: str, code: str) -> None:
        if code not in MEDIA_ERROR_CODES:
            # A typo here would silently become an unmapped error code at the API layer.
            raise ValueError(f"unknown media error code: {code!r}")
        super().__init__(message)
        self.message = message
        self.code = code

    def __repr__(self) -> str:
        return f"MediaError({self.message!r}, code={self.code!r})"
