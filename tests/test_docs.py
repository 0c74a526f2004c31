"""Docs that tests keep honest: the model table is what the code does."""

from __future__ import annotations

from pathlib import Path

from kinema.cli import models_markdown
from kinema.engine.registry import builtin_registry

ROOT = Path(__file__).resolve().parents[1]


def test_models_doc_has_the_current_table() -> None:
    table = models_markdown(builtin_registry())
    assert table in (ROOT / "docs" / "models.md").read_text(), "regenerate with `kinema models --markdown`"
