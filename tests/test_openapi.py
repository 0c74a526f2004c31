"""/openapi.json is a valid OpenAPI document that tells the truth, checked two ways:

- statically: openapi-spec-validator passes, every ``$ref`` resolves, no 422 (Kinema answers 400),
  every operation declares its error statuses with the ``Error`` envelope and its security, and the
  bodies Kinema reads by hand (JSON or multipart, with file parts) are declared;
- dynamically: schemathesis drives a real server from the document (bounded examples, fixed seed) and
  checks that no response is a 5xx and that statuses, content types and bodies conform to it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openapi_spec_validator import validate

from kinema.api.app import create_app
from kinema.config import Settings
from kinema.container import Container
from tests.conftest import Proc, provision, start_server

# Every status the API emits somewhere: each must be declared on at least one operation.
EMITTED = {"400", "401", "403", "404", "409", "413", "415", "429", "503"}


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> dict[str, Any]:
    d = tmp_path_factory.mktemp("openapi")
    container = Container.from_settings(
        Settings(data_dir=d, database_url=f"sqlite:///{d / 'k.db'}", models_dir=models_dir, default_model="tiny-wan")
    )
    try:
        return create_app(container).openapi()
    finally:
        container.close()


def _refs(node: object) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method, op in item.items():
            yield method, path, op


def test_document_is_valid_and_every_reference_resolves(document: dict[str, Any]) -> None:
    validate(document)
    # The validator does not follow every reference: resolve each one ourselves.
    missing = {ref for ref in _refs(document) if ref.split("/")[-1] not in document["components"]["schemas"]}
    assert not missing, f"undefined schemas referenced: {sorted(missing)}"
    assert json.loads(json.dumps(document)) == document  # plain JSON, no Python-only values


def test_every_operation_declares_its_errors_in_the_envelope(document: dict[str, Any]) -> None:
    declared: set[str] = set()
    for method, path, op in _operations(document):
        responses = op["responses"]
        assert "422" not in responses, f"{method} {path} documents 422; Kinema answers 400"
        errors = {code: r for code, r in responses.items() if code.startswith(("4", "5"))}
        assert "500" in errors, f"{method} {path}"
        for code, response in errors.items():
            schema = response["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/Error"}, f"{method} {path} {code}"
        declared |= set(errors)
        if "{" in path:
            assert "404" in errors, f"{method} {path} takes an id but declares no 404"
    assert declared >= EMITTED
    error = document["components"]["schemas"]["Error"]
    assert error["properties"]["error"]["required"] == ["message", "type", "param", "code"]


def test_security_schemes_and_which_operations_need_them(document: dict[str, Any]) -> None:
    schemes = document["components"]["securitySchemes"]
    assert schemes["apiKey"] == {**schemes["apiKey"], "type": "http", "scheme": "bearer"}
    assert schemes["session"] == {**schemes["session"], "type": "apiKey", "in": "cookie", "name": "kinema_session"}
    ops = {(m, p): op for m, p, op in _operations(document)}
    assert ops[("post", "/v1/auth/login")]["security"] == []
    assert ops[("get", "/healthz")]["security"] == []
    assert ops[("get", "/v1/policy/retention")]["security"] == []
    assert ops[("post", "/v1/videos")]["security"] == [{"apiKey": []}, {"session": []}]
    assert ops[("get", "/v1/admin/users")]["security"] == [{"apiKey": []}, {"session": []}]
    assert ops[("delete", "/v1/me")]["security"] == [{"session": []}]  # a password-only operation
    for (method, path), op in ops.items():
        if op["security"]:
            assert {"401", "403"} <= set(op["responses"]), f"{method} {path}"


def test_bodies_read_by_hand_are_declared(document: dict[str, Any]) -> None:
    ops = {(m, p): op for m, p, op in _operations(document)}
    for (method, path), file_field in {
        ("post", "/v1/videos"): "input_reference",
        ("post", "/v1/videos/edits"): "video",
        ("post", "/v1/videos/extensions"): "video",
        ("post", "/v1/videos/characters"): "video",
        ("post", "/v1/provenance/verify"): "file",
    }.items():
        content = ops[(method, path)]["requestBody"]["content"]
        form = content["multipart/form-data"]["schema"]
        assert form["properties"][file_field] == {"type": "string", "format": "binary"}, path
        assert {"413", "415"} <= set(ops[(method, path)]["responses"]), path
    create = ops[("post", "/v1/videos")]["requestBody"]["content"]["application/json"]["schema"]
    assert "prompt" in create["required"] and "$defs" not in create
    assert "ImageReference" in document["components"]["schemas"]
    assert "VideoReference" in document["components"]["schemas"]


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[tuple[Proc, str]]:
    data = tmp_path_factory.mktemp("schemathesis")
    db_url = f"sqlite:///{data / 'k.db'}"
    proc = start_server(data, db_url, models_dir, workers=0, KINEMA_MAX_UPLOAD_BYTES=str(1024 * 1024))
    # An admin, so the admin routes are exercised too (its own cohort and the last admin stay protected).
    admin_key = provision(data, db_url, "fuzz-admin@example.com", role="admin", cohort="ops")
    yield proc, admin_key
    proc.stop()


@pytest.mark.slow
def test_schemathesis_finds_no_server_error_and_no_undocumented_response(
    fuzz_server: tuple[Proc, str], tmp_path: Path
) -> None:
    server, admin_key = fuzz_server
    exe = shutil.which("schemathesis", path=str(Path(sys.executable).parent)) or shutil.which("schemathesis")
    assert exe, "schemathesis is in the test extra: pip install -e '.[test]'"
    started = time.monotonic()
    run = subprocess.run(
        [
            exe,
            "run",
            f"{server.base_url}/openapi.json",
            "--header",
            f"Authorization: Bearer {admin_key}",
            # Everything but the two checks that need more than a schema can say (valid-looking data that
            # the moderation policy or the model list refuses; a second user's credentials).
            "--exclude-checks",
            "positive_data_acceptance,object_level_authorization",
            # Its stateful phase learns the key's own id from GET /v1/me and revokes it, which is allowed
            # (and leaves every later case a 401): leave out the two key-revoking operations.
            "--exclude-name",
            "DELETE /v1/keys/{key_id}",
            "--exclude-name",
            "POST /v1/admin/keys/{key_id}/revoke",
            "--max-examples",
            "12",
            "--seed",
            "20261201",
            "--workers",
            "2",
            "--no-shrink",
            "--request-timeout",
            "30",
        ],
        cwd=tmp_path,  # its .hypothesis folder goes there
        capture_output=True,
        text=True,
        timeout=420,
    )
    took = time.monotonic() - started
    output = run.stdout + run.stderr
    print(output[-3000:])
    print(f"schemathesis: {took:.0f} s")
    assert "generated" in output, output[-3000:]
    assert run.returncode == 0, output[-8000:]
    assert httpx.get(f"{server.base_url}/healthz").status_code == 200
