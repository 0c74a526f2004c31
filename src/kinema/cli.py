"""The ``kinema`` command: serve, worker, migrate, generate, models, pull, verify, audit, admin, keys."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from pydantic import ValidationError

from kinema.cli_accounts import admin, ensure_dev_account, keys
from kinema.cli_report import report
from kinema.config import Settings, load_settings
from kinema.services.mediagate import limit_malloc_arenas

if TYPE_CHECKING:
    from kinema.engine.base import Task
    from kinema.provenance.watermark import Detection

MINIATURE_WARNING = (
    "note: '{name}' is a miniature with random weights, built on this machine for dry runs and tests; "
    "it makes no meaningful video (coloured noise). Pull a real model for real output: kinema pull --help"
)


def _settings(**overrides: Any) -> Settings:
    clean = {k: v for k, v in overrides.items() if v is not None}
    try:
        return load_settings(**clean)
    except ValidationError as exc:
        # Without the input values: they may hold a secret such as the API token.
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors(include_input=False)
        )
        raise click.ClickException(f"invalid settings: {problems}") from None


def private_files() -> None:
    """Files and folders this process creates (database, blobs, keys, logs) are its user's only: they hold
    password and key hashes, inputs and outputs. Group and others get no access whatever the shell's umask."""
    os.umask(0o077)


def _announce_miniature(settings: Settings, name: str) -> None:
    from kinema.container import build_registry

    spec = build_registry(settings).resolve(name)
    if spec.miniature:
        click.secho(MINIATURE_WARNING.format(name=spec.name), fg="yellow", err=True)


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
@click.version_option(package_name="kinema")
def main(verbose: bool) -> None:
    """Kinema: self-hosted, privacy-first video generation with an OpenAI-Videos-compatible API."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not verbose:
        logging.getLogger("alembic").setLevel(logging.WARNING)


@main.command()
@click.option("--host", default=None, help="Address to listen on (KINEMA_HOST).")
@click.option("--port", type=int, default=None, help="Port (KINEMA_PORT).")
@click.option("--workers", type=int, default=None, help="In-process worker threads (KINEMA_WORKERS).")
@click.option("--model", "default_model", default=None, help="Default model, e.g. tiny-wan for a dry run.")
@click.option("--dev", is_flag=True, help="Development mode: create an admin and an API key on first start.")
def serve(host: str | None, port: int | None, workers: int | None, default_model: str | None, dev: bool) -> None:
    """Run the HTTP API with N worker threads in this process."""
    private_files()
    limit_malloc_arenas()  # before any request or worker thread exists: see kinema.services.mediagate
    # Settings first: a bad one fails in milliseconds, before torch and diffusers are imported.
    settings = _settings(
        host=host, port=port, workers=workers, default_model=default_model, mode="dev" if dev else None
    )
    import uvicorn

    from kinema.api.app import create_app
    from kinema.container import Container

    container = Container.from_settings(settings)
    _announce_miniature(settings, settings.default_model)
    container.engine.ensure_miniatures()
    if settings.mode == "dev":
        key = ensure_dev_account(container)
        path = settings.data_dir / "dev-api-key"
        click.secho(f"dev mode: admin dev@localhost, API key (saved in {path}): {key}", fg="yellow", err=True)
    app = create_app(container, workers=settings.workers)
    click.echo(f"Kinema on http://{settings.host}:{settings.port}/v1 (docs at /docs)", err=True)
    try:
        # proxy_headers off: uvicorn would otherwise believe X-Forwarded-For from 127.0.0.1; Kinema reads it
        # itself, only from the configured trusted proxies (KINEMA_TRUSTED_PROXIES).
        uvicorn.run(app, host=settings.host, port=settings.port, log_level="info", proxy_headers=False)
    finally:
        container.close()


@main.command()
@click.option("--id", "worker_id", default=None, help="Worker id shown in logs and leases.")
@click.option("--threads", type=int, default=1, show_default=True, help="Jobs run at once by this process.")
@click.option(
    "--grace",
    type=float,
    default=None,
    help="After SIGTERM, seconds to let a running job finish before giving it back to the queue "
    "(default: wait for it). A second SIGTERM or Ctrl-C gives it back at once.",
)
def worker(worker_id: str | None, threads: int, grace: float | None) -> None:
    """Run a standalone worker against the configured database and blob folder."""
    private_files()
    limit_malloc_arenas()
    from kinema.container import Container

    container = Container.from_settings(_settings())
    container.engine.ensure_miniatures()
    stop = threading.Event()
    release_at: list[float] = []  # monotonic deadline after which running jobs go back to the queue

    def _stop(signum: int, _frame: Any) -> None:
        if stop.is_set():
            click.echo(f"signal {signum} again: giving running jobs back to the queue", err=True)
            release_at[:] = [0.0]
            return
        when = "finishing the current job" if grace is None else f"finishing the current job within {grace:g} s"
        click.echo(f"signal {signum}: {when}, then stopping", err=True)
        if grace is not None:
            release_at[:] = [time.monotonic() + grace]
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    workers = [
        container.make_worker(f"{worker_id}-{i}" if worker_id and threads > 1 else worker_id) for i in range(threads)
    ]
    runners = [threading.Thread(target=w.run, args=(stop,), daemon=True) for w in workers]
    for t in runners:
        t.start()
    container.start_webhooks()  # delivers webhook events until container.close()
    click.echo(f"worker(s) {', '.join(w.worker_id for w in workers)} waiting for jobs", err=True)
    while any(t.is_alive() for t in runners):
        for t in runners:
            t.join(timeout=0.2)
        if release_at and time.monotonic() >= release_at[0]:
            for w in workers:
                w.release()  # each fenced: a job that just finished is not touched
    container.close()


@main.command()
def migrate() -> None:
    """Migrate the database to the latest schema and exit (what `serve` and `worker` also do at start)."""
    private_files()
    from kinema.db.session import make_engine, upgrade_to_head

    settings = _settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.resolved_database_url)
    try:
        upgrade_to_head(engine)
    finally:
        engine.dispose()
    click.echo("database migrated to the latest schema", err=True)


@main.command()
@click.argument("prompt")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--model", default=None, help="Model name (default: the configured default).")
@click.option("--image", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="First frame.")
@click.option("--seconds", default=None, help="Clip length, e.g. 4.")
@click.option("--size", default=None, help="WIDTHxHEIGHT, e.g. 832x480.")
@click.option("--seed", type=int, default=None)
@click.option("--steps", type=int, default=None, help="Denoising steps.")
@click.option("--negative-prompt", default=None)
def generate(
    prompt: str,
    output: Path,
    model: str | None,
    image: Path | None,
    seconds: str | None,
    size: str | None,
    seed: int | None,
    steps: int | None,
    negative_prompt: str | None,
) -> None:
    """Generate one video locally, without a server, with a progress bar.

    Without --model it uses the configured default model; when that model has not been pulled on this
    machine and no KINEMA_DEFAULT_MODEL (or kinema.toml) chose it, the miniature tiny-wan, as
    scripts/serve.sh does, with a note saying so.
    """
    from kinema.engine.base import ModelNotAvailable
    from kinema.engine.registry import TINY_WAN
    from kinema.services.local import generate_locally

    settings = _settings(mode="dev")
    model = model or _local_default_model(settings, "i2v" if image is not None else "t2v")
    _announce_miniature(settings, model)
    try:
        result = generate_locally(
            settings,
            prompt,
            output,
            model=model,
            image=image,
            seconds=seconds,
            size=size,
            seed=seed,
            steps=steps,
            negative_prompt=negative_prompt,
        )
    except ModelNotAvailable as exc:
        raise click.ClickException(f"{exc}; or try the offline miniature first: --model {TINY_WAN}") from None
    except Exception as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"wrote {output} ({result})")


def _local_default_model(settings: Settings, task: Task) -> str:
    """The model ``kinema generate`` uses when none is named (see its help)."""
    from kinema.container import build_registry
    from kinema.engine.hub import is_present
    from kinema.engine.registry import TINY_WAN, UnknownModel

    registry = build_registry(settings)
    spec = registry.resolve(None)
    explicit = "default_model" in settings.model_fields_set
    if spec.miniature or explicit or task not in spec.tasks:
        return spec.name  # as configured; a missing model fails with the pull command to run
    if is_present(spec, task, settings.resolved_models_dir):
        return spec.name
    try:
        fallback = registry.resolve(TINY_WAN).name
    except UnknownModel:  # the deployment does not offer the miniature
        return spec.name
    click.secho(
        f"note: the default model {spec.name} is not pulled on this machine, so this uses the miniature "
        f"{fallback}, as scripts/serve.sh does. For real video: kinema pull {spec.name} (or pass --model).",
        fg="yellow",
        err=True,
    )
    return fallback


@main.command()
@click.option("--markdown", is_flag=True, help="Print the size/seconds table used in docs/models.md.")
def models(markdown: bool) -> None:
    """List configured models, what each can do, and whether its weights are here."""
    from kinema.container import build_registry
    from kinema.engine.hub import is_present

    settings = _settings(mode="dev")
    registry = build_registry(settings)
    if markdown:
        click.echo(models_markdown(registry))
        return
    aliases = settings.resolved_aliases()
    for spec in registry.specs():
        here = {t: is_present(spec, t, settings.resolved_models_dir) for t in spec.tasks}
        state = "present" if all(here.values()) else ("partial" if any(here.values()) else "not pulled")
        names = [a for a, target in aliases.items() if target == spec.name]
        default = " (default)" if spec.name == settings.default_model else ""
        click.echo(f"{spec.name}{default}  [{state}]" + (f"  aliases: {', '.join(names)}" if names else ""))
        click.echo(f"    {spec.description}")
        click.echo(f"    {spec.capabilities()}")
        if spec.miniature:
            click.echo("    miniature: random weights, no meaningful video")


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def verify(file: Path, as_json: bool) -> None:
    """Check a file's C2PA manifest and watermark against this deployment (operators see the job)."""
    import json

    from kinema.api.v1.provenance.protocol import Verification
    from kinema.container import Container

    container = Container.from_settings(_settings())
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


@main.group()
def provenance() -> None:
    """The deployment's signing identity."""


@provenance.command()
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write to a file.")
def anchor(output: Path | None) -> None:
    """Print the trust anchor (CA certificate, PEM) that others import to verify this deployment's files."""
    from kinema.container import build_provenance

    pem = build_provenance(_settings()).anchor_pem()
    if pem is None:
        raise click.ClickException("the configured signing chain has no self-signed root to export")
    if output:
        output.write_bytes(pem)
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(pem.decode(), nl=False)


@main.group()
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

    container = Container.from_settings(_settings())
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

    container = Container.from_settings(_settings())
    try:
        with output.open("w") as fh:
            count = container.audit.export(fh)
    except Exception as exc:
        raise click.ClickException(f"export refused: {exc}") from None
    finally:
        container.close()
    click.echo(f"wrote {count} entries and a signed checkpoint to {output}")


def models_markdown(registry: Any) -> str:
    """A Markdown table of every model's tasks, native sizes, accepted sizes and seconds -> frames."""
    rows = [
        "| model | tasks | fps | native sizes | also accepted (mapped) | seconds -> frames | default |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for spec in registry.specs():
        natives = sorted({f"{w}x{h}" for w, h in spec.sizes.values()})
        mapped = [f"{k} -> {w}x{h}" for k, (w, h) in spec.sizes.items() if k not in natives]
        secs = ", ".join(f"{k} -> {v}" for k, v in spec.seconds.items())
        rows.append(
            f"| `{spec.name}` | {', '.join(spec.tasks)} | {spec.fps} | {', '.join(natives)} | "
            f"{'; '.join(mapped)} | {secs} | {spec.default_size}, {spec.default_seconds} s |"
        )
    return "\n".join(rows)


@main.command()
@click.argument("model")
@click.option("--task", "tasks", multiple=True, help="Only these tasks' weights (t2v, i2v, v2v, vace).")
def pull(model: str, tasks: tuple[str, ...]) -> None:
    """Download a model's weights (pinned revision recorded in models.lock.json). Miniatures are built."""
    from kinema.container import build_registry
    from kinema.engine.hub import pull as hub_pull
    from kinema.engine.tiny import build_tiny_models

    settings = _settings(mode="dev")
    spec = build_registry(settings).resolve(model)
    if spec.miniature:
        build_tiny_models(settings.resolved_models_dir)
        click.echo(f"built {spec.name} in {settings.resolved_models_dir}")
        _announce_miniature(settings, spec.name)
        return
    paths = hub_pull(spec, settings.resolved_models_dir, tasks=list(tasks) or None)  # type: ignore[arg-type]
    for task, path in paths.items():
        click.echo(f"{spec.name} {task}: {path}")


main.add_command(admin)
main.add_command(keys)
main.add_command(report)

if __name__ == "__main__":
    sys.exit(main())
