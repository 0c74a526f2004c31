"""Model weights on disk: pulling them from the Hugging Face hub once, finding them offline afterwards.

Layout under the models dir::

    models.lock.json          repo id -> the commit that was pulled (what loading uses)
    hub/models--Org--Name/    the standard Hugging Face cache layout (blobs, snapshots/<commit>, refs)
    tiny-wan/{t2v,i2v,vace}/  miniatures built locally (see :mod:`kinema.engine.tiny`)

Only :func:`pull` talks to the network. Everything else reads the disk: a model is "present" when the lock
file names a commit and that commit's snapshot is in the cache, so loading never resolves a branch name
against the hub and never downloads.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from huggingface_hub import snapshot_download
from huggingface_hub.errors import LocalEntryNotFoundError

from kinema.engine.base import ModelNotAvailable, Task
from kinema.engine.layout import BUILT_MARKER
from kinema.engine.registry import ComponentSource, ModelSpec

LOCK_FILE = "models.lock.json"
HUB_CACHE_DIR = "hub"

_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_DEFAULT_BRANCH = "main"


def pull_hint(spec: ModelSpec) -> str:
    """The command that makes ``spec`` available on this machine."""
    return f"kinema pull {spec.name}"


def read_lock(models_dir: Path) -> dict[str, dict[str, Any]]:
    """Repo id -> lock entry: ``revision`` (commit pulled), ``requested`` (what was asked), ``pulled_at``."""
    path = Path(models_dir) / LOCK_FILE
    if not path.exists():
        return {}
    data = json.loads(path.read_text())
    repos = data.get("repos", {})
    return repos if isinstance(repos, dict) else {}


def _write_lock(models_dir: Path, repos: dict[str, dict[str, Any]]) -> None:
    # Write-then-rename so a reader never sees half a file (a worker may be starting while a pull finishes).
    models_dir.mkdir(parents=True, exist_ok=True)
    payload = json.dumps({"version": 1, "repos": dict(sorted(repos.items()))}, indent=2) + "\n"
    fd, tmp = tempfile.mkstemp(dir=models_dir, prefix=".models.lock.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(payload)
    os.replace(tmp, models_dir / LOCK_FILE)


def _requested(source: ComponentSource) -> str:
    return source.revision or _DEFAULT_BRANCH


def _locked_commit(source: ComponentSource, lock: dict[str, dict[str, Any]]) -> str | None:
    """The pulled commit to load for ``source``, or None when what is locked is not what the spec asks for."""
    entry = lock.get(source.repo_id or "")
    if not entry:
        return None
    commit = entry.get("revision")
    if not isinstance(commit, str) or not _COMMIT.match(commit):
        return None
    if source.revision is None or source.revision in (commit, entry.get("requested")):
        return commit
    return None  # the catalogue now pins something else: it has to be pulled again


def _miniature_path(source: ComponentSource, models_dir: Path) -> Path | None:
    path = Path(models_dir) / (source.subdir or "")
    root = Path(models_dir) / Path(source.subdir or "").parts[0]
    if (root / BUILT_MARKER).is_file() and (path / "model_index.json").is_file():
        return path
    return None


def local_path(spec: ModelSpec, task: Task, models_dir: Path) -> Path | None:
    """Where the weights ``spec`` uses for ``task`` are on this machine, or None if they are not (complete).

    Never touches the network: hub weights are looked up at the commit recorded in the lock file with
    ``local_files_only=True``.
    """
    source = spec.tasks.get(task)
    if source is None:
        return None
    if source.subdir is not None:
        return _miniature_path(source, models_dir)
    commit = _locked_commit(source, read_lock(models_dir))
    if commit is None:
        return None
    try:
        folder = snapshot_download(
            source.repo_id or "",
            revision=commit,
            cache_dir=Path(models_dir) / HUB_CACHE_DIR,
            local_files_only=True,
        )
    except LocalEntryNotFoundError:  # includes huggingface_hub's IncompleteSnapshotError
        return None
    path = Path(folder)
    return path if (path / "model_index.json").is_file() else None


def lora_path(source: ComponentSource, models_dir: Path) -> Path | None:
    """The LoRA weights file ``source`` names (``weight_name``), or None when it is not on this machine."""
    if source.weight_name is None:
        raise ValueError("a LoRA source needs weight_name")
    if source.subdir is not None:
        root = Path(models_dir) / Path(source.subdir).parts[0]
        file = Path(models_dir) / source.subdir / source.weight_name
        return file if (root / BUILT_MARKER).is_file() and file.is_file() else None
    commit = _locked_commit(source, read_lock(models_dir))
    if commit is None:
        return None
    try:
        folder = snapshot_download(
            source.repo_id or "",
            revision=commit,
            cache_dir=Path(models_dir) / HUB_CACHE_DIR,
            allow_patterns=[source.weight_name],
            local_files_only=True,
        )
    except LocalEntryNotFoundError:
        return None
    file = Path(folder) / source.weight_name
    return file if file.is_file() else None


def require_lora_path(spec: ModelSpec, source: ComponentSource, models_dir: Path) -> Path:
    """Like :func:`lora_path`, but raises :class:`ModelNotAvailable` with the pull command when absent."""
    path = lora_path(source, models_dir)
    if path is None:
        raise ModelNotAvailable(
            f"the turbo LoRA of model {spec.name!r} ({source.repo_id or source.subdir}/{source.weight_name}) is "
            f"not on this machine: run `{pull_hint(spec)}`"
        )
    return path


def is_present(spec: ModelSpec, task: Task, models_dir: Path) -> bool:
    """True when :func:`local_path` finds the weights for ``task``."""
    return local_path(spec, task, models_dir) is not None


def require_local_path(spec: ModelSpec, task: Task, models_dir: Path) -> Path:
    """Like :func:`local_path`, but raises :class:`ModelNotAvailable` with the pull command when absent."""
    path = local_path(spec, task, models_dir)
    if path is not None:
        return path
    source = spec.tasks.get(task)
    if source is None:
        raise ModelNotAvailable(f"model {spec.name!r} has no {task} weights in the catalogue")
    if spec.miniature:
        raise ModelNotAvailable(
            f"model {spec.name!r} has not been built on this machine: run `{pull_hint(spec)}` "
            "(it is built locally, nothing is downloaded)"
        )
    raise ModelNotAvailable(
        f"model {spec.name!r} is not on this machine ({task} needs {source.repo_id}): run `{pull_hint(spec)}`"
    )


def pull(spec: ModelSpec, models_dir: Path, tasks: list[Task] | None = None) -> dict[Task, Path]:
    """Download the weights ``spec`` needs for ``tasks`` (default: all) and lock the commits fetched.

    Each repository is fetched once even when several tasks share it, with huggingface_hub's progress bars.
    The lock entry is written only after a repository's download completed, so an interrupted pull never
    makes a model look present. Miniatures are built locally instead. Returns task -> weights directory.
    """
    models_dir = Path(models_dir)
    wanted = list(tasks) if tasks is not None else list(spec.tasks)
    unknown = [t for t in wanted if t not in spec.tasks]
    if unknown:
        raise ValueError(f"model {spec.name!r} has no {', '.join(unknown)} task; it has {', '.join(spec.tasks)}")

    if spec.miniature:
        from kinema.engine.tiny import build_tiny_models  # heavy (torch, diffusers): only when needed

        build_tiny_models(models_dir)
        return {t: require_local_path(spec, t, models_dir) for t in wanted}

    fetched: dict[tuple[str, str | None], Path] = {}
    paths: dict[Task, Path] = {}
    for task in wanted:
        source = spec.tasks[task]
        key = (source.repo_id or "", source.revision)
        if key not in fetched:
            folder = Path(
                snapshot_download(source.repo_id or "", revision=source.revision, cache_dir=models_dir / HUB_CACHE_DIR)
            )
            # In the hub cache layout the snapshot directory is named after the commit it holds.
            commit = folder.name
            if not _COMMIT.match(commit):
                raise RuntimeError(f"unexpected snapshot path {folder} for {source.repo_id}")
            lock = read_lock(models_dir)
            lock[source.repo_id or ""] = {
                "revision": commit,
                "requested": _requested(source),
                "pulled_at": datetime.now(UTC).isoformat(timespec="seconds"),
            }
            _write_lock(models_dir, lock)
            fetched[key] = folder
        paths[task] = fetched[key]
    if spec.turbo is not None and spec.turbo.lora.repo_id is not None:
        # The turbo preset's LoRA is pulled and locked like the weights: one file of its repository, or for a
        # two-expert model (Wan 2.2 A14B) both experts' files of it, in one snapshot at one commit.
        lora = spec.turbo.lora
        folder = Path(
            snapshot_download(
                lora.repo_id or "",
                revision=lora.revision,
                cache_dir=models_dir / HUB_CACHE_DIR,
                allow_patterns=[source.weight_name or "" for source in spec.turbo.sources()],
            )
        )
        if not _COMMIT.match(folder.name):
            raise RuntimeError(f"unexpected snapshot path {folder} for {lora.repo_id}")
        lock = read_lock(models_dir)
        lock[lora.repo_id or ""] = {
            "revision": folder.name,
            "requested": _requested(lora),
            "pulled_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        _write_lock(models_dir, lock)
    return paths
