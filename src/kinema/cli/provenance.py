"""``kinema verify`` and ``kinema provenance ...``: checking files, and the deployment's signing identity."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from kinema.cli.common import load_cli_settings

if TYPE_CHECKING:
    from kinema.provenance.watermark import Detection


@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def verify(file: Path, as_json: bool) -> None:
    """Check a file's C2PA manifest and watermark against this deployment (operators see the job)."""
    import json

    from kinema.api.v1.provenance.protocol import Verification
    from kinema.container import Container

    container = Container.from_settings(load_cli_settings())
    try:
        result = container.verification.verify(file.read_bytes(), owner_id=None, operator=True)
    except Exception as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        container.close()
    view = Verification.from_result(result)
    if as_json:
        click.echo(json.dumps(view.model_dump(), indent=2))
        return
    c, w = view.c2pa, view.watermark
    click.echo(f"C2PA:      {c.state}" + (f" (model {c.model})" if c.model else ""))
    click.echo(
        f"watermark: {_watermark_line(result.verification.watermark)}"
        + (" (this deployment)" if w.this_deployment else "")
    )
    click.echo(f"job:       {view.video_id or 'not traced to a job of this deployment'}")


def _watermark_line(detection: Detection) -> str:
    """The watermark's state in words: found, not found, or too small to carry a mark."""
    if detection.found:
        return f"found, confidence {detection.confidence:.2f}"
    if detection.too_small:
        from kinema.provenance.watermark import MIN_MARK_SIDE

        width, height = detection.frame_size or (0, 0)
        return (
            f"too small to carry a mark ({width}x{height}; a watermark needs {MIN_MARK_SIDE} px or more on the "
            "short side), so its absence says nothing"
        )
    return "not found"


@click.group()
def provenance() -> None:
    """The deployment's signing identity."""


@provenance.command()
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write to a file.")
def anchor(output: Path | None) -> None:
    """Print the trust anchor (CA certificate, PEM) that others import to verify this deployment's files."""
    from kinema.container import build_provenance

    pem = build_provenance(load_cli_settings()).anchor_pem()
    if pem is None:
        raise click.ClickException("the configured signing chain has no self-signed root to export")
    if output:
        output.write_bytes(pem)
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(pem.decode(), nl=False)
