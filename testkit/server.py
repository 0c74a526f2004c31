"""The server harness: a real ``kinema serve`` (or ``kinema worker``) subprocess on a free port, its
environment, an account and API key provisioned through the real services, and the SDK client for it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import openai

OWNER_EMAIL = "owner@example.com"
PASSWORD = "correct horse battery staple"


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
    from kinema.services.accounts import DefaultLimits, PasswordHashing, PasswordPolicy, Users
    from kinema.services.auth import MEMBER_SCOPES, role_scopes
    from kinema.services.errors import NotFound
    from kinema.services.keys import KeyService

    engine = make_engine(db_url)
    try:
        upgrade_to_head(engine)
        sessions = make_session_factory(engine)
        audit = AuditLog(sessions, CheckpointSigner.load_or_create(data_dir / "audit" / "audit-signing.key"))
        users = Users(
            sessions,
            audit,
            hashing=PasswordHashing(PasswordPolicy(memory_kib=19456, time_cost=2, parallelism=1)),
            defaults=DefaultLimits(100000, 1000, 1e6),
        )
        try:
            user = users.find_user(email)
        except NotFound:
            user = users.create_user(email, password, role=role, cohort=cohort, actor="test")
        wanted = scopes if scopes is not None else sorted(role_scopes(role) if role == "admin" else MEMBER_SCOPES)
        return KeyService(sessions, audit, users).create(user.id, "test", scopes=wanted, **key_options).secret  # type: ignore[arg-type]
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
