"""Docs that tests keep honest: the model table is what the code does."""

from __future__ import annotations

from pathlib import Path

from kinema.cli.models import models_markdown
from kinema.engine.registry import builtin_registry

ROOT = Path(__file__).resolve().parents[1]


def test_models_doc_has_the_current_table() -> None:
    table = models_markdown(builtin_registry())
    assert table in (ROOT / "docs" / "models.md").read_text(), "regenerate with `kinema models --markdown`"


def test_readme_shows_the_quickstart_file_verbatim() -> None:
    readme = (ROOT / "README.md").read_text()
    code = (ROOT / "examples" / "quickstart.py").read_text()
    assert f"```python\n{code}```\n" in readme, "paste examples/quickstart.py into the README's quickstart block"
    assert "bash scripts/serve.sh" in readme and ".venv/bin/python examples/quickstart.py" in readme


def test_readme_and_install_script_agree_on_the_cpu_torch() -> None:
    readme = (ROOT / "README.md").read_text()
    install = (ROOT / "scripts" / "install.sh").read_text()
    cpu = "https://download.pytorch.org/whl/cpu"
    assert f"pip install torch==2.13.0 --index-url {cpu}" in readme and f"index={cpu}" in install
    assert '"torch==2.13.0"' in install
