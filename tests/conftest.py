"""Shared fixtures: databases (SQLite always, PostgreSQL when reachable), miniature models, servers.

A server here is a real ``kinema serve`` (or ``kinema worker``) subprocess on a free port, driven
over HTTP (the harness is :mod:`testkit.server`, shared with bench/); models are the offline miniatures
built once per test session.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

# The harness, under the names the tests have always imported from here.
from testkit.server import (
    OWNER_EMAIL,
    PASSWORD,
    Proc,
    client_for,
    free_port,
    kinema_env,
    provision,
    start_kinema,
    start_server,
    wait_for,
)

__all__ = [
    "OWNER_EMAIL",
    "PASSWORD",
    "PG_ADMIN_URL",
    "PG_AVAILABLE",
    "REDIS_URL",
    "Proc",
    "client_for",
    "fresh_pg_database",
    "free_port",
    "kinema_env",
    "provision",
    "start_kinema",
    "start_server",
    "wait_for",
]

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# One intra-op thread for torch (and BLAS), here and in every kinema process a test starts (they inherit
# this environment). The miniatures gain nothing from a second OpenMP thread, and on a 2-core machine where
# the test process and the server share the cores, a descheduled OpenMP thread stalls the other at every
# barrier: the SDK lifecycle test took 569 s with the default 2 threads and 278 s with 1 on the same busy
# machine (tests/engine/conftest.py found the same in-process). Set OMP_NUM_THREADS yourself to override.
os.environ.setdefault("OMP_NUM_THREADS", "1")

PG_ADMIN_URL = os.environ.get("KINEMA_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("KINEMA_TEST_REDIS", "redis://127.0.0.1:6379/15")


def _pg_reachable() -> bool:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3):
            return True
    except Exception:
        return False


PG_AVAILABLE = _pg_reachable()


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Miniature Wan models built once, offline, for the whole session."""
    from kinema.engine.tiny import build_tiny_models

    path = tmp_path_factory.mktemp("models")
    build_tiny_models(path)
    return path


def _make_pg_database() -> tuple[str, str]:
    import psycopg

    name = f"kinema_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    return name, f"{base}/{name}"


def _drop_pg_database(name: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def fresh_pg_database() -> Iterator[str]:
    """A new, empty PostgreSQL database, dropped afterwards; skips the test when none is reachable."""
    if not PG_AVAILABLE:
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL}")
    name, url = _make_pg_database()
    try:
        yield url
    finally:
        _drop_pg_database(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: a SQLite file, and a new PostgreSQL database when one is reachable."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'kinema.db'}"
        return
    with fresh_pg_database() as url:
        yield url


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database (skipped when none is reachable)."""
    with fresh_pg_database() as url:
        yield url


@pytest.fixture
def kinema_server(tmp_path: Path, models_dir: Path) -> Iterator[object]:
    """Factory: ``kinema_server(db_url, workers=1, **env)`` starts a server stopped after the test."""
    procs: list[Proc] = []

    def factory(db_url: str, *, workers: int = 1, data_dir: Path | None = None, **extra: str) -> Proc:
        d = data_dir or tmp_path / "data"
        d.mkdir(parents=True, exist_ok=True)
        proc = start_server(d, db_url, models_dir, workers=workers, **extra)
        procs.append(proc)
        return proc

    yield factory
    for p in procs:
        p.stop()
