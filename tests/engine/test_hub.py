"""Weights on disk: the lock file, presence checks and pull, against a fake hub cache (no network)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from huggingface_hub.errors import LocalEntryNotFoundError

from kinema.engine.base import ModelNotAvailable
from kinema.engine.hub import (
    HUB_CACHE_DIR,
    LOCK_FILE,
    is_present,
    local_path,
    pull,
    read_lock,
    require_local_path,
)
from kinema.engine.registry import ComponentSource, ModelRegistry, ModelSpec

T2V_REPO = "Wan-AI/Wan2.1-T2V-1.3B-Diffusers"
SHA = "0123456789abcdef0123456789abcdef01234567"
OTHER_SHA = "fedcba9876543210fedcba9876543210fedcba98"


def fake_cached_repo(models_dir: Path, repo_id: str, commit: str, *, branch: str | None = "main") -> Path:
    """The layout snapshot_download leaves in a hub cache, with a model_index.json in the snapshot."""
    repo_dir = models_dir / HUB_CACHE_DIR / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo_dir / "snapshots" / commit
    (snapshot / "transformer").mkdir(parents=True)
    (snapshot / "model_index.json").write_text(json.dumps({"_class_name": "WanPipeline"}))
    (snapshot / "transformer" / "config.json").write_text("{}")
    if branch is not None:
        (repo_dir / "refs").mkdir(exist_ok=True)
        (repo_dir / "refs" / branch).write_text(commit)
    return snapshot


@pytest.fixture
def wan(registry: ModelRegistry) -> ModelSpec:
    return registry.resolve("wan2.1-t2v-1.3b")


def test_nothing_is_present_in_an_empty_models_dir(wan: ModelSpec, tmp_path: Path) -> None:
    assert local_path(wan, "t2v", tmp_path) is None
    assert not is_present(wan, "t2v", tmp_path)
    assert read_lock(tmp_path) == {}


def test_a_missing_model_raises_with_the_pull_command(wan: ModelSpec, tmp_path: Path) -> None:
    with pytest.raises(ModelNotAvailable) as info:
        require_local_path(wan, "vace", tmp_path)
    assert str(info.value) == (
        "model 'wan2.1-t2v-1.3b' is not on this machine (vace needs Wan-AI/Wan2.1-VACE-1.3B-diffusers): "
        "run `kinema pull wan2.1-t2v-1.3b`"
    )


def test_cached_files_without_a_lock_entry_are_not_used(wan: ModelSpec, tmp_path: Path) -> None:
    # e.g. an interrupted pull: the lock is written only once a repository is complete
    fake_cached_repo(tmp_path, T2V_REPO, SHA)
    assert not is_present(wan, "t2v", tmp_path)


def test_pull_locks_the_commit_it_fetched_and_loading_finds_it(wan: ModelSpec, tmp_path: Path) -> None:
    snapshot = fake_cached_repo(tmp_path, T2V_REPO, SHA)
    # offline, snapshot_download resolves "main" from the cache's refs: the same code path as a real pull
    paths = pull(wan, tmp_path, tasks=["t2v", "v2v"])
    assert paths == {"t2v": snapshot, "v2v": snapshot}
    lock = json.loads((tmp_path / LOCK_FILE).read_text())
    assert lock["version"] == 1
    assert lock["repos"][T2V_REPO]["revision"] == SHA
    assert lock["repos"][T2V_REPO]["requested"] == "main"
    assert local_path(wan, "t2v", tmp_path) == snapshot
    assert is_present(wan, "v2v", tmp_path)
    assert not is_present(wan, "vace", tmp_path)  # another repository, never pulled


def test_loading_uses_the_locked_commit_not_the_branch(wan: ModelSpec, tmp_path: Path) -> None:
    locked = fake_cached_repo(tmp_path, T2V_REPO, SHA)
    pull(wan, tmp_path, tasks=["t2v"])
    # a newer commit arrives in the cache (say another tool updated "main"); the lock still decides
    fake_cached_repo(tmp_path, T2V_REPO, OTHER_SHA)
    assert local_path(wan, "t2v", tmp_path) == locked


def test_a_locked_commit_whose_files_are_gone_is_absent(wan: ModelSpec, tmp_path: Path) -> None:
    snapshot = fake_cached_repo(tmp_path, T2V_REPO, SHA)
    pull(wan, tmp_path, tasks=["t2v"])
    (snapshot / "model_index.json").unlink()
    assert local_path(wan, "t2v", tmp_path) is None


def test_a_spec_pinning_another_revision_needs_a_new_pull(wan: ModelSpec, tmp_path: Path) -> None:
    fake_cached_repo(tmp_path, T2V_REPO, SHA)
    pull(wan, tmp_path, tasks=["t2v"])
    pinned = dataclasses.replace(
        wan, tasks={"t2v": ComponentSource("WanPipeline", repo_id=T2V_REPO, revision=OTHER_SHA)}
    )
    assert not is_present(pinned, "t2v", tmp_path)
    same = dataclasses.replace(wan, tasks={"t2v": ComponentSource("WanPipeline", repo_id=T2V_REPO, revision=SHA)})
    assert is_present(same, "t2v", tmp_path)


def test_a_failed_pull_writes_no_lock_entry(wan: ModelSpec, tmp_path: Path) -> None:
    with pytest.raises(LocalEntryNotFoundError):
        pull(wan, tmp_path, tasks=["vace"])  # offline and not cached
    assert read_lock(tmp_path) == {}


def test_pull_refuses_tasks_the_model_lacks(wan: ModelSpec, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no i2v task"):
        pull(wan, tmp_path, tasks=["i2v"])


def test_miniatures_are_present_when_built_and_pull_builds_them(
    tiny: ModelSpec, models_dir: Path, tmp_path: Path
) -> None:
    assert local_path(tiny, "v2v", models_dir) == models_dir / "tiny-wan" / "t2v"
    assert local_path(tiny, "i2v", models_dir) == models_dir / "tiny-wan" / "i2v"
    with pytest.raises(ModelNotAvailable, match="run `kinema pull tiny-wan`"):
        require_local_path(tiny, "t2v", tmp_path)
    # pulling an already built miniature builds nothing and reports where it is
    assert pull(tiny, models_dir, tasks=["vace"]) == {"vace": models_dir / "tiny-wan" / "vace"}


def test_pull_also_locks_the_turbo_lora_and_it_is_found_offline(registry: ModelRegistry, tmp_path: Path) -> None:
    from kinema.engine.hub import lora_path

    i2v = registry.resolve("wan2.1-i2v-14b-480p")
    assert i2v.turbo is not None
    lora = i2v.turbo.lora
    assert lora_path(lora, tmp_path) is None  # not pulled yet: turbo jobs would say how to pull it
    fake_cached_repo(tmp_path, "Wan-AI/Wan2.1-I2V-14B-480P-Diffusers", SHA)
    lora_snapshot = fake_cached_repo(tmp_path, lora.repo_id or "", OTHER_SHA)
    (lora_snapshot / (lora.weight_name or "")).write_bytes(b"lora")
    pull(i2v, tmp_path)
    assert read_lock(tmp_path)[lora.repo_id or ""]["revision"] == OTHER_SHA
    assert lora_path(lora, tmp_path) == lora_snapshot / (lora.weight_name or "")
