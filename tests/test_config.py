"""Settings: minimum password-hashing cost, TOML and environment sources, and docs."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from kinema.config import Settings

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("KINEMA_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("KINEMA_CONFIG", str(tmp_path / "absent.toml"))


@pytest.mark.parametrize(
    ("field", "value", "name"),
    [
        ("password_hash_memory_kib", 19455, "password_hash_memory_kib"),
        ("password_hash_time_cost", 1, "password_hash_time_cost"),
        ("password_min_length", 6, "password_min_length"),
    ],
)
def test_password_hashing_below_the_minimum_is_refused(field: str, value: int, name: str) -> None:
    with pytest.raises(ValidationError, match=name):
        Settings(**{field: value})


def test_defaults_resolve(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path)
    assert s.resolved_database_url == f"sqlite:///{(tmp_path / 'kinema.db').resolve()}"
    assert s.resolved_blob_dir == tmp_path / "blobs"
    assert s.resolved_aliases()["sora-2"] == s.default_model
    assert s.password_hash_memory_kib >= 19456 and s.password_hash_time_cost >= 2


def test_environment_and_toml(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    toml = tmp_path / "kinema.toml"
    toml.write_text('workers = 3\ndefault_model = "tiny-wan"\n[model_aliases]\n"sora-2" = "default"\n')
    monkeypatch.setenv("KINEMA_CONFIG", str(toml))
    monkeypatch.setenv("KINEMA_WORKERS", "2")  # the environment wins over the file
    s = Settings()
    assert (s.workers, s.default_model, s.resolved_aliases()) == (2, "tiny-wan", {"sora-2": "tiny-wan"})


def test_unknown_setting_in_toml_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    toml = tmp_path / "kinema.toml"
    toml.write_text("wrokers = 3\n")
    monkeypatch.setenv("KINEMA_CONFIG", str(toml))
    with pytest.raises(ValidationError, match="wrokers"):
        Settings(mode="dev")


def test_every_setting_is_documented() -> None:
    doc = (ROOT / "docs" / "configuration.md").read_text()
    missing = [name for name in Settings.model_fields if f"`KINEMA_{name.upper()}`" not in doc]
    assert missing == [], f"undocumented settings: {missing}"


def test_heartbeat_must_be_well_inside_the_lease() -> None:
    with pytest.raises(ValidationError, match="KINEMA_HEARTBEAT_SECONDS"):
        Settings(mode="dev", lease_seconds=10, heartbeat_seconds=5)
    assert Settings(mode="dev", lease_seconds=15, heartbeat_seconds=5).lease_seconds == 15
