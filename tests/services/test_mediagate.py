"""MediaGate: at most N uploads decoded at once, a bounded queue, and a clear 503 beyond it."""

from __future__ import annotations

import platform
import subprocess
import sys
import threading
import time

import pytest

from kinema.services.errors import Unavailable
from kinema.services.mediagate import MediaGate


def _hold(gate: MediaGate, release: threading.Event, entered: threading.Semaphore, errors: list[Exception]) -> None:
    try:
        with gate.slot("video"):
            entered.release()
            release.wait(10)
    except Exception as exc:  # collected for the test to inspect
        errors.append(exc)


def _start(gate: MediaGate, count: int, release: threading.Event) -> tuple[list[threading.Thread], list[Exception]]:
    entered = threading.Semaphore(0)
    errors: list[Exception] = []
    threads = [threading.Thread(target=_hold, args=(gate, release, entered, errors)) for _ in range(count)]
    for t in threads:
        t.start()
    return threads, errors


def _until(check: object, what: str) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def test_at_most_slots_run_and_the_queue_waits_its_turn() -> None:
    gate = MediaGate(slots=2, queue=3, wait_seconds=10)
    release = threading.Event()
    threads, errors = _start(gate, 5, release)
    _until(lambda: gate.running == 2 and gate.waiting == 3, "2 running and 3 waiting")
    release.set()
    for t in threads:
        t.join(10)
    assert errors == []
    assert (gate.running, gate.waiting) == (0, 0)


def test_beyond_the_queue_a_503_server_busy_with_retry_after() -> None:
    gate = MediaGate(slots=1, queue=1, wait_seconds=10)
    release = threading.Event()
    threads, errors = _start(gate, 2, release)
    _until(lambda: gate.running == 1 and gate.waiting == 1, "1 running and 1 waiting")
    with pytest.raises(Unavailable) as refused, gate.slot("input_reference"):
        raise AssertionError("entered a full gate")
    error = refused.value
    assert (error.status, error.code, error.param) == (503, "server_busy", "input_reference")
    assert int(error.headers["Retry-After"]) >= 1
    assert error.retryable  # the SDK waits Retry-After and retries by itself
    assert "'input_reference' was not looked at" in error.message
    release.set()
    for t in threads:
        t.join(10)
    assert errors == []


def test_a_waiter_gives_up_after_wait_seconds() -> None:
    gate = MediaGate(slots=1, queue=4, wait_seconds=0.2)
    release = threading.Event()
    threads, _ = _start(gate, 1, release)
    _until(lambda: gate.running == 1, "the slot taken")
    with pytest.raises(Unavailable), gate.slot("file"):
        raise AssertionError("entered a full gate")
    assert gate.waiting == 0
    release.set()
    threads[0].join(10)


def test_a_slot_is_given_back_when_the_work_fails() -> None:
    gate = MediaGate(slots=1, queue=0, wait_seconds=0)
    with pytest.raises(ValueError, match="bad upload"), gate.slot("video"):
        raise ValueError("bad upload")
    with gate.slot("video"):  # would be a 503 if the failed holder had kept its slot
        assert gate.running == 1
    assert gate.running == 0


def test_invalid_sizes_are_refused() -> None:
    with pytest.raises(ValueError):
        MediaGate(slots=0)
    with pytest.raises(ValueError):
        MediaGate(queue=-1)


def test_malloc_arenas_can_be_capped_on_glibc() -> None:
    # In a child process, so as not to change the allocator of the test run itself. Linux CI runs on glibc:
    # both mallopt calls must succeed there (elsewhere the function says False and changes nothing).
    script = (
        "from kinema.services.mediagate import limit_malloc_arenas, trim_heap\n"
        "ok = limit_malloc_arenas()\n"
        "trim_heap()\n"
        "raise SystemExit(0 if ok else 3)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], timeout=60)
    assert done.returncode == (0 if platform.libc_ver()[0] == "glibc" else 3)
