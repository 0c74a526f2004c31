"""Fixtures for the face tests: the test photographs (skipped without them) and one shared analyzer."""

from __future__ import annotations

from pathlib import Path

import pytest

from kinema.faces import FaceAnalyzer
from testkit.faces.photos import faces_dir


@pytest.fixture(scope="session")
def photos() -> Path:
    """The test photographs' folder; skips the test when it is missing."""
    folder = faces_dir()
    if not (folder / "obama_1.jpg").is_file():
        pytest.skip(f"face test photographs not found at {folder} (set KINEMA_TEST_FACES)")
    return folder


@pytest.fixture(scope="session")
def analyzer(photos: Path) -> FaceAnalyzer:
    """One analyzer on the installed models, loaded once for the session."""
    face_analyzer = FaceAnalyzer()
    face_analyzer.load()
    return face_analyzer
