"""The ``studio`` fixture: one server and one Chromium per test module (see tests/web/browser.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.web.browser import Studio, running_studio


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[Studio]:
    with running_studio(tmp_path_factory.mktemp("studio"), models_dir) as running:
        yield running
