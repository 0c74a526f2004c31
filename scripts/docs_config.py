"""Rewrite the settings table in docs/configuration.md from kinema.config.Settings.

Run: python scripts/docs_config.py   (tests/test_config.py fails when a setting is undocumented)
"""

from __future__ import annotations

from pathlib import Path

from kinema.config import Settings

DOC = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
MARKER = "| variable | default | meaning |"


def table() -> str:
    rows = [MARKER, "| --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        default = field.default if field.default_factory is None else field.default_factory()  # type: ignore[call-arg]
        if hasattr(default, "get_secret_value") or default is None:
            default = "(none)"
        rows.append(f"| `KINEMA_{name.upper()}` | `{default}` | {field.description} |")
    return "\n".join(rows) + "\n"


def main() -> None:
    text = DOC.read_text()
    head = text[: text.index(MARKER)]
    DOC.write_text(head + table())


if __name__ == "__main__":
    main()
