"""The shared-key defense end to end: a leaked key, used from many networks, is suspended.

A real ``kinema serve`` behind a (simulated) trusted reverse proxy on 127.0.0.1: each request's
``X-Forwarded-For`` names a client in another /24, as if a key pasted into a public repository were
being used from all over the internet. Driven with the official `openai` SDK.
"""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import Proc, client_for, kinema_env, provision

warnings.filterwarnings("ignore", category=DeprecationWarning)
pytestmark = pytest.mark.slow
MAX_NETWORKS = 4
BEHIND_PROXY = {"KINEMA_TRUSTED_PROXIES": '["127.0.0.1"]', "KINEMA_KEYGUARD_MAX_NETWORKS": str(MAX_NETWORKS)}


def forwarded_for(i: int) -> dict[str, str]:
    """A client in the /24 number ``i`` (198.51.0.0/24, 198.51.1.0/24, ...), as a proxy reports it."""
    return {"X-Forwarded-For": f"198.51.{i}.10"}


def get(server: Proc, key: str, path: str) -> Any:
    r = httpx.get(f"{server.base_url}/v1{path}", headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 200, r.text
    return r.json()


def audit_entries(server: Proc, models_dir: Path, tmp_path: Path) -> list[dict[str, Any]]:
    """Every audit log entry, through ``kinema audit export``."""
    assert server.data_dir is not None
    out = tmp_path / "audit.jsonl"
    env = kinema_env(server.data_dir, server.db_url, models_dir)
    done = subprocess.run(
        [sys.executable, "-m", "kinema.cli", "audit", "export", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in out.read_text().splitlines() if line.strip()]


def test_leaked_key_used_from_many_networks_is_suspended(
    db_url: str, tmp_path: Path, models_dir: Path, kinema_server
) -> None:  # type: ignore[no-untyped-def]
    server = kinema_server(db_url, workers=0, **BEHIND_PROXY)
    key_a = server.api_key
    key_b = provision(server.data_dir, server.db_url)  # the same owner's second key, used only by the owner
    leaked, mine = client_for(server, key_a), client_for(server, key_b)

    answered = 0
    refusal: openai.AuthenticationError | None = None
    for i in range(20):
        try:
            leaked.videos.list(extra_headers=forwarded_for(i))
            answered += 1
        except openai.AuthenticationError as exc:
            refusal = exc
            break
    assert refusal is not None, "the key was never suspended"
    assert answered == MAX_NETWORKS  # suspended by the request from the 5th network, well before 50
    assert refusal.status_code == 401 and refusal.code == "api_key_suspended"
    assert f"more than {MAX_NETWORKS} different networks" in refusal.message

    # From then on the key is refused everywhere, even from a network it was used from before.
    for headers in (forwarded_for(0), forwarded_for(30), {}):
        with pytest.raises(openai.AuthenticationError) as err:
            leaked.videos.list(extra_headers=headers)
        assert err.value.code == "api_key_suspended"
    with pytest.raises(openai.AuthenticationError):
        leaked.videos.create(prompt="still mine?", seconds="1")

    # The owner's other key is untouched.
    assert mine.videos.list().data == []
    keys = {k["hint"]: k for k in get(server, key_b, "/keys")["data"]}
    (hint_a,) = [h for h in keys if key_a.startswith(h)]
    (hint_b,) = [h for h in keys if key_b.startswith(h)]
    key_a_id = keys[hint_a]["id"]
    assert keys[hint_a]["status"] == "suspended" and keys[hint_a]["suspend_reason"]
    assert keys[hint_b]["status"] == "active"

    # The owner is alerted, and so are the administrators.
    alerts = get(server, key_b, "/alerts")["data"]
    assert [(a["kind"], a["subject"]) for a in alerts] == [("key_suspended", key_a_id)]
    assert hint_a in alerts[0]["message"] and "create a new key" in alerts[0]["message"]
    admin_key = provision(server.data_dir, server.db_url, "admin@example.com", role="admin")
    everyone = get(server, admin_key, "/admin/alerts")["data"]
    assert [(a["kind"], a["subject"], a["user_id"]) for a in everyone] == [
        ("key_suspended", key_a_id, alerts[0]["user_id"])
    ]

    # One audit entry, with counts but no addresses (nor any key material).
    suspensions = [e for e in audit_entries(server, models_dir, tmp_path) if e.get("action") == "key.suspend"]
    assert len(suspensions) == 1
    entry = suspensions[0]
    assert entry["target"] == key_a_id and entry["actor"] is None
    assert entry["details"]["reason"] == "networks" and entry["details"]["networks"] == MAX_NETWORKS + 1
    text = json.dumps(entry)
    assert "198.51." not in text and "127.0.0.1" not in text
    assert key_a not in text and key_b not in text


def test_forwarded_for_from_an_untrusted_peer_is_ignored(db_url: str, kinema_server) -> None:  # type: ignore[no-untyped-def]
    # No trusted proxies: anyone can send X-Forwarded-For, so it is ignored and every request below
    # comes from 127.0.0.1, one network.
    server = kinema_server(db_url, workers=0, KINEMA_KEYGUARD_MAX_NETWORKS=str(MAX_NETWORKS))
    client = client_for(server, server.api_key)
    for i in range(20):
        client.videos.list(extra_headers=forwarded_for(i))
    assert client.videos.list().data == []
    (key,) = get(server, server.api_key, "/keys")["data"]
    assert key["status"] == "active" and key["suspended_at"] is None
    assert get(server, server.api_key, "/alerts")["data"] == []
