"""``kinema admin ...`` and ``kinema keys ...``: accounts, invites, keys and the pause switch from a shell.

These act directly on the configured database as the operator (audit actor ``cli``). Passwords are
read from a prompt or stdin, never from the command line, where other users and shell history see them.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import click

from kinema.cli.common import ACTOR, load_cli_settings, operator_container, read_password, when

# -- admin ---------------------------------------------------------------------------------------


@click.group()
def admin() -> None:
    """Accounts, invites, cohorts and the pause switch (acts on the database directly)."""


@admin.command("create-user")
@click.argument("email")
@click.option("--admin", "is_admin", is_flag=True, help="Make the account an admin.")
@click.option("--cohort", default="default", show_default=True)
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
def create_user(email: str, is_admin: bool, cohort: str, password_stdin: bool) -> None:
    """Create an account (the first admin comes from here). The password is prompted for, or read
    from stdin with --password-stdin; never pass it as an argument."""
    password = read_password(password_stdin)
    with operator_container() as c:
        row = c.users.create_user(email, password, role="admin" if is_admin else "member", cohort=cohort, actor=ACTOR)
    click.echo(f"created {row.role} {row.email} ({row.id}) in cohort {row.cohort}")


@admin.command("set-password")
@click.argument("user")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
def set_password(user: str, password_stdin: bool) -> None:
    """Set USER's (email or id) password; their browser sessions end."""
    password = read_password(password_stdin)
    with operator_container() as c:
        row = c.users.find_user(user)
        c.passwords.set_password(row.id, password, actor=ACTOR)
    click.echo(f"password set for {row.email}; their sessions were ended")


@admin.command("set-role")
@click.argument("user")
@click.argument("role", type=click.Choice(["admin", "member"]))
def set_role(user: str, role: str) -> None:
    """Make USER (email or id) an admin or a member."""
    with operator_container() as c:
        row = c.users.update_user(ACTOR, c.users.find_user(user).id, role=role)
    click.echo(f"{row.email} is now {row.role}")


@admin.command("users")
@click.option("--cohort", default=None)
def users(cohort: str | None) -> None:
    """List accounts."""
    with operator_container() as c:
        for r in c.users.list_users(cohort=cohort):
            state = " disabled" if r.disabled_at else ""
            click.echo(f"{r.id}  {r.email}  {r.role}  cohort={r.cohort}  created {when(r.created_at)}{state}")


@admin.group()
def invite() -> None:
    """Single-use invite codes, each bound to an email and a cohort."""


@invite.command("create")
@click.argument("email")
@click.option("--cohort", default="default", show_default=True)
@click.option("--expires-in", type=int, default=None, help="Seconds the code stays valid (default: the setting).")
def invite_create(email: str, cohort: str, expires_in: int | None) -> None:
    """Create an invite for EMAIL; prints the code once."""
    with operator_container() as c:
        new = c.invites.create_invite(ACTOR, email, cohort=cohort, ttl_seconds=expires_in)
    click.echo(f"invite {new.row.id} for {new.row.email} ({new.row.cohort}), expires {when(new.row.expires_at)}")
    click.echo(new.code)


@invite.command("list")
@click.option("--cohort", default=None)
def invite_list(cohort: str | None) -> None:
    """List invites (codes are never shown again)."""
    with operator_container() as c:
        for r in c.invites.list_invites(cohort=cohort):
            state = (
                "used"
                if r.used_at
                else "revoked"
                if r.revoked_at
                else "expired"
                if r.expires_at < time.time()
                else "pending"
            )
            click.echo(f"{r.id}  {r.email}  cohort={r.cohort}  {state}  expires {when(r.expires_at)}")


@invite.command("revoke")
@click.argument("invite_id")
def invite_revoke(invite_id: str) -> None:
    """Revoke an unused invite."""
    with operator_container() as c:
        c.invites.revoke_invite(ACTOR, invite_id)
    click.echo(f"revoked {invite_id}")


@admin.command("revoke-cohort")
@click.argument("name")
def revoke_cohort(name: str) -> None:
    """Revoke every API key of a cohort's users and every unused invite of the cohort."""
    with operator_container() as c:
        done = c.cohorts.revoke_cohort(ACTOR, name)
    click.echo(f"cohort {name}: {done['keys_revoked']} keys and {done['invites_revoked']} invites revoked")


@admin.command("pause")
@click.option("--cohort", default=None, help="Pause one cohort (default: everyone).")
@click.option("--hold-running/--let-running-finish", default=None, help="Default: the pause_hold_running setting.")
@click.option("--reason", default=None, help="Shown to callers in the 503.")
def pause(cohort: str | None, hold_running: bool | None, reason: str | None) -> None:
    """Pause generation: new requests get 503, queued jobs wait, reads keep working."""
    with operator_container() as c:
        hold = c.settings.pause_hold_running if hold_running is None else hold_running
        c.pause.pause(ACTOR, cohort, hold_running=hold, reason=reason)
    click.echo(f"generation paused for {'cohort ' + cohort if cohort else 'everyone'}")


@admin.command("resume")
@click.option("--cohort", default=None, help="Resume one cohort (default: the global pause).")
def resume(cohort: str | None) -> None:
    """Resume generation; queued and held jobs continue."""
    with operator_container() as c:
        was = c.pause.resume(ACTOR, cohort)
    click.echo(f"resumed {'cohort ' + cohort if cohort else 'everyone'}" if was else "was not paused")


# -- keys ----------------------------------------------------------------------------------------


@click.group()
def keys() -> None:
    """Per-user API keys, and the likeness master key (acts on the database directly)."""


@keys.command("create")
@click.option("--user", "user", required=True, help="Owner (email or id).")
@click.option("--name", required=True)
@click.option("--scope", "scopes", multiple=True, help="Repeat for several (default: videos and characters).")
@click.option("--expires-in", type=int, default=None, help="Seconds until the key stops working.")
@click.option("--ip", "ips", multiple=True, help="Allowed address or CIDR (repeat; default: any).")
@click.option("--json", "as_json", is_flag=True, help="Print the key and its details as JSON.")
@click.option("--save", type=click.Path(dir_okay=False, path_type=Path), help="Also write the key to this file (0600).")
def keys_create(
    user: str,
    name: str,
    scopes: tuple[str, ...],
    expires_in: int | None,
    ips: tuple[str, ...],
    as_json: bool,
    save: Path | None,
) -> None:
    """Create an API key; prints the secret once."""
    with operator_container() as c:
        owner = c.users.find_user(user)
        new = c.keys.create(
            owner.id, name, scopes=list(scopes) or None, expires_in=expires_in, ip_allowlist=list(ips) or None
        )
    if save is not None:
        fd = os.open(save, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(new.secret + "\n")
    if as_json:
        click.echo(json.dumps({"id": new.row.id, "key": new.secret, "owner": owner.email, "scopes": new.row.scopes}))
    else:
        click.echo(f"key {new.row.id} for {owner.email}, scopes {' '.join(new.row.scopes)}", err=True)
        click.echo(new.secret)


@keys.command("list")
@click.option("--user", default=None, help="Only this user's (email or id).")
def keys_list(user: str | None) -> None:
    """List keys (never their secrets)."""
    with operator_container() as c:
        owner = c.users.find_user(user).id if user else None
        for r in c.keys.list(owner):
            state = "revoked" if r.revoked_at else "suspended" if r.suspended_at else "active"
            click.echo(
                f"{r.id}  {r.hint}...  {r.name}  owner={r.owner_id}  {state}  scopes={','.join(r.scopes)}  "
                f"last used {when(r.last_used_at)}"
            )


@keys.command("rotate-master")
@click.option("--yes", is_flag=True, help="Confirm that every kinema serve and worker process is stopped.")
def keys_rotate_master(yes: bool) -> None:
    """Rewrap every likeness data key under a new master key (stop all Kinema processes first)."""
    from kinema.crypto import SqliteDataKeyStore, rotate_master_key_file

    if not yes:
        raise click.ClickException(
            "stop every `kinema serve` and `kinema worker` first (a running one holds the old master key), "
            "then run again with --yes"
        )
    from kinema.crypto import CryptoError

    s = load_cli_settings()
    if not s.resolved_master_key.exists():
        raise click.ClickException(f"no master key at {s.resolved_master_key} yet (Kinema creates it at first start)")
    try:
        old, new, n = rotate_master_key_file(s.resolved_master_key, SqliteDataKeyStore(s.resolved_key_store))
    except CryptoError as exc:
        raise click.ClickException(f"rotation refused: {exc}") from None
    click.echo(f"rewrapped {n} likeness data keys: master {old} -> {new}")


@keys.command("revoke")
@click.argument("key_id")
def keys_revoke(key_id: str) -> None:
    """Revoke a key for good."""
    with operator_container() as c:
        c.keys.revoke(ACTOR, None, key_id)
    click.echo(f"revoked {key_id}")


@keys.command("reinstate")
@click.argument("key_id")
def keys_reinstate(key_id: str) -> None:
    """Lift a key's automatic suspension."""
    with operator_container() as c:
        c.keys.reinstate(ACTOR, key_id)
    click.echo(f"reinstated {key_id}")
