"""Names shared by everything that reads or writes the models dir (:mod:`kinema.engine.hub`,
:mod:`kinema.engine.tiny`); kept here, below both, so that neither has to import the other for them."""

from __future__ import annotations

BUILT_MARKER = ".complete.json"
"""Written last into a miniature's directory by its builder; its absence means "not (fully) built"."""
