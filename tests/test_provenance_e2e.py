"""Provenance end to end: a generated video is signed and watermarked; verify tells trusted, tampered,
stripped-but-traced and absent apart, and names the video only to its owner."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import av
import httpx
import numpy as np
import openai
import pytest

from kinema.media.encode import encode_mp4
from kinema.provenance import c2pa
from tests.conftest import kinema_env

pytestmark = pytest.mark.slow


def reencode_without_metadata(mp4: bytes, crf: int = 28) -> bytes:
    """What a re-post does: decode, encode again (C2PA gone), keep the frames."""
    with av.open(io.BytesIO(mp4)) as c:
        frames = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
    return encode_mp4(frames, 8, crf=crf)


def flip_in_mdat(mp4: bytes) -> bytes:
    at = mp4.index(b"mdat") + 64
    return mp4[:at] + bytes([mp4[at] ^ 0xFF]) + mp4[at + 1 :]


def test_signed_watermarked_and_traced(tmp_path: Path, models_dir: Path, kinema_server) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "data"
    db = f"sqlite:///{tmp_path / 'k.db'}"
    server = kinema_server(db, data_dir=data)
    client = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key=server.api_key, max_retries=0)
    # The miniature's default size (256x160), large enough for the watermark to survive a re-encode
    # (at 96x64 the 128-px watermark tile does not fit; see docs/provenance.md).
    video = client.videos.create_and_poll(
        prompt="a kite", seconds="4", extra_body={"num_inference_steps": 2, "seed": 11}
    )
    assert video.status == "completed", video.error
    assert video.size == "256x160"
    mp4 = client.videos.download_content(video.id).read()
    thumb = client.videos.download_content(video.id, variant="thumbnail").read()

    def verify(blob: bytes, name: str = "f.mp4") -> dict:  # type: ignore[type-arg]
        r = httpx.post(
            f"{server.base_url}/v1/provenance/verify",
            files={"file": (name, blob)},
            headers={"Authorization": f"Bearer {server.api_key}"},
            timeout=60,
        )
        assert r.status_code == 200, r.text
        return r.json()

    original = verify(mp4)
    assert original["c2pa"]["state"] == "trusted" and original["c2pa"]["model"] == "tiny-wan"
    assert original["c2pa"]["digital_source_type"].endswith("trainedAlgorithmicMedia")
    assert original["watermark"]["found"] and original["watermark"]["this_deployment"]
    assert original["watermark"]["state"] == "found"
    assert original["video_id"] == video.id and original["generated_here"]
    assert verify(thumb, "t.webp")["c2pa"]["state"] == "trusted"

    assert verify(flip_in_mdat(mp4))["c2pa"]["state"] == "tampered"

    stripped = verify(reencode_without_metadata(mp4))
    assert stripped["c2pa"]["state"] == "absent"
    assert stripped["watermark"]["found"] and stripped["video_id"] == video.id  # traced by the watermark alone

    rng = np.random.default_rng(1)
    unsigned = verify(encode_mp4(rng.integers(0, 255, (17, 160, 256, 3), dtype=np.uint8), 8))
    assert unsigned["c2pa"]["state"] == "absent" and not unsigned["watermark"]["found"]
    assert unsigned["watermark"]["state"] == "not_found"
    assert not unsigned["generated_here"] and unsigned["video_id"] is None
    # Frames too small to carry a mark are said to be so, not "not found".
    tiny = verify(encode_mp4(rng.integers(0, 255, (17, 64, 96, 3), dtype=np.uint8), 8))
    assert tiny["watermark"]["state"] == "too_small" and not tiny["watermark"]["found"]

    # Anyone can check the signature with the exported anchor, without Kinema's server.
    env = kinema_env(data, db, models_dir)
    anchor = subprocess.run(
        [sys.executable, "-m", "kinema.cli", "provenance", "anchor"], env=env, capture_output=True, check=True
    ).stdout
    assert anchor.startswith(b"-----BEGIN CERTIFICATE-----")
    assert c2pa.verify(mp4, "video/mp4", trust_anchors_pem=anchor).state == "trusted"
    other_ca = c2pa.verify(mp4, "video/mp4", trust_anchors_pem=None).state
    assert other_ca == "valid_untrusted"
    manifest = c2pa.verify(mp4, "video/mp4", trust_anchors_pem=anchor).manifest_store_json or ""
    assert video.id not in manifest and "owner" not in manifest  # an opaque reference, no identity

    # The operator's CLI names the job.
    (tmp_path / "copy.mp4").write_bytes(reencode_without_metadata(mp4))
    out = subprocess.run(
        [sys.executable, "-m", "kinema.cli", "verify", str(tmp_path / "copy.mp4")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "C2PA:      absent" in out.stdout and video.id in out.stdout
