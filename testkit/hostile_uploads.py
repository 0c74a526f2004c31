"""Hostile uploads from the outside security run (issue 9), sent to a real server, and its memory read back.

Shared by tests/test_upload_memory.py (which asserts bounds) and bench/uploads.py (which prints figures).
Each kind is a small file that decodes to a lot: what it is, where it goes, and which answers are right
(a refusal in the OpenAI error envelope, or a success where the input is legitimate).
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import httpx
import numpy as np
import openai
from PIL import Image

from kinema.media.encode import encode_mp4
from testkit.faces.photos import faces_dir, photo
from testkit.media import huge_black_png, repeated_frames_webm, size_switch_webm
from testkit.server import Proc, client_for

CAP_SIDE = 4096  # the default image cap is 4096 x 4096 pixels


@dataclass(frozen=True)
class Reply:
    """What the server answered to one upload."""

    status: int
    code: str | None
    envelope_ok: bool  # a success, or {"error": {"message", "type", "param", "code"}} with a message


@dataclass(frozen=True)
class Kind:
    """One kind of hostile upload."""

    name: str
    route: str  # "input_reference", "edit", "enrol" or "verify"
    build: Callable[[], bytes]
    filename: str
    mime: str
    ok_statuses: frozenset[int]  # 200 where the input is legitimate


def _face_or_gradient(size: tuple[int, int]) -> Image.Image:
    """The obama_1 test photograph scaled to fill ``size``'s height, centred on grey; or a smooth gradient when
    the photographs are absent."""
    width, height = size
    if (faces_dir() / "obama_1.jpg").is_file():
        face = Image.fromarray(photo("obama_1"))
        face = face.resize((round(face.width * height / face.height), height), Image.Resampling.BILINEAR)
        canvas = Image.new("RGB", size, (128, 128, 128))
        canvas.paste(face, ((width - face.width) // 2, 0))
        return canvas
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :]
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    return Image.fromarray(np.stack([x + 0 * y, y + 0 * x, (x + y) / 2], -1).astype(np.uint8))


@cache
def _at_cap(fmt: str, side: int = CAP_SIDE) -> bytes:
    out = io.BytesIO()
    options: dict[str, object] = {"PNG": {"compress_level": 1}, "JPEG": {"quality": 90}, "WEBP": {"quality": 80}}[fmt]
    _face_or_gradient((side, side)).save(out, format=fmt, **options)
    return out.getvalue()


@cache
def _enrolment_4k() -> bytes:
    """A 2 s 30 fps 3840x2160 clip of a face that does not move (a legitimate size; refused by liveness)."""
    frame = np.asarray(_face_or_gradient((3840, 2160)))
    return repeated_frames_webm([(frame, 60)], fps=30)


@cache
def _edit_at_budget() -> bytes:
    """108 frames of 1280x720 at 24 fps (a textured still, no face): what the 100 M pixel budget allows."""
    still = np.asarray(Image.effect_noise((1280, 720), 40).convert("RGB"))
    return repeated_frames_webm([(still, 108)], fps=24)


@cache
def _noise_panorama() -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (480, 34952), dtype=np.uint8)).save(
        out, format="PNG", compress_level=1
    )
    return out.getvalue()


@cache
def _mp4_4k() -> bytes:
    """12 frames of 3840x2160 H.264 (our encoder): a legitimate 4K file someone asks about."""
    frame = np.asarray(_face_or_gradient((3840, 2160)))
    return encode_mp4(np.repeat(frame[None], 12, axis=0), 24)


REFUSED = frozenset({400, 403, 413, 415, 503})
ACCEPTED_OR_REFUSED = REFUSED | {200}

KINDS: tuple[Kind, ...] = (
    # The tester's bomb as sent (40 MP, 155 KB): refused from its header now.
    Kind(
        "zero PNG 6320x6320 (old cap)",
        "input_reference",
        lambda: huge_black_png(6320, 6320),
        "z.png",
        "image/png",
        REFUSED,
    ),
    # The same bomb just under today's cap: decoded, reduced to 2048 px, searched for faces (none): accepted.
    Kind(
        "zero PNG 4096x4095 (under cap)",
        "input_reference",
        lambda: huge_black_png(CAP_SIDE, CAP_SIDE - 1),
        "z.png",
        "image/png",
        ACCEPTED_OR_REFUSED,
    ),
    Kind("PNG 4096x4096 face", "input_reference", lambda: _at_cap("PNG"), "p.png", "image/png", ACCEPTED_OR_REFUSED),
    Kind("JPEG 4096x4096 face", "input_reference", lambda: _at_cap("JPEG"), "p.jpg", "image/jpeg", ACCEPTED_OR_REFUSED),
    # WebP takes four times the memory to decode, so its cap is a quarter: 2048x2048 by default.
    Kind("WebP 4096x4096 face", "input_reference", lambda: _at_cap("WEBP"), "p.webp", "image/webp", REFUSED),
    Kind(
        "WebP 2048x2048 face (WebP cap)",
        "input_reference",
        lambda: _at_cap("WEBP", CAP_SIDE // 2),
        "p.webp",
        "image/webp",
        ACCEPTED_OR_REFUSED,
    ),
    # 16x16 header and first frame, then 600 frames of 1080p (3.7 GB as RGB) in 45 KB.
    Kind("WebM 16x16 then 600x1080p", "edit", size_switch_webm, "v.webm", "video/webm", REFUSED),
    # 20,000 frames of 64x64: the frame cap stops it at frame 1,001.
    Kind(
        "WebM 20000 frames 64x64",
        "edit",
        lambda: repeated_frames_webm([(np.full((64, 64, 3), 99, np.uint8), 20_000)], fps=30),
        "v.webm",
        "video/webm",
        REFUSED,
    ),
    Kind("enrolment clip 4K 2 s", "enrol", _enrolment_4k, "me.webm", "video/webm", REFUSED),
    # A legitimate clip for an edit at the total-pixel budget: 108 frames of 1280x720 (100 M pixels, 300 MB as RGB).
    Kind("edit WebM 1280x720 at the budget", "edit", _edit_at_budget, "v.webm", "video/webm", ACCEPTED_OR_REFUSED),
    Kind("verify PNG 4096x4096", "verify", lambda: _at_cap("PNG"), "p.png", "image/png", ACCEPTED_OR_REFUSED),
    Kind("verify JPEG 4096x4096", "verify", lambda: _at_cap("JPEG"), "p.jpg", "image/jpeg", ACCEPTED_OR_REFUSED),
    Kind(
        "verify zero PNG 6320x6320",
        "verify",
        lambda: huge_black_png(6320, 6320),
        "z.png",
        "image/png",
        REFUSED,
    ),
    # 16.8 M pixels of noise, 480 px high: the short side allows no reduction (before: +640 MB, 40 s each).
    Kind("verify noise PNG 34952x480", "verify", _noise_panorama, "n.png", "image/png", ACCEPTED_OR_REFUSED),
    Kind("verify MP4 3840x2160 12 frames", "verify", _mp4_4k, "v.mp4", "video/mp4", ACCEPTED_OR_REFUSED),
)


# -- the server's memory ------------------------------------------------------------------------------------


def _status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def rss_mb(pid: int) -> float:
    """The process's resident memory now, in MB."""
    return _status_kb(pid, "VmRSS") / 1024


def peak_mb(pid: int) -> float:
    """The process's peak resident memory since the last :func:`reset_peak`, in MB."""
    return _status_kb(pid, "VmHWM") / 1024


def reset_peak(pid: int) -> None:
    """Make the peak (VmHWM) start again from the resident memory now (Linux: ``5`` to clear_refs)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


# -- sending ------------------------------------------------------------------------------------------------


def _auth(server: Proc) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.api_key}"}


def _consent(server: Proc) -> dict[str, object]:
    text = httpx.get(f"{server.base_url}/v1/videos/characters/consent", headers=_auth(server), timeout=30).json()
    return {
        "text_version": text["version"],
        "purposes": ["generation", "matching"],
        "retention_days": text["max_retention_days"],
        "signature": "Test Person",
    }


def _challenge(server: Proc) -> str:
    reply = httpx.post(f"{server.base_url}/v1/videos/characters/challenges", headers=_auth(server), timeout=30)
    reply.raise_for_status()
    return str(reply.json()["id"])


def _envelope_ok(body: object) -> bool:
    if not isinstance(body, dict) or not isinstance(body.get("error"), dict):
        return False
    error = body["error"]
    return bool(error.get("message")) and {"message", "type", "param", "code"} <= error.keys()


def send(server: Proc, kind: Kind, data: bytes, challenge: str | None = None) -> Reply:
    """One upload of ``kind`` through the openai SDK (httpx for the verify route, which the SDK lacks)."""
    client = client_for(server, timeout=300)
    upload = (kind.filename, data, kind.mime)
    try:
        if kind.route == "input_reference":
            client.videos.create(prompt="a calm scene", input_reference=upload, extra_body={"num_inference_steps": 1})
        elif kind.route == "edit":
            client.videos.edit(prompt="make it snow", video=upload, extra_body={"num_inference_steps": 1})
        elif kind.route == "enrol":
            client.videos.create_character(
                name="someone",
                video=upload,
                extra_body={"challenge_id": challenge or _challenge(server), "consent": _consent(server)},
            )
        else:
            try:
                reply = httpx.post(
                    f"{server.base_url}/v1/provenance/verify",
                    headers=_auth(server),
                    files={"file": upload},
                    timeout=300,
                )
            except httpx.TimeoutException:
                return Reply(0, "no_answer", False)
            if reply.status_code == 200:
                return Reply(200, None, True)
            body = reply.json()
            return Reply(reply.status_code, (body.get("error") or {}).get("code"), _envelope_ok(body))
    except openai.APIConnectionError:  # no answer within the client's timeout (or the server went away)
        return Reply(0, "no_answer", False)
    except openai.APIStatusError as exc:
        try:
            body = exc.response.json()
        except ValueError:
            body = None
        return Reply(exc.status_code, getattr(exc, "code", None), _envelope_ok(body))
    return Reply(200, None, True)


@dataclass(frozen=True)
class Burst:
    """``concurrency`` uploads of one kind at once, and what they cost the server."""

    kind: Kind
    replies: list[Reply]
    baseline_mb: float  # resident memory before the burst
    peak_mb: float  # the highest resident memory during it
    after_mb: float  # resident memory once every reply was in
    seconds: float

    @property
    def peak_delta_mb(self) -> float:
        return self.peak_mb - self.baseline_mb


def burst(server: Proc, kind: Kind, concurrency: int = 4) -> Burst:
    """Send ``concurrency`` uploads of ``kind`` at once and measure the server's peak memory over them."""
    data = kind.build()
    pid = server.popen.pid
    challenges = [_challenge(server) if kind.route == "enrol" else None for _ in range(concurrency)]
    baseline = rss_mb(pid)
    reset_peak(pid)
    started = time.monotonic()
    with ThreadPoolExecutor(concurrency) as pool:
        replies = list(pool.map(lambda c: send(server, kind, data, c), challenges))
    seconds = time.monotonic() - started
    return Burst(kind, replies, baseline, peak_mb(pid), rss_mb(pid), seconds)


def warm_up(server: Proc) -> None:
    """Load what any first request loads (dlib's models, codecs, OpenCV) with one benign upload of each route."""
    small = io.BytesIO()
    _face_or_gradient((640, 480)).save(small, format="JPEG")
    tiny_clip = repeated_frames_webm([(np.asarray(_face_or_gradient((640, 360))), 30)], fps=30)
    by_route = {"input_reference": small.getvalue(), "edit": tiny_clip, "enrol": tiny_clip, "verify": small.getvalue()}
    for route, data in by_route.items():
        kind = next(k for k in KINDS if k.route == route)
        send(server, kind, data)
