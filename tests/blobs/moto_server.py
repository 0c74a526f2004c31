"""A real S3 server for the tests: moto's server mode, in its own process on a free port.

moto speaks the S3 REST protocol over HTTP (boto3 talks to it exactly as to AWS) but does NOT check
request signatures: a wrong secret key or a tampered presigned URL is accepted. It keeps every bucket in
memory, so a restarted server starts empty.

Also here: :class:`CuttingProxy`, a TCP relay that breaks every connection after a number of bytes sent
upstream, to cut an upload off in the middle over a real socket.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import boto3
import httpx
from botocore.config import Config

from tests.conftest import free_port

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "kinema-test", "AWS_SECRET_ACCESS_KEY": "kinema-test-secret"}
REGION = "us-east-1"


def s3_client(endpoint: str, **config: Any) -> Any:
    """A boto3 S3 client with the test credentials, path-style, for ``endpoint``."""
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        config=Config(s3={"addressing_style": "path"}, **config),
    )


class MotoServer:
    """``python -m moto.server`` on 127.0.0.1; stop() and start() again keep the same port."""

    def __init__(self, log: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.log = log
        self._proc: subprocess.Popen[bytes] | None = None
        self._client: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log.open("ab") as fh:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)], stdout=fh, stderr=fh
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"moto server exited:\n{self.log.read_text(errors='replace')}")
            with contextlib.suppress(httpx.HTTPError):
                httpx.get(f"{self.url}/moto-api/", timeout=1)
                return
            time.sleep(0.1)
        raise RuntimeError("moto server did not come up")

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(10)

    def client(self) -> Any:
        """A plain boto3 client, to look at the bucket from outside Kinema (made once: boto3 is slow to)."""
        if self._client is None:
            self._client = s3_client(self.url, retries={"max_attempts": 1})
        return self._client

    def create_bucket(self, name: str) -> None:
        self.client().create_bucket(Bucket=name)

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        """Every object key in ``bucket`` under ``prefix``, as the server lists them."""
        resp = self.client().list_objects_v2(Bucket=bucket, Prefix=prefix)
        return sorted(o["Key"] for o in resp.get("Contents", ()))


class CuttingProxy:
    """Relays TCP to ``target_port``; a connection that has sent ``cut_after`` bytes upstream is reset."""

    def __init__(self, target_port: int, cut_after: int) -> None:
        self.target_port = target_port
        self.cut_after = cut_after
        self.cuts = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                down, _ = self._listener.accept()
            except OSError:
                return
            up = socket.create_connection(("127.0.0.1", self.target_port))
            threading.Thread(target=self._upstream, args=(down, up), daemon=True).start()
            threading.Thread(target=self._downstream, args=(up, down), daemon=True).start()

    def _upstream(self, down: socket.socket, up: socket.socket) -> None:
        sent = 0
        try:
            while chunk := down.recv(65536):
                if sent + len(chunk) > self.cut_after:
                    up.sendall(chunk[: self.cut_after - sent])
                    self.cuts += 1
                    break
                up.sendall(chunk)
                sent += len(chunk)
        except OSError:
            pass
        _reset(down)
        _reset(up)

    def _downstream(self, up: socket.socket, down: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while chunk := up.recv(65536):
                down.sendall(chunk)
        _reset(down)


def _reset(sock: socket.socket) -> None:
    """Close with RST (SO_LINGER 0), as a dropped network path looks to the peer."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()
