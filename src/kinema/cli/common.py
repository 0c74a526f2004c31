"""What the ``kinema`` command groups share: loading settings, private files, the operator's container."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import click
from pydantic import ValidationError

from kinema.config import Settings, load_settings

if TYPE_CHECKING:
    from kinema.container import Container

ACTOR = "cli"
"""The audit actor of everything done from a shell."""

MINIATURE_WARNING = (
    "note: '{name}' is a miniature with random weights, built on this machine for dry runs and tests; "
    "it makes no meaningful video (coloured noise). Pull a real model for real output: kinema pull --help"
)


def load_cli_settings(**overrides: Any) -> Settings:
    """The settings with ``overrides`` (None values ignored); invalid ones end the command with a message."""
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


def announce_miniature(settings: Settings, name: str) -> None:
    """Warn on stderr when model ``name`` is a miniature (random weights)."""
    from kinema.container import build_registry

    spec = build_registry(settings).resolve(name)
    if spec.miniature:
        click.secho(MINIATURE_WARNING.format(name=spec.name), fg="yellow", err=True)


@contextmanager
def operator_container() -> Iterator[Container]:
    """The container on the configured database, closed afterwards; a service error ends the command."""
    from kinema.container import Container
    from kinema.services.errors import ServiceError

    container = Container.from_settings(load_cli_settings())
    try:
        yield container
    except ServiceError as exc:
        raise click.ClickException(exc.message) from None
    finally:
        container.close()


def read_password(from_stdin: bool) -> str:
    """A password from stdin's first line, or prompted for twice (never from the command line)."""
    if from_stdin:
        line = sys.stdin.readline()
        if not line:
            raise click.ClickException("no password on stdin")
        return line.rstrip("\r\n")
    return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))


def when(ts: float | None) -> str:
    """A timestamp as local ``YYYY-MM-DD HH:MM``, or ``-``."""
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts)) if ts else "-"


def ensure_dev_account(container: Container) -> str:
    """Dev mode: an admin ``dev@localhost`` and a key saved in ``<data_dir>/dev-api-key`` (0600).

    Returns the key. Reuses the saved key while it still works; never runs in production mode.
    """
    from kinema.services.auth import ClientInfo, role_scopes
    from kinema.services.errors import NotFound, ServiceError

    assert container.settings.mode == "dev"
    path = container.settings.data_dir / "dev-api-key"
    if path.exists():
        saved = path.read_text().strip()
        try:
            container.keys.authenticate(saved, ClientInfo("127.0.0.1"))
            return saved
        except ServiceError:
            pass
    try:
        user = container.users.find_user("dev@localhost")
    except NotFound:
        user = container.users.create_user("dev@localhost", None, role="admin", actor=ACTOR)
    new = container.keys.create(user.id, "dev", scopes=sorted({*role_scopes(user.role)}))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(new.secret + "\n")
    return new.secret
