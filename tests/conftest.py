"""Shared fixtures: databases (SQLite always, PostgreSQL when reachable), miniature models, servers.

A server here is a real ``kinema serve`` (or ``kinema worker``) subprocess on a free port, driven
over HTTP; models are the offline miniatures built once per test session.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import openai
import pytest

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
OWNER_EMAIL = "owner@example.com"
PASSWORD = "correct horse battery staple"


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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def kinema_env(data_dir: Path, db_url: str, models_dir: Path, **extra: str) -> dict[str, str]:
    """Environment for a kinema subprocess: only the settings given here, plus PATH and friends."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KINEMA_")}
    env.update(
        {
            "KINEMA_DATA_DIR": str(data_dir),
            "KINEMA_DATABASE_URL": db_url,
            "KINEMA_MODELS_DIR": str(models_dir),
            # The minimum argon2id cost the settings accept: test logins stay fast.
            "KINEMA_PASSWORD_HASH_MEMORY_KIB": "19456",
            "KINEMA_PASSWORD_HASH_TIME_COST": "2",
            "KINEMA_PASSWORD_HASH_PARALLELISM": "1",
            # Generous limits: tests that exercise limits set their own.
            "KINEMA_DEFAULT_REQUESTS_PER_MINUTE": "100000",
            "KINEMA_DEFAULT_CONCURRENT_JOBS": "1000",
            "KINEMA_DEFAULT_VIDEO_SECONDS_PER_DAY": "1000000",
            "KINEMA_KEYGUARD_MAX_REQUESTS_PER_MINUTE": "1000000",
            "KINEMA_DEFAULT_MODEL": "tiny-wan",
            "KINEMA_POLL_SECONDS": "0.05",
            "KINEMA_POLL_AFTER_MS": "100",
            "KINEMA_PROGRESS_INTERVAL_SECONDS": "0.05",
            "KINEMA_CONFIG": str(data_dir / "no-such-kinema.toml"),
            "HF_HUB_OFFLINE": "1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


def provision(
    data_dir: Path,
    db_url: str,
    email: str = OWNER_EMAIL,
    *,
    role: str = "member",
    cohort: str = "default",
    scopes: list[str] | None = None,
    password: str | None = PASSWORD,
    **key_options: object,
) -> str:
    """Create (or reuse) the account ``email`` in the database and return a new API key for it.

    Done through the real services, as ``kinema admin create-user`` and ``kinema keys create`` do,
    without starting a process for each.
    """
    from kinema.audit.checkpoint import CheckpointSigner
    from kinema.audit.log import AuditLog
    from kinema.db.session import make_engine, make_session_factory, upgrade_to_head
    from kinema.services.accounts import AccountService, DefaultLimits, PasswordPolicy
    from kinema.services.auth import MEMBER_SCOPES, role_scopes
    from kinema.services.errors import NotFound
    from kinema.services.keys import KeyService

    engine = make_engine(db_url)
    try:
        upgrade_to_head(engine)
        sessions = make_session_factory(engine)
        audit = AuditLog(sessions, CheckpointSigner.load_or_create(data_dir / "audit" / "audit-signing.key"))
        accounts = AccountService(
            sessions,
            audit,
            passwords=PasswordPolicy(memory_kib=19456, time_cost=2, parallelism=1),
            defaults=DefaultLimits(100000, 1000, 1e6),
        )
        try:
            user = accounts.find_user(email)
        except NotFound:
            user = accounts.create_user(email, password, role=role, cohort=cohort, actor="test")
        wanted = scopes if scopes is not None else sorted(role_scopes(role) if role == "admin" else MEMBER_SCOPES)
        return KeyService(sessions, audit, accounts).create(user.id, "test", scopes=wanted, **key_options).secret  # type: ignore[arg-type]
    finally:
        engine.dispose()


@dataclass
class Proc:
    """A running kinema subprocess and where its output goes."""

    popen: subprocess.Popen[bytes]
    log: Path
    base_url: str = ""
    extra: dict[str, str] = field(default_factory=dict)
    api_key: str = ""  # a member's key, made by start_server
    data_dir: Path | None = None
    db_url: str = ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def start_kinema(args: list[str], env: dict[str, str], log: Path) -> Proc:
    """Start ``kinema ARGS`` with its output in ``log``."""
    fh = log.open("ab")
    popen = subprocess.Popen([sys.executable, "-m", "kinema.cli", *args], env=env, stdout=fh, stderr=fh)
    return Proc(popen, log)


def start_server(data_dir: Path, db_url: str, models_dir: Path, *, workers: int = 1, **extra: str) -> Proc:
    """Start ``kinema serve`` on a free port and wait until /healthz answers."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = kinema_env(data_dir, db_url, models_dir, KINEMA_PORT=str(port), KINEMA_WORKERS=str(workers), **extra)
    api_key = provision(data_dir, db_url)
    proc = start_kinema(["serve"], env, data_dir / f"serve-{port}.log")
    proc.base_url = f"http://127.0.0.1:{port}"
    proc.api_key, proc.data_dir, proc.db_url = api_key, data_dir, db_url
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            raise RuntimeError(f"kinema serve exited with {proc.popen.returncode}:\n{proc.output()}")
        try:
            if httpx.get(f"{proc.base_url}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.stop(signal.SIGKILL)
    raise RuntimeError(f"kinema serve did not come up:\n{proc.output()}")


def client_for(server: Proc, key: str | None = None, *, timeout: float = 60) -> openai.OpenAI:
    """The official SDK against ``server``, with ``key`` (default: the server's member key), no retries."""
    return openai.OpenAI(
        base_url=f"{server.base_url}/v1", api_key=key or server.api_key, max_retries=0, timeout=timeout
    )


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``check`` every 50 ms until it is true; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


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
