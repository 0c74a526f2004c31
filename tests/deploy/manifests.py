"""Helpers for the deployment tests: the files under deploy/, parsed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
KUBERNETES = DEPLOY / "kubernetes"


def documents(path: Path) -> list[dict[str, Any]]:
    """Every YAML document in ``path`` (empty ones dropped)."""
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def resources() -> list[dict[str, Any]]:
    """Every Kubernetes object in deploy/kubernetes, with the file it came from under ``_file``."""
    out = []
    for path in sorted(KUBERNETES.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in documents(path):
            out.append({**doc, "_file": path.name})
    return out


def find(kind: str, name: str) -> dict[str, Any]:
    """The object of ``kind`` named ``name``."""
    found = [r for r in resources() if r["kind"] == kind and r["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def keda_query() -> str:
    """The SQL of the KEDA ScaledObject's PostgreSQL trigger, exactly as the manifest gives it to KEDA."""
    scaled = [r for r in resources() if r["kind"] == "ScaledObject"]
    assert len(scaled) == 1
    (trigger,) = scaled[0]["spec"]["triggers"]
    query: str = trigger["metadata"]["query"]
    return query
