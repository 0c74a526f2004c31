"""Read a request body sent as JSON or as multipart/form-data into one nested dict plus files.

The `openai` SDK always sends multipart for videos endpoints and flattens nested objects into
bracketed keys (``video[id]=...``), with every value as a string; extra_body fields arrive the
same way. This turns both encodings into the same shape for the wire models to validate.
"""

from __future__ import annotations

import json
import re
from typing import Any

from fastapi import Request
from starlette.datastructures import UploadFile

from kinema.services.errors import InvalidRequest, PayloadTooLarge

_BRACKETS = re.compile(r"\[([^\]]*)\]")


def body_limit(max_upload_bytes: int) -> int:
    """Largest request body accepted: one upload, base64-inflated (data URLs), plus the other fields."""
    return max_upload_bytes * 4 // 3 + 2 * 1024 * 1024


async def read_body(
    request: Request, *, file_fields: frozenset[str], max_upload_bytes: int
) -> tuple[dict[str, Any], dict[str, bytes]]:
    """Return (fields, files). Files are allowed only under ``file_fields``; sizes are capped."""
    declared = request.headers.get("content-length")
    limit = body_limit(max_upload_bytes)
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(
            f"Request body is {int(declared)} bytes; uploads may be at most {max_upload_bytes} bytes.",
            code="file_too_large",
        )
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data" or ctype == "application/x-www-form-urlencoded":
        return await _read_form(request, file_fields, max_upload_bytes)
    raw = await request.body()  # bounded by the app's max_body_size, also for chunked requests
    if len(raw) > limit:
        raise PayloadTooLarge(f"Request body may be at most {max_upload_bytes} bytes.", code="file_too_large")
    if not raw:
        return {}, {}
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise InvalidRequest(
            "Could not parse the request body: send JSON (application/json) or multipart/form-data.",
            code="invalid_json",
        ) from None
    if not isinstance(data, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_json")
    return data, {}


async def _read_form(
    request: Request, file_fields: frozenset[str], max_upload_bytes: int
) -> tuple[dict[str, Any], dict[str, bytes]]:
    # A base64 data URL arrives as a text field: allow it the upload cap, inflated by base64.
    form = await request.form(max_files=4, max_fields=64, max_part_size=body_limit(max_upload_bytes))
    fields: dict[str, Any] = {}
    files: dict[str, bytes] = {}
    try:
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                if key not in file_fields:
                    raise InvalidRequest(
                        f"Unknown parameter: '{key}' (no file is accepted here).", param=key, code="unknown_parameter"
                    )
                data = await value.read(max_upload_bytes + 1)
                if len(data) > max_upload_bytes:
                    raise PayloadTooLarge(
                        f"Invalid '{key}': the file is larger than {max_upload_bytes} bytes.",
                        param=key,
                        code="file_too_large",
                    )
                files[key] = data
            else:
                _assign(fields, key, value)
    finally:
        await form.close()
    return fields, files


def _assign(target: dict[str, Any], key: str, value: str) -> None:
    """Set ``a[b][c]`` / ``a[]`` style keys into nested dicts and lists.

    A key used both as a plain value and as an object or list (``video=x`` then ``video[id]=y``) is a
    client error, reported as such.
    """
    head = key.split("[", 1)[0]
    path = [head, *_BRACKETS.findall(key[len(head) :])]
    node: Any = target
    try:
        for part, nxt in zip(path, path[1:], strict=False):
            default: Any = [] if nxt == "" else {}
            if isinstance(node, list):
                node.append(default)
                node = node[-1]
            else:
                node = node.setdefault(part, default)
                if not isinstance(node, type(default)):
                    raise TypeError
        last = path[-1]
        if isinstance(node, list) or last == "":
            node.append(value)
        elif isinstance(node.get(last), dict | list):
            raise TypeError
        else:
            node[last] = value
    except (TypeError, AttributeError):
        raise InvalidRequest(
            f"Form field '{key}' conflicts with another field of the same name.", param=head, code="invalid_value"
        ) from None
