"""A bounded pool for decoding and face analysis of uploads, and handing freed memory back to the OS.

Decoding an upload and looking for faces in it takes one CPU core and tens to hundreds of megabytes for a
few seconds. The request handlers run in a thread pool of about forty threads, so without a bound forty
uploads at once would take forty times that. ``MediaGate`` lets ``slots`` of them work at a time, lets
``queue`` more wait (at most ``wait_seconds``), and refuses the rest at once with a 503 ``server_busy``
that carries ``Retry-After`` (the openai SDK waits that long and retries by itself).

glibc's allocator keeps freed memory for reuse, in up to eight arenas per core, one per thread that ever
allocated; after a burst of large decodes in many threads the process stays gigabytes larger.
``limit_malloc_arenas`` caps the arenas and makes large buffers come from (and go back to) the OS directly;
``trim_heap`` returns what the heap still holds after a decode.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

from kinema.services.errors import Unavailable

log = logging.getLogger(__name__)

# mallopt parameters (glibc's malloc.h).
_M_MMAP_THRESHOLD: Final = -3
_M_ARENA_MAX: Final = -8

ARENA_MAX: Final = 2
"""Malloc arenas per process (glibc's default is eight per core: 128 on this 16-core kind of machine)."""
MMAP_THRESHOLD: Final = 1024 * 1024
"""Allocations at least this large are mapped from the OS and unmapped on free. Fixing it also stops glibc from
raising the threshold to 32 MB after the first large free, which otherwise moves every decoded frame into
arenas that are never given back."""


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        # Only glibc has these two; musl and macOS do not.
        libc.mallopt  # noqa: B018
        libc.malloc_trim  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


_LIBC: Final = _libc()


def limit_malloc_arenas(arenas: int = ARENA_MAX, mmap_threshold: int = MMAP_THRESHOLD) -> bool:
    """Cap glibc's malloc arenas and fix its mmap threshold for this process; False where not glibc.

    Call once at start-up, before the request and worker threads exist (an arena is made per thread on
    its first allocation, and existing ones stay).
    """
    if _LIBC is None:
        return False
    ok = bool(_LIBC.mallopt(_M_ARENA_MAX, arenas)) and bool(_LIBC.mallopt(_M_MMAP_THRESHOLD, mmap_threshold))
    if not ok:
        log.warning("mallopt refused the arena cap; memory freed after large uploads may not be given back")
    return ok


def trim_heap() -> None:
    """Give the memory the allocator holds free back to the OS (glibc's ``malloc_trim(0)``; a no-op elsewhere)."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


class MediaGate:
    """At most ``slots`` holders at a time, at most ``queue`` waiting; beyond that, 503 ``server_busy``.

    Use as ``with gate.slot("input_reference"): ...`` around decoding and face analysis of one upload.
    Thread-safe; fair enough (waiters are woken in no set order, each waits at most ``wait_seconds``).
    """

    def __init__(self, slots: int = 2, queue: int = 8, wait_seconds: float = 60.0) -> None:
        if slots < 1 or queue < 0 or wait_seconds < 0:
            raise ValueError("slots must be >= 1, queue >= 0, wait_seconds >= 0")
        self.slots = slots
        self.queue = queue
        self.wait_seconds = wait_seconds
        self._cond = threading.Condition()
        self._running = 0
        self._waiting = 0
        self._mean_hold = 2.0  # seconds; a moving average of how long one holder keeps its slot

    @property
    def running(self) -> int:
        """Holders now."""
        return self._running

    @property
    def waiting(self) -> int:
        """Waiters now."""
        return self._waiting

    @contextmanager
    def slot(self, param: str) -> Iterator[None]:
        """Hold one slot for the block; 503 naming ``param`` when the queue is full or the wait too long."""
        self._acquire(param)
        started = time.monotonic()
        try:
            yield
        finally:
            held = time.monotonic() - started
            with self._cond:
                self._running -= 1
                self._mean_hold = 0.8 * self._mean_hold + 0.2 * held
                idle = self._running == 0
                self._cond.notify_all()
            if idle:
                trim_heap()  # the last large decode of a burst: hand its memory back

    def _acquire(self, param: str) -> None:
        with self._cond:
            if self._running < self.slots and self._waiting == 0:
                self._running += 1
                return
            if self._waiting >= self.queue:
                raise self._busy(param)
            self._waiting += 1
            try:
                deadline = time.monotonic() + self.wait_seconds
                while self._running >= self.slots:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise self._busy(param)
                    self._cond.wait(left)
                self._running += 1
            finally:
                self._waiting -= 1

    def _busy(self, param: str) -> Unavailable:
        # Roughly when a slot should be free for one more: the queue ahead, shared by the slots.
        retry_after = max(1.0, self._mean_hold * (self._waiting + 1) / self.slots)
        error = Unavailable(
            f"The server is busy decoding other uploads ({self.slots} at a time, {self.queue} waiting); "
            f"'{param}' was not looked at. Retry after the time in Retry-After.",
            code="server_busy",
            retry_after=retry_after,
        )
        error.param = param
        error.retryable = True  # the SDK then waits Retry-After and tries again by itself
        return error
