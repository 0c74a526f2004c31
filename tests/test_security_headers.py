"""Every response carries the security headers and every error is the OpenAI envelope; /docs works offline.

A real server: pages get a CSP that allows this origin only, everything else a CSP that allows
nothing; nosniff, no framing, no referrer everywhere; HSTS only over https (directly or as a trusted
proxy says). Errors that Starlette or the body cap produce (404, 405, 413 for a declared
Content-Length) are in the envelope too.
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import Proc, start_server

pytestmark = pytest.mark.slow
MAX_UPLOAD = 1024 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[Proc]:
    data = tmp_path_factory.mktemp("headers")
    proc = start_server(
        data,
        f"sqlite:///{data / 'k.db'}",
        models_dir,
        workers=0,
        KINEMA_MAX_UPLOAD_BYTES=str(MAX_UPLOAD),
        KINEMA_TRUSTED_PROXIES='["10.9.8.7"]',  # not us: our X-Forwarded-Proto must not count
    )
    yield proc
    proc.stop()


def assert_hardened(r: httpx.Response, *, page: bool = False) -> None:
    h = r.headers
    assert h["x-content-type-options"] == "nosniff", r.url
    assert h["x-frame-options"] == "DENY", r.url
    assert h["referrer-policy"] == "no-referrer", r.url
    csp = h["content-security-policy"]
    assert "frame-ancestors 'none'" in csp, r.url
    if page:
        assert "default-src 'self'" in csp and "script-src 'self'" in csp
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp and "http" not in csp
    else:
        assert "default-src 'none'" in csp, r.url


def assert_envelope(r: httpx.Response, status: int, code: str | None) -> dict[str, object]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json"), r.headers
    body = r.json()
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["code"] == code and body["error"]["message"]
    return dict(body["error"])


def test_docs_are_served_locally_under_a_self_only_csp(server: Proc) -> None:
    r = httpx.get(f"{server.base_url}/docs")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert_hardened(r, page=True)
    refs = re.findall(r'(?:src|href)="([^"]+)"', r.text)
    assert refs and all(not urlsplit(ref).netloc and not ref.startswith("//") for ref in refs), refs
    assert "<script>" not in r.text  # no inline script: the CSP would block it
    for ref in refs:
        asset = httpx.get(f"{server.base_url}{ref}")
        assert asset.status_code == 200 and len(asset.content) > 100, ref
        assert_hardened(asset)
    assert "SwaggerUIBundle" in httpx.get(f"{server.base_url}/docs/assets/swagger-ui-bundle.js").text
    init = httpx.get(f"{server.base_url}/docs/assets/kinema-docs.js").text
    assert "/openapi.json" in init and "validatorUrl: null" in init
    for name in ("nope.js", "..%2F..%2Fpyproject.toml", "%2Fetc%2Fpasswd"):
        assert_envelope(httpx.get(f"{server.base_url}/docs/assets/{name}"), 404, "not_found")
    assert httpx.get(f"{server.base_url}/redoc").status_code == 404  # ReDoc would need a CDN


def test_every_kind_of_response_carries_the_headers(server: Proc) -> None:
    auth = {"Authorization": f"Bearer {server.api_key}"}
    base = server.base_url
    for r in (
        httpx.get(f"{base}/healthz"),
        httpx.get(f"{base}/metrics"),
        httpx.get(f"{base}/openapi.json"),
        httpx.get(f"{base}/v1/videos", headers=auth),
        httpx.get(f"{base}/v1/videos"),  # 401
        httpx.get(f"{base}/v1/videos/video_nope", headers=auth),  # 404 from a service
        httpx.get(f"{base}/no/such/path"),  # 404 from the router
    ):
        assert_hardened(r)
        assert "strict-transport-security" not in r.headers  # plain http
    assert_hardened(httpx.get(f"{base}/policy/retention"), page=True)


def test_hsts_only_over_https_as_a_trusted_proxy_says(server: Proc, tmp_path: Path, models_dir: Path) -> None:
    spoofed = httpx.get(f"{server.base_url}/healthz", headers={"X-Forwarded-Proto": "https"})
    assert "strict-transport-security" not in spoofed.headers  # 127.0.0.1 is not a trusted proxy here
    behind = start_server(
        tmp_path / "proxied",
        f"sqlite:///{tmp_path / 'proxied' / 'k.db'}",
        models_dir,
        workers=0,
        KINEMA_TRUSTED_PROXIES='["127.0.0.1"]',
    )
    try:
        r = httpx.get(f"{behind.base_url}/docs", headers={"X-Forwarded-Proto": "https"})
        assert r.headers["strict-transport-security"].startswith("max-age=31536000")
        assert_hardened(r, page=True)
        plain = httpx.get(f"{behind.base_url}/docs", headers={"X-Forwarded-Proto": "http"})
        assert "strict-transport-security" not in plain.headers
    finally:
        behind.stop()


def raw_request(server: Proc, head: str) -> tuple[int, dict[str, str], bytes]:
    """Send a request head (and no body) over a socket; the status, headers and body of the answer."""
    url = urlsplit(server.base_url)
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        sock.sendall(head.encode())
        data = b""
        while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < _length(data):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    head_part, body = data.split(b"\r\n\r\n", 1)
    lines = head_part.decode().split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def _length(data: bytes) -> int:
    match = re.search(rb"content-length:\s*(\d+)", data.split(b"\r\n\r\n", 1)[0], re.I)
    return int(match.group(1)) if match else 0


def test_declared_content_length_over_the_cap_gets_the_envelope(server: Proc) -> None:
    # The body is never sent: the answer must come from the declared length alone, before auth.
    for path, auth in (("/v1/videos", f"Authorization: Bearer {server.api_key}\r\n"), ("/v1/auth/login", "")):
        status, headers, body = raw_request(
            server,
            f"POST {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\n"
            f"Content-Length: {10 * MAX_UPLOAD}\r\nConnection: close\r\n\r\n",
        )
        assert status == 413
        assert headers["content-type"].startswith("application/json")
        assert headers["x-content-type-options"] == "nosniff"
        error = json.loads(body)["error"]
        assert error["code"] == "file_too_large" and str(MAX_UPLOAD) in error["message"]
        assert set(error) == {"message", "type", "param", "code"}


def test_router_errors_are_envelopes(server: Proc) -> None:
    auth = {"Authorization": f"Bearer {server.api_key}"}
    err = assert_envelope(httpx.get(f"{server.base_url}/nope"), 404, "not_found")
    assert "/nope" in str(err["message"])
    r = httpx.put(f"{server.base_url}/v1/videos", headers=auth)
    err = assert_envelope(r, 405, "method_not_allowed")
    assert r.headers["allow"] == "GET, POST" and "GET, POST" in str(err["message"])
    # The characters collection is not a video id: its Allow lists only its own methods.
    assert httpx.request("OPTIONS", f"{server.base_url}/v1/videos/characters").headers["allow"] == "GET, POST"
    assert_envelope(httpx.post(f"{server.base_url}/healthz"), 405, "method_not_allowed")
