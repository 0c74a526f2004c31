"""One moto S3 server for the blob-store tests of this folder (see ``moto_server``)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.blobs.moto_server import CREDENTIALS, MotoServer


@pytest.fixture(scope="session")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    server = MotoServer(tmp_path_factory.mktemp("moto") / "moto.log")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def s3_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """boto3's usual chain finds these in the environment, as it would on a real host."""
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def bucket(moto: MotoServer) -> str:
    """A fresh, empty bucket on the moto server."""
    name = f"kinema-{uuid.uuid4().hex[:12]}"
    moto.create_bucket(name)
    return name
