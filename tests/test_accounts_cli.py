"""``kinema admin`` and ``kinema keys`` as real subprocesses, and a cohort revoked in one call."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import PASSWORD, provision
from tests.test_cli import kinema


@pytest.fixture
def env(tmp_path: Path, models_dir: Path) -> dict[str, str]:
    from tests.conftest import kinema_env

    return kinema_env(tmp_path, f"sqlite:///{tmp_path / 'k.db'}", models_dir)


def kinema_in(args: list[str], env: dict[str, str], stdin: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kinema.cli", *args], env=env, input=stdin, capture_output=True, text=True, timeout=300
    )


def test_first_admin_keys_invites_and_pause_from_the_cli(env: dict[str, str], tmp_path: Path) -> None:
    r = kinema_in(["admin", "create-user", "root@example.com", "--admin", "--password-stdin"], env, PASSWORD + "\n")
    assert r.returncode == 0, r.stderr
    assert "created admin root@example.com" in r.stdout and PASSWORD not in r.stdout + r.stderr
    again = kinema_in(["admin", "create-user", "root@example.com", "--password-stdin"], env, PASSWORD + "\n")
    assert again.returncode != 0 and "already exists" in again.stderr
    short = kinema_in(["admin", "create-user", "x@example.com", "--password-stdin"], env, "short\n")
    assert short.returncode != 0 and "at least" in short.stderr
    # There is no way to pass a password on the command line.
    assert kinema(["admin", "create-user", "y@example.com", "--password", PASSWORD], env).returncode == 2

    saved = tmp_path / "ops.key"
    r = kinema(["keys", "create", "--user", "root@example.com", "--name", "ops", "--json", "--save", str(saved)], env)
    assert r.returncode == 0, r.stderr
    made = json.loads(r.stdout)
    assert made["key"].startswith("kin_") and saved.read_text().strip() == made["key"]
    assert stat.S_IMODE(os.stat(saved).st_mode) == 0o600
    listed = kinema(["keys", "list"], env).stdout
    assert made["id"] in listed and made["key"] not in listed

    r = kinema(["admin", "invite", "create", "friend@example.com", "--cohort", "early-access"], env)
    assert r.returncode == 0, r.stderr
    code = r.stdout.strip().splitlines()[-1]
    assert code.startswith("inv_")
    assert "pending" in kinema(["admin", "invite", "list"], env).stdout
    assert code not in kinema(["admin", "invite", "list"], env).stdout

    assert kinema(["admin", "pause", "--cohort", "early-access", "--reason", "maintenance"], env).returncode == 0
    assert kinema(["admin", "resume", "--cohort", "early-access"], env).stdout.startswith("resumed")
    assert kinema(["admin", "resume"], env).stdout.startswith("was not paused")

    assert kinema(["keys", "revoke", made["id"]], env).returncode == 0
    assert "revoked" in kinema(["keys", "list"], env).stdout

    audit = kinema(["audit", "verify"], env)
    assert audit.returncode == 0, audit.stderr
    exported = tmp_path / "audit.jsonl"
    assert kinema(["audit", "export", str(exported)], env).returncode == 0
    text = exported.read_text()
    actions = [json.loads(line).get("action") for line in text.splitlines()]
    for action in ("user.create", "key.create", "invite.create", "service.pause", "service.resume", "key.revoke"):
        assert action in actions, action
    assert PASSWORD not in text and made["key"] not in text and code not in text


@pytest.mark.slow
def test_admin_revokes_a_whole_cohort_in_one_call(tmp_path: Path, kinema_server) -> None:  # type: ignore[no-untyped-def]
    server = kinema_server(f"sqlite:///{tmp_path / 'k.db'}", workers=0)
    admin_key = provision(server.data_dir, server.db_url, "root@example.com", role="admin")
    admin = {"Authorization": f"Bearer {admin_key}"}
    early = [
        provision(server.data_dir, server.db_url, f"tester{i}@example.com", cohort="early-access") for i in range(3)
    ]
    early.append(provision(server.data_dir, server.db_url, "tester0@example.com"))  # a second key of a tester
    invite = httpx.post(
        f"{server.base_url}/v1/admin/invites",
        headers=admin,
        json={"email": "late@example.com", "cohort": "early-access"},
    ).json()
    for key in [*early, server.api_key]:
        assert httpx.get(f"{server.base_url}/v1/videos", headers={"Authorization": f"Bearer {key}"}).status_code == 200

    r = httpx.post(f"{server.base_url}/v1/admin/cohorts/early-access/revoke", headers=admin)
    assert r.status_code == 200, r.text
    assert (r.json()["keys_revoked"], r.json()["invites_revoked"]) == (4, 1)
    for key in early:
        r = httpx.get(f"{server.base_url}/v1/videos", headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 401 and r.json()["error"]["code"] == "api_key_revoked"
    # Another cohort's user is untouched; the invite no longer signs anyone up.
    assert (
        httpx.get(f"{server.base_url}/v1/videos", headers={"Authorization": f"Bearer {server.api_key}"}).status_code
        == 200
    )
    r = httpx.post(
        f"{server.base_url}/v1/auth/signup",
        json={"invite_code": invite["code"], "email": "late@example.com", "password": PASSWORD},
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_invite"
    cohorts = httpx.get(f"{server.base_url}/v1/admin/cohorts", headers=admin).json()["data"]
    assert next(c for c in cohorts if c["name"] == "early-access")["users"] == 3


@pytest.mark.slow
def test_dev_mode_creates_an_admin_and_a_saved_key_once(tmp_path: Path, models_dir: Path) -> None:
    from tests.conftest import free_port, kinema_env, start_kinema

    data = tmp_path / "data"
    keys = []
    for _ in range(2):  # the second start reuses the saved key
        port = free_port()
        env = kinema_env(data, f"sqlite:///{tmp_path / 'k.db'}", models_dir, KINEMA_PORT=str(port), KINEMA_WORKERS="0")
        proc = start_kinema(["serve", "--dev"], env, tmp_path / f"dev-{port}.log")
        try:
            base = f"http://127.0.0.1:{port}"
            for _ in range(300):
                try:
                    if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert proc.popen.poll() is None, proc.output()
                import time

                time.sleep(0.2)
            key_file = data / "dev-api-key"
            key = key_file.read_text().strip()
            assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
            me = httpx.get(f"{base}/v1/me", headers={"Authorization": f"Bearer {key}"}).json()
            assert me["user"]["email"] == "dev@localhost" and me["user"]["role"] == "admin" and "admin" in me["scopes"]
            keys.append(key)
        finally:
            proc.stop()
    assert keys[0] == keys[1]


def test_rotate_master_refuses_without_confirmation_and_rewraps_with_it(env: dict[str, str], tmp_path: Path) -> None:
    r = kinema(["keys", "rotate-master"], env)
    assert r.returncode != 0 and "stop every" in r.stderr
    r = kinema(["keys", "rotate-master", "--yes"], env)
    assert r.returncode != 0 and "no master key" in r.stderr  # a fresh deployment: nothing to rotate
    assert kinema(["admin", "users"], env).returncode == 0  # any start creates the master key
    before = (tmp_path / "keys" / "master.key").read_bytes()
    r = kinema(["keys", "rotate-master", "--yes"], env)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "keys" / "master.key").read_bytes() != before
    assert "rewrapped 0 likeness data keys" in r.stdout
    master = tmp_path / "keys" / "master.key"
    assert master.exists() and stat.S_IMODE(os.stat(master).st_mode) == 0o600
