"""Refused requests: each is a 4xx in the OpenAI error envelope naming the field, and writes nothing.

One real server (no workers, so rows would stay visible if any were written) is shared by the
module; after every refusal the database still has no rows and the blob folder no files.
"""

from __future__ import annotations

import io
import sqlite3
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import openai
import pytest
from PIL import Image

from tests.conftest import Proc, start_server

warnings.filterwarnings("ignore", category=DeprecationWarning)
pytestmark = pytest.mark.slow
MAX_UPLOAD = 2 * 1024 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[Proc]:
    data = tmp_path_factory.mktemp("bad-input")
    proc = start_server(
        data,
        f"sqlite:///{data / 'k.db'}",
        models_dir,
        workers=0,
        KINEMA_MAX_UPLOAD_BYTES=str(MAX_UPLOAD),
        KINEMA_MAX_IMAGE_PIXELS="4000000",
    )
    yield proc
    proc.stop()


@pytest.fixture
def client(server: Proc) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.base_url}/v1", api_key=server.api_key, max_retries=0)


@pytest.fixture(autouse=True)
def nothing_written(server: Proc) -> Iterator[None]:
    yield
    data = server.log.parent
    with sqlite3.connect(data / "k.db") as db:
        assert db.execute("SELECT count(*) FROM videos").fetchone()[0] == 0
    blobs = data / "blobs"
    files = [p for p in blobs.rglob("*") if p.is_file()] if blobs.exists() else []
    assert files == []


def refused(exc: openai.APIStatusError, status: int, param: str | None, code: str | None = None) -> dict[str, Any]:
    assert exc.status_code == status, exc.body
    body = exc.response.json()
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["param"] == param, body
    assert body["error"]["message"]
    if code:
        assert body["error"]["code"] == code, body
    return body["error"]


def png(w: int, h: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((h, w, 3), 90, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def png_bomb(width: int, height: int) -> bytes:
    """A valid, tiny PNG whose header claims width x height (one grey row repeated, deflated)."""
    import struct

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    packer = zlib.compressobj(9)
    row = b"\x00" + b"\x80" * width
    raw = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


def test_missing_prompt_as_json(server: Proc) -> None:
    r = httpx.post(
        f"{server.base_url}/v1/videos",
        json={"model": "tiny-wan"},
        headers={"Authorization": f"Bearer {server.api_key}"},
    )
    assert r.status_code == 400
    assert r.json()["error"] == {
        "message": "Missing required parameter: 'prompt'.",
        "type": "invalid_request_error",
        "param": "prompt",
        "code": "missing_required_parameter",
    }


def test_unknown_model_lists_available(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        client.videos.create(prompt="x", model="sora-3")
    err = refused(e.value, 400, "model", "model_not_found")
    assert "tiny-wan" in err["message"]


@pytest.mark.parametrize(("field", "value"), [("size", "333x333"), ("seconds", "7")])
def test_unsupported_size_or_seconds_says_what_works(client: openai.OpenAI, field: str, value: str) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        client.videos.create(prompt="x", **{field: value})  # type: ignore[arg-type]
    err = refused(e.value, 400, field, "unsupported_value")
    assert ("96x64" if field == "size" else "12") in err["message"]


def test_unknown_extra_field_is_rejected(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        client.videos.create(prompt="x", extra_body={"sead": 3})
    refused(e.value, 400, "sead", "unknown_parameter")


def test_out_of_range_extra(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        client.videos.create(prompt="x", extra_body={"num_inference_steps": 0})
    refused(e.value, 400, "num_inference_steps", "invalid_value")


def test_bad_speed_preset_names_the_field(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        client.videos.create(prompt="x", extra_body={"speed": "warp"})
    refused(e.value, 400, "speed", "invalid_value")
    # A preset the model does not offer: the 1.3B has no step-distilled LoRA, so no turbo.
    with pytest.raises(openai.BadRequestError) as e:
        client.videos.create(prompt="x", model="wan2.1-t2v-1.3b", extra_body={"speed": "turbo"})
    err = refused(e.value, 400, "speed", "unsupported_value")
    assert "exact, fast" in err["message"]


def test_corrupt_image(client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as e:
        client.videos.create(prompt="x", input_reference=("a.png", png(64, 64)[:60], "image/png"))
    refused(e.value, 400, "input_reference", "corrupt_media")


def test_image_format_is_judged_by_content(client: openai.OpenAI) -> None:
    buf = io.BytesIO()
    Image.new("RGB", (32, 32)).save(buf, format="GIF")
    with pytest.raises(openai.APIStatusError) as e:
        client.videos.create(prompt="x", input_reference=("a.png", buf.getvalue(), "image/png"))
    refused(e.value, 415, "input_reference", "unsupported_media_type")


def test_decompression_bomb(client: openai.OpenAI) -> None:
    bomb = png_bomb(12000, 12000)  # 144 Mpx claimed in about 150 KB
    assert len(bomb) < MAX_UPLOAD
    with pytest.raises(openai.BadRequestError) as e:
        client.videos.create(prompt="x", input_reference=("bomb.png", bomb, "image/png"))
    refused(e.value, 400, "input_reference", "too_many_pixels")


def test_oversized_upload(client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as e:
        client.videos.create(
            prompt="x", input_reference=("big.png", b"\x89PNG" + b"\0" * (MAX_UPLOAD + 10), "image/png")
        )
    refused(e.value, 413, "input_reference", "file_too_large")


def test_non_video_uploaded_as_video(client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as e:
        client.videos.edit(prompt="x", video=("clip.mp4", png(64, 64), "video/mp4"))
    refused(e.value, 415, "video", "unsupported_media_type")


def test_unknown_ids(client: openai.OpenAI) -> None:
    for call in (
        lambda: client.videos.retrieve("video_nope"),
        lambda: client.videos.delete("video_nope"),
        lambda: client.videos.download_content("video_nope"),
        lambda: client.videos.remix("video_nope", prompt="x"),
        lambda: client.videos.edit(prompt="x", video=openai.omit, extra_body={"video": {"id": "video_nope"}}),
        lambda: client.videos.extend(
            prompt="x", seconds="4", video=openai.omit, extra_body={"video": {"id": "video_nope"}}
        ),
        lambda: client.post("/videos/video_nope/cancel", cast_to=object),
    ):
        with pytest.raises(openai.NotFoundError) as e:
            call()
        refused(e.value, 404, "id", "not_found")


def test_remote_image_urls_are_never_fetched(server: Proc) -> None:
    r = httpx.post(
        f"{server.base_url}/v1/videos",
        headers={"Authorization": f"Bearer {server.api_key}"},
        json={"prompt": "x", "input_reference": {"image_url": "http://169.254.169.254/latest"}},
    )
    assert r.status_code == 400 and r.json()["error"]["param"] == "input_reference.image_url"


def test_bad_variant_and_limit(server: Proc) -> None:
    auth = {"Authorization": f"Bearer {server.api_key}"}
    r = httpx.get(f"{server.base_url}/v1/videos/video_x/content?variant=gif", headers=auth)
    assert r.status_code == 400 and r.json()["error"]["param"] == "variant"
    r = httpx.get(f"{server.base_url}/v1/videos?limit=1000", headers=auth)
    assert r.status_code == 400 and r.json()["error"]["param"] == "limit"


def test_task_the_model_cannot_do_names_one_that_can(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        client.videos.create(prompt="x", model="wan2.1-t2v-1.3b", input_reference=("a.png", png(64, 64), "image/png"))
    err = refused(e.value, 400, "input_reference", "unsupported_task")
    assert "wan2.2-ti2v-5b" in err["message"]


def test_malformed_bodies_are_400_not_500(server: Proc) -> None:
    auth = {"Authorization": f"Bearer {server.api_key}"}
    url = f"{server.base_url}/v1/videos"
    deep = httpx.post(url, headers={**auth, "Content-Type": "application/json"}, content=b"[" * 100_000)
    assert deep.status_code == 400 and deep.json()["error"]["code"] == "invalid_json"
    nul = httpx.post(url, headers=auth, json={"prompt": "a\x00b"})
    assert nul.status_code == 400 and nul.json()["error"]["param"] == "prompt"
    clash = httpx.post(url, headers=auth, files={"prompt": (None, "p"), "video": (None, "x"), "video[id]": (None, "y")})
    assert clash.status_code == 400
    assert httpx.get(f"{url}/video_%00", headers=auth).status_code == 404


def test_refusals_tell_the_sdk_not_to_retry(server: Proc) -> None:
    r = httpx.get(
        f"{server.base_url}/v1/videos/video_{'0' * 32}", headers={"Authorization": f"Bearer {server.api_key}"}
    )
    assert r.status_code == 404 and r.headers["x-should-retry"] == "false"


def test_chunked_body_over_the_cap_is_refused(server: Proc) -> None:
    def chunks():  # no Content-Length: the cap must hold while streaming
        for _ in range(4 * MAX_UPLOAD // 65536):
            yield b"x" * 65536

    r = httpx.post(
        f"{server.base_url}/v1/videos",
        headers={"Authorization": f"Bearer {server.api_key}", "Content-Type": "application/json"},
        content=chunks(),
    )
    assert r.status_code == 413 and "error" in r.json()


def refusal_rows(server: Proc) -> list[tuple[str, str, str | None]]:
    with sqlite3.connect(server.log.parent / "k.db") as db:
        return db.execute("SELECT action, category, prompt FROM moderation_refusals ORDER BY id").fetchall()


def test_moderation_refuses_evasions_records_them_and_counts_them(client: openai.OpenAI, server: Proc) -> None:
    before = len(refusal_rows(server))
    with pytest.raises(openai.BadRequestError) as e:
        client.videos.create(prompt="a D-E-C-A-P-I-T-A-T-I-O-N scene")
    err = refused(e.value, 400, "prompt", "moderation_blocked")
    assert "graphic_violence" in err["message"] and "D-E-C" not in err["message"]
    with pytest.raises(openai.BadRequestError) as e:
        client.videos.create(prompt="r\u0435v\u0435ng\u0435 p0rn of my ex")  # Cyrillic e, leet o
    refused(e.value, 400, "prompt", "moderation_blocked")
    rows = refusal_rows(server)[before:]
    assert [(a, c) for a, c, _ in rows] == [("create", "graphic_violence"), ("create", "nonconsensual_intimate")]
    assert rows[0][2] is not None and rows[1][2] is None  # that category's policy keeps no prompt text
    metrics = httpx.get(f"{server.base_url}/metrics").text
    assert 'kinema_moderation_refusals_total{category="nonconsensual_intimate"}' in metrics
