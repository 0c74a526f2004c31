"""The small interface every blob store implements: a local folder, or an S3-compatible bucket."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Protocol

_KEY = re.compile(r"^[A-Za-z0-9_\-]+(/[A-Za-z0-9_\-.]+)*$")


class BlobNotFound(KeyError):
    """No blob is stored under this key."""


class BlobStoreUnavailable(RuntimeError):
    """The store could not be reached or refused the request (down, timing out, denied, misconfigured).

    The API answers 503 ``storage_unavailable``; a job that meets it fails with that code. The message
    names the operation and the store's error code, never a credential."""


def check_key(key: str) -> str:
    """``key`` if it is a server-made key (letters, digits, ``_-.`` segments, no ``..``); else ValueError."""
    if not _KEY.match(key) or ".." in key.split("/"):
        raise ValueError(f"invalid blob key {key!r}")
    return key


class BlobStore(Protocol):
    """Bytes under server-made keys such as ``videos/<id>/<token>/video.mp4``."""

    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key`` atomically: readers see the old blob, or all of the new one."""

    def get(self, key: str) -> bytes:
        """Return the blob, or raise :class:`BlobNotFound`."""

    def iter_chunks(self, key: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        """Stream the blob in chunks, or raise :class:`BlobNotFound` before the first chunk."""

    def size(self, key: str) -> int:
        """Size in bytes, or raise :class:`BlobNotFound`."""

    def exists(self, key: str) -> bool:
        """Whether a blob is stored under ``key``."""

    def delete(self, key: str) -> bool:
        """Delete one blob; False if there was none."""

    def delete_prefix(self, prefix: str) -> int:
        """Delete every blob whose key starts with ``prefix/``; return how many were removed."""

    def list_prefix(self, prefix: str) -> list[str]:
        """Keys under ``prefix/``, sorted."""

    def download_url(self, key: str, *, filename: str, media_type: str) -> str | None:
        """A short-lived URL the client may fetch the blob from directly, or None to stream it through Kinema."""
