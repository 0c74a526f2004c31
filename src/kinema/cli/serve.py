"""``kinema serve``: the HTTP API with worker threads in one process."""

from __future__ import annotations

import click

from kinema.cli.common import announce_miniature, ensure_dev_account, load_cli_settings, private_files
from kinema.services.mediagate import limit_malloc_arenas


@click.command()
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
    settings = load_cli_settings(
        host=host, port=port, workers=workers, default_model=default_model, mode="dev" if dev else None
    )
    import uvicorn

    from kinema.api.app import create_app
    from kinema.container import Container

    container = Container.from_settings(settings)
    announce_miniature(settings, settings.default_model)
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
