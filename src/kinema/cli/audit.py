"""``kinema audit ...``: verifying and exporting the tamper-evident audit log."""

from __future__ import annotations

from pathlib import Path

import click

from kinema.cli.common import load_cli_settings


@click.group()
def audit() -> None:
    """The tamper-evident audit log."""


@audit.command("verify")
@click.option(
    "--checkpoint",
    "checkpoint_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="An exported file (or checkpoint JSON); its last line's checkpoint also catches truncation.",
)
def audit_verify(checkpoint_file: Path | None) -> None:
    """Check every entry against the signed checkpoints; exit 1 and list the problems if anything changed."""
    from kinema.audit.checkpoint import Checkpoint
    from kinema.container import Container

    container = Container.from_settings(load_cli_settings())
    try:
        given = None
        if checkpoint_file is not None:
            last = [line for line in checkpoint_file.read_text().splitlines() if line.strip()][-1]
            given = Checkpoint.from_json(last)
        report = container.audit.verify(checkpoint=given)
    finally:
        container.close()
    if report.ok:
        click.echo(f"audit log ok: {report.size} entries, consistent with the signed checkpoints")
        return
    for problem in report.problems:
        click.echo(f"problem: {problem}", err=True)
    raise SystemExit(1)


@audit.command("export")
@click.argument("output", type=click.Path(dir_okay=False, path_type=Path))
def audit_export(output: Path) -> None:
    """Write every entry and a fresh signed checkpoint as JSON lines (keep the file somewhere else)."""
    from kinema.container import Container

    container = Container.from_settings(load_cli_settings())
    try:
        with output.open("w") as fh:
            count = container.audit.export(fh)
    except Exception as exc:
        raise click.ClickException(f"export refused: {exc}") from None
    finally:
        container.close()
    click.echo(f"wrote {count} entries and a signed checkpoint to {output}")
