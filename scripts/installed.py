"""Exit 0 when .venv already holds this checkout of Kinema (editable) and everything pyproject.toml asks for.

Usage: python scripts/installed.py EXTRA[,EXTRA...]   (run with the venv's python; exit 1 means "install")

It reads pyproject.toml itself, not the installed metadata, so a dependency added since the last install is
noticed; each requirement is checked against the installed version, then what that requires, transitively.
scripts/install.sh runs it so that starting the server again does not reinstall (or need the network).
"""

from __future__ import annotations

import json
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]


def satisfied(requirement: Requirement, seen: set[tuple[str, str]]) -> bool:
    """The requirement, and everything it requires (with its extras), is installed at an accepted version."""
    try:
        dist = metadata.distribution(requirement.name)
    except metadata.PackageNotFoundError:
        return False
    if not requirement.specifier.contains(dist.version, prereleases=True):
        return False
    for extra in ("", *sorted(requirement.extras)):
        key = (canonicalize_name(requirement.name), extra)
        if key in seen:
            continue
        seen.add(key)
        for line in dist.requires or []:
            sub = Requirement(line)
            if sub.marker is not None and not sub.marker.evaluate({"extra": extra}):
                continue
            if sub.marker is None and extra:
                continue  # a base requirement, checked with extra ""
            if not satisfied(sub, seen):
                return False
    return True


def main() -> int:
    extras = [e for e in (sys.argv[1] if len(sys.argv) > 1 else "").split(",") if e]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    try:
        kinema = metadata.distribution(project["name"])
        origin = json.loads(kinema.read_text("direct_url.json") or "{}")
    except (metadata.PackageNotFoundError, ValueError):
        return 1
    editable_here = origin.get("url") == ROOT.as_uri() and origin.get("dir_info", {}).get("editable", False)
    if kinema.version != project["version"] or not editable_here:
        return 1
    wanted = list(project["dependencies"])
    for extra in extras:
        if extra not in project.get("optional-dependencies", {}):
            return 1
        wanted += project["optional-dependencies"][extra]
    seen: set[tuple[str, str]] = set()
    return 0 if all(satisfied(Requirement(line), seen) for line in wanted) else 1


if __name__ == "__main__":
    sys.exit(main())
