"""The ``kinema`` command line, run as a real subprocess."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from kinema.media.encode import encode_mp4
from tests.conftest import kinema_env


def kinema(args: list[str], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kinema.cli", *args], env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture
def env(tmp_path: Path, models_dir: Path) -> dict[str, str]:
    return kinema_env(tmp_path, f"sqlite:///{tmp_path / 'k.db'}", models_dir)


def test_generate_writes_a_playable_mp4_and_says_it_is_a_miniature(env: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    r = kinema(
        [
            "generate",
            "a kite",
            "-o",
            str(out),
            "--model",
            "tiny-wan",
            "--seconds",
            "2",
            "--steps",
            "2",
            "--seed",
            "3",
            "--size",
            "720x1280",
        ],
        env,
    )
    assert r.returncode == 0, r.stderr
    assert "makes no meaningful video" in r.stderr
    with av.open(io.BytesIO(out.read_bytes())) as c:
        frames = list(c.decode(video=0))
        assert (len(frames), frames[0].width, frames[0].height) == (17, 160, 256)  # OpenAI portrait -> 160x256


def test_generate_refuses_what_the_model_cannot_do(env: dict[str, str], tmp_path: Path) -> None:
    r = kinema(["generate", "x", "-o", str(tmp_path / "o.mp4"), "--model", "tiny-wan", "--size", "10x10"], env)
    assert r.returncode != 0 and "96x64" in r.stderr
    assert not (tmp_path / "o.mp4").exists()


def test_models_lists_presence(env: dict[str, str]) -> None:
    r = kinema(["models"], env)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    tiny = next(line for line in lines if line.startswith("tiny-wan"))
    real = next(line for line in lines if line.startswith("wan2.1-t2v-1.3b"))
    assert "[present]" in tiny and "[not pulled]" in real


def test_pull_builds_miniatures_without_network(tmp_path: Path, env: dict[str, str]) -> None:
    env = {**env, "KINEMA_MODELS_DIR": str(tmp_path / "fresh-models")}
    r = kinema(["pull", "tiny-wan"], env)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "fresh-models" / "tiny-wan" / "t2v" / "model_index.json").exists()


def test_serve_refuses_bad_settings_without_echoing_them(env: dict[str, str]) -> None:
    r = kinema(["serve"], {**env, "KINEMA_PASSWORD_HASH_MEMORY_KIB": "1024"}, timeout=60)
    assert r.returncode != 0 and "password_hash_memory_kib" in r.stderr
    secret_looking = "redis://:s3cr3t-password@nowhere:6379/0"
    r = kinema(["serve"], {**env, "KINEMA_TRUSTED_PROXIES": f'["{secret_looking}"]'}, timeout=60)
    assert r.returncode != 0 and "s3cr3t" not in r.stderr + r.stdout  # never echoed


def fresh_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A new user's environment: no KINEMA_* settings at all, a data folder with nothing in it."""
    env = {k: v for k, v in kinema_env(tmp_path, "", tmp_path).items() if not k.startswith("KINEMA_")}
    return {**env, "KINEMA_DATA_DIR": str(tmp_path / "kinema-data"), **extra}


def test_generate_works_out_of_the_box_and_its_output_carries_a_watermark(tmp_path: Path) -> None:
    out = tmp_path / "cat.mp4"
    env = fresh_env(tmp_path)
    r = kinema(["generate", "a cat", "-o", str(out)], env)
    assert r.returncode == 0, r.stderr
    # The default model is not pulled here: the miniature is used, and the note says how to get the real one.
    assert "kinema pull wan2.1-t2v-1.3b" in r.stderr and "miniature tiny-wan" in r.stderr
    with av.open(io.BytesIO(out.read_bytes())) as c:
        frames = list(c.decode(video=0))
        assert (len(frames), frames[0].width, frames[0].height) == (17, 256, 160)  # the miniature's default
    v = kinema(["verify", str(out)], env)
    assert v.returncode == 0, v.stderr
    assert "watermark: found" in v.stdout and "(this deployment)" in v.stdout


def test_generate_with_a_configured_default_that_is_not_pulled_says_what_to_do(tmp_path: Path) -> None:
    out = tmp_path / "cat.mp4"
    env = fresh_env(tmp_path, KINEMA_DEFAULT_MODEL="wan2.1-t2v-1.3b")  # chosen on purpose: no silent stand-in
    r = kinema(["generate", "a cat", "-o", str(out)], env)
    assert r.returncode != 0 and not out.exists()
    assert "kinema pull wan2.1-t2v-1.3b" in r.stderr and "--model tiny-wan" in r.stderr


def test_verify_tells_too_small_to_carry_a_mark_from_not_found(env: dict[str, str], tmp_path: Path) -> None:
    # Unmarked clips, so that the outcome is certain: a 96x64 output's mark may survive (then it is "found").
    rng = np.random.default_rng(5)
    small, large = tmp_path / "small.mp4", tmp_path / "large.mp4"
    small.write_bytes(encode_mp4(rng.integers(0, 255, (17, 64, 96, 3), dtype=np.uint8), 8))
    large.write_bytes(encode_mp4(rng.integers(0, 255, (17, 160, 256, 3), dtype=np.uint8), 8))
    v = kinema(["verify", str(small)], env)
    assert v.returncode == 0, v.stderr
    assert "watermark: too small to carry a mark (96x64" in v.stdout and "not found" not in v.stdout
    assert json.loads(kinema(["verify", "--json", str(small)], env).stdout)["watermark"]["state"] == "too_small"
    v = kinema(["verify", str(large)], env)
    assert "watermark: not found" in v.stdout and "too small" not in v.stdout
    assert json.loads(kinema(["verify", "--json", str(large)], env).stdout)["watermark"]["state"] == "not_found"
