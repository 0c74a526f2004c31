"""The small interface every blob store implements (a local folder now, S3-compatible later)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol


class BlobNotFound(KeyError):
    """No blob is stored under this key."""


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
