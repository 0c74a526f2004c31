"""The audit trail of video events, and `kinema audit export` / `verify` catching tampering."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from kinema.config import Settings
from kinema.container import Container
from kinema.services.auth import Principal
from kinema.services.moderation import ModerationBlocked
from kinema.services.options import CreateVideo
from tests.conftest import kinema_env


def kinema(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kinema.cli", *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_video_events_are_audited_and_tampering_is_caught(tmp_path: Path, models_dir: Path) -> None:
    db = tmp_path / "k.db"
    settings = Settings(
        mode="dev", data_dir=tmp_path, database_url=f"sqlite:///{db}", models_dir=models_dir, default_model="tiny-wan"
    )
    container = Container.from_settings(settings)
    try:
        video = container.videos.create(Principal("alice"), CreateVideo(prompt="a kite", seconds="1"))
        with pytest.raises(ModerationBlocked):
            container.videos.create(Principal("alice"), CreateVideo(prompt="revenge porn", seconds="1"))
        container.videos.delete("alice", video.id)
    finally:
        container.close()

    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT action, actor, target, details FROM audit_log ORDER BY seq").fetchall()
    assert [(a, actor, target) for a, actor, target, _ in rows] == [
        ("video.create", "alice", video.id),
        ("moderation.refuse", "alice", None),
        ("video.delete", "alice", video.id),
    ]
    refusal = json.loads(rows[1][3])
    assert refusal["category"] == "nonconsensual_intimate" and "prompt" not in refusal  # policy: no prompt text
    assert "a kite" not in rows[0][3]  # the job id and settings, not the prompt or media

    env = kinema_env(tmp_path, f"sqlite:///{db}", models_dir)
    export = tmp_path / "audit.jsonl"
    r = kinema(["audit", "export", str(export)], env)
    assert r.returncode == 0, r.stderr
    assert kinema(["audit", "verify"], env).returncode == 0

    with sqlite3.connect(db) as conn:  # an insider edits a record
        conn.execute("UPDATE audit_log SET target = 'video_other' WHERE seq = 2")
    r = kinema(["audit", "verify"], env)
    assert r.returncode == 1 and "entry 2 edited" in r.stderr

    with sqlite3.connect(db) as conn:  # ... or removes the newest records and every trace of them
        conn.execute("UPDATE audit_log SET target = ? WHERE seq = 2", (video.id,))
        conn.execute("DELETE FROM audit_log WHERE seq >= 1")
        conn.execute("DELETE FROM audit_checkpoints")
        conn.execute("UPDATE audit_head SET next_seq = 1")
    assert kinema(["audit", "verify"], env).returncode == 0  # nothing left inside the database shows it
    r = kinema(["audit", "verify", "--checkpoint", str(export)], env)  # the exported checkpoint does
    assert r.returncode == 1 and "truncated" in r.stderr
