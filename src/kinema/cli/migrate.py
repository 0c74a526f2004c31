"""``kinema migrate``: bring the database to the latest schema."""

from __future__ import annotations

import click

from kinema.cli.common import load_cli_settings, private_files


@click.command()
def migrate() -> None:
    """Migrate the database to the latest schema and exit (what `serve` and `worker` also do at start)."""
    private_files()
    from kinema.db.session import make_engine, upgrade_to_head

    settings = load_cli_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.resolved_database_url)
    try:
        upgrade_to_head(engine)
    finally:
        engine.dispose()
    click.echo("database migrated to the latest schema", err=True)
