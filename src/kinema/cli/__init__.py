"""The ``kinema`` command: the top-level group and the command groups it is made of.

One module per command group (``serve``, ``worker``, ``migrate``, ``models``, ``provenance``, ``audit``,
``accounts``, ``report``), each importing only :mod:`kinema.cli.common`, never another group or this module.
"""

from __future__ import annotations

import logging

import click

from kinema.cli.accounts import admin, keys
from kinema.cli.audit import audit
from kinema.cli.migrate import migrate
from kinema.cli.models import generate, models, pull
from kinema.cli.provenance import provenance, verify
from kinema.cli.report import report
from kinema.cli.serve import serve
from kinema.cli.worker import worker


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


for _command in (serve, worker, migrate, generate, models, verify, provenance, audit, pull, admin, keys, report):
    main.add_command(_command)
