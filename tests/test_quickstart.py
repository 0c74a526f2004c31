"""The README as a new user meets it: `bash scripts/serve.sh`, then examples/quickstart.py, both as written.

The server is started by the script itself (not by a fixture), on the dev account's real limits (4 jobs at a
time, the default rate limit), with a fresh data folder and no models, so the miniature is built as on a new
machine. Only KINEMA_PORT and KINEMA_DATA_DIR are set, as the README documents. The quickstart runs unchanged
with the interpreter the README names; every file it says it wrote is decoded back.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import httpx
import pytest
from PIL import Image

from tests.conftest import free_port

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "examples" / "quickstart.py"


def venv_python() -> str:
    """The interpreter the README tells people to use (`.venv/bin/python`), else this one."""
    path = ROOT / ".venv" / "bin" / "python"
    return str(path) if path.exists() else sys.executable


def decode(path: Path) -> tuple[int, int, int]:
    with av.open(io.BytesIO(path.read_bytes())) as container:
        frames = list(container.decode(video=0))
    return len(frames), frames[0].width, frames[0].height


def test_quickstart_runs_as_written_against_serve_sh(tmp_path: Path) -> None:
    port, data = free_port(), tmp_path / "kinema-data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("KINEMA_")}
    env.update(KINEMA_PORT=str(port), KINEMA_DATA_DIR=str(data))
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            ["bash", "scripts/serve.sh"], cwd=ROOT, env=env, stdout=out, stderr=out, start_new_session=True
        )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 300
        while True:
            assert server.poll() is None, f"scripts/serve.sh exited with {server.returncode}:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"scripts/serve.sh did not come up:\n{log.read_text()}"
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        assert "run `. .venv/bin/activate`" in log.read_text()  # how to reach the kinema command

        work = tmp_path / "work"
        work.mkdir()
        run = subprocess.run(
            [venv_python(), str(QUICKSTART)], cwd=work, env=env, capture_output=True, text=True, timeout=1500
        )
        assert run.returncode == 0, f"{run.stdout}\n{run.stderr}\n--- server:\n{log.read_text()[-5000:]}"
        assert "DeprecationWarning" not in run.stderr
        lines = run.stdout.splitlines()
        assert lines[0] == "completed 256x160 4" and "extended to 8 seconds" in lines
        assert lines[-1] == "wrote kite.mp4 kite.webp snow.mp4 longer.mp4"
        assert sum(" completed 100" in line for line in lines) == 8  # every job, listed, and nothing else

        assert decode(work / "kite.mp4") == (33, 256, 160)  # 4 s at 8 fps + 1
        assert decode(work / "snow.mp4") == (33, 256, 160)
        assert decode(work / "longer.mp4") == (33 + 33 - 1, 256, 160)
        with Image.open(work / "kite.webp") as thumb:
            assert (thumb.format, thumb.size) == ("WEBP", (256, 160))
        served = log.read_text()
        assert '" 429 ' not in served and '" 500 ' not in served  # never over the dev account's limits

        # Every output is watermarked, the default miniature size included.
        key = (data / "dev-api-key").read_text().strip()
        for name in ("kite.mp4", "longer.mp4"):
            r = httpx.post(
                f"{base}/v1/provenance/verify",
                files={"file": (name, (work / name).read_bytes())},
                headers={"Authorization": f"Bearer {key}"},
                timeout=120,
            )
            assert r.status_code == 200, r.text
            mark = r.json()["watermark"]
            assert mark["state"] == "found" and mark["found"] and mark["this_deployment"], mark
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait(10)


def test_install_installs_nothing_when_the_venv_has_everything() -> None:
    """scripts/serve.sh runs scripts/install.sh every time; a second run must not reinstall (or need a network)."""
    check = [venv_python(), str(ROOT / "scripts" / "installed.py")]
    assert subprocess.run([*check, "postgres,examples"], cwd=ROOT, timeout=120).returncode == 0
    assert subprocess.run([*check, "test"], cwd=ROOT, timeout=120).returncode == 0
    assert subprocess.run([*check, "no-such-extra"], cwd=ROOT, timeout=120).returncode == 1
    # Offline on purpose: any pip download would fail, so a no-op is the only way to exit 0 here.
    env = {**os.environ, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": ""}
    run = subprocess.run(["bash", "scripts/install.sh"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and run.stdout == "", run.stdout + run.stderr


def test_an_unmet_requirement_is_noticed() -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from installed import satisfied  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    from packaging.requirements import Requirement

    assert satisfied(Requirement("openai>=3.0,<4"), set())
    assert not satisfied(Requirement("openai>=99"), set())  # too old
    assert not satisfied(Requirement("no-such-distribution-kinema"), set())  # missing
    assert satisfied(Requirement("uvicorn[standard]>=0.30"), set())  # extras followed


def test_the_readme_note_on_sdk_objects_still_holds() -> None:
    """The installed SDK refuses `{"image_url": ...}` and `{"id": ...}` before sending (so the README's
    extra_body form is needed); the quickstart test shows that form working. If this fails, the SDK has
    changed: update the note in the README."""
    import openai

    client = openai.OpenAI(base_url="http://127.0.0.1:9/v1", api_key="kin_x", max_retries=0)
    with pytest.raises(RuntimeError, match="input_reference"):
        client.videos.create(prompt="p", input_reference={"image_url": "data:image/png;base64,AAAA"})  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="video"):
        client.videos.edit(prompt="p", video={"id": "video_1"})  # type: ignore[arg-type]
