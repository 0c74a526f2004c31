"""Bracketed multipart keys, as the `openai` SDK writes them, become nested fields."""

from __future__ import annotations

from typing import Any

from kinema.api.body import _assign


def fields(*pairs: tuple[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        _assign(out, key, value)
    return out


def test_plain_nested_and_list_keys() -> None:
    assert fields(("prompt", "p"), ("video[id]", "video_1"), ("characters[]", "a"), ("characters[]", "b")) == {
        "prompt": "p",
        "video": {"id": "video_1"},
        "characters": ["a", "b"],
    }


def test_deeper_nesting() -> None:
    assert fields(("a[b][c]", "1"), ("a[b][d]", "2")) == {"a": {"b": {"c": "1", "d": "2"}}}


def test_conflicting_keys_are_a_client_error() -> None:
    import pytest

    from kinema.services.errors import InvalidRequest

    for pairs in (
        (("video", "x"), ("video[id]", "y")),
        (("video[id]", "y"), ("video", "x")),
        (("prompt", "a"), ("prompt[]", "b")),
    ):
        with pytest.raises(InvalidRequest) as err:
            fields(*pairs)
        assert err.value.param == pairs[0][0].split("[")[0]
