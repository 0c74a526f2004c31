"""Moderation policies: a versioned set of categories, loaded from TOML and validated up front.

File format (see ``default_policy.toml`` for a commented example)::

    version = "my-policy-3"

    [categories.graphic_violence]      # lower_snake_case; used as the label in audit records
    terms = ["beheading", "gore"]      # whole words/phrases, evasion-resistant (see checker.py)
    patterns = ['how to make a bomb']  # regular expressions over the normalised text
    exceptions = ["al gore"]           # phrases that un-block a term or pattern match lying inside them
    log_prompt = true                  # may a refusal's audit record keep the prompt? (default false)

Every problem is reported as a ``PolicyError`` naming the file, the category and the field, so a typo such as
``term = [...]`` fails loudly at start-up instead of silently disabling a category.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Final

from kinema.moderation.normalize import normalize

DEFAULT_POLICY: Final = "default_policy.toml"
_NAME: Final = re.compile(r"[a-z][a-z0-9_]*")
_LIST_FIELDS: Final = ("terms", "patterns", "exceptions")
_CATEGORY_FIELDS: Final = frozenset({*_LIST_FIELDS, "log_prompt"})
_TOP_LEVEL_FIELDS: Final = frozenset({"version", "categories"})


class PolicyError(ValueError):
    """A policy file that cannot be used; the message names the file, category and field at fault."""


@dataclass(frozen=True)
class Category:
    """One kind of refused content. ``terms``, ``patterns`` and ``exceptions`` are kept as written."""

    name: str
    terms: tuple[str, ...]
    patterns: tuple[str, ...]
    exceptions: tuple[str, ...]
    log_prompt: bool


@dataclass(frozen=True)
class Policy:
    """A versioned, ordered set of categories; the first category that matches a prompt is the one reported."""

    version: str
    categories: tuple[Category, ...]

    def category(self, name: str) -> Category | None:
        """The category called ``name``, or None."""
        return next((c for c in self.categories if c.name == name), None)


def load_policy(path: Path | None = None) -> Policy:
    """The policy in the TOML file at ``path``; None means the packaged ``default_policy.toml``.

    Raises ``PolicyError`` (never a bare OSError or TOMLDecodeError) for a missing, unreadable or invalid file.
    """
    if path is None:
        source = f"<packaged {DEFAULT_POLICY}>"
        text = resources.files(__package__).joinpath(DEFAULT_POLICY).read_text(encoding="utf-8")
    else:
        source = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise PolicyError(f"{source}: cannot read the policy file: {exc}") from exc
    return parse_policy(text, source=source)


def parse_policy(text: str, *, source: str = "<string>") -> Policy:
    """The policy in the TOML document ``text``; ``source`` names it in error messages."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{source}: not valid TOML: {exc}") from exc

    unknown = sorted(set(data) - _TOP_LEVEL_FIELDS)
    if unknown:
        raise PolicyError(f"{source}: unknown top-level field {unknown[0]!r} (expected 'version' and 'categories')")
    version = data.get("version")
    if not isinstance(version, str) or not version.strip():
        raise PolicyError(f"{source}: field 'version' must be a non-empty string")
    tables = data.get("categories")
    if not isinstance(tables, dict) or not tables:
        raise PolicyError(f"{source}: field 'categories' must hold at least one [categories.<name>] table")
    categories = tuple(_category(source, name, table) for name, table in tables.items())
    return Policy(version=version.strip(), categories=categories)


def _category(source: str, name: str, table: Any) -> Category:
    where = f"{source}: category {name!r}"
    if not _NAME.fullmatch(name):
        raise PolicyError(f"{where}: the name must be lower_snake_case (it labels audit records)")
    if not isinstance(table, dict):
        raise PolicyError(f"{where}: must be a table ([categories.{name}]), not {type(table).__name__}")
    unknown = sorted(set(table) - _CATEGORY_FIELDS)
    if unknown:
        expected = ", ".join(sorted(_CATEGORY_FIELDS))
        raise PolicyError(f"{where}: unknown field {unknown[0]!r} (expected {expected})")

    lists = {field: _strings(where, field, table.get(field, [])) for field in _LIST_FIELDS}
    for field in ("terms", "exceptions"):
        for i, phrase in enumerate(lists[field]):
            # Matches made only of digits are ignored (they are numbers, not leetspeak), so a phrase with no
            # letter could never match; numbers belong in patterns.
            if not any(c.isalpha() for c in normalize(phrase)):
                raise PolicyError(f"{where}, field {field!r}, item {i} ({phrase!r}): must contain a letter")
    for i, pattern in enumerate(lists["patterns"]):
        try:
            compiled = re.compile(pattern, re.IGNORECASE)
        except re.error as exc:
            raise PolicyError(
                f"{where}, field 'patterns', item {i} ({pattern!r}): invalid regular expression: {exc}"
            ) from exc
        if compiled.search("") is not None:
            raise PolicyError(f"{where}, field 'patterns', item {i} ({pattern!r}): matches the empty string")
    if not lists["terms"] and not lists["patterns"]:
        raise PolicyError(f"{where}: needs at least one entry in 'terms' or 'patterns'")

    log_prompt = table.get("log_prompt", False)
    if not isinstance(log_prompt, bool):
        raise PolicyError(f"{where}, field 'log_prompt': must be true or false, not {log_prompt!r}")
    return Category(
        name=name,
        terms=lists["terms"],
        patterns=lists["patterns"],
        exceptions=lists["exceptions"],
        log_prompt=log_prompt,
    )


def _strings(where: str, field: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise PolicyError(f"{where}, field {field!r}: must be a list of strings, not {type(value).__name__}")
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            raise PolicyError(f"{where}, field {field!r}, item {i}: must be a non-empty string, not {item!r}")
    return tuple(value)
