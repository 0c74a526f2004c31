"""``kinema report``: the transparency report from a shell (counts only; see docs/transparency.md).

Reads the configured database directly, like ``kinema admin``; prints a table per period, or the same
JSON as ``GET /v1/admin/transparency`` with ``--json``.
"""

from __future__ import annotations

import json
import time
from typing import Any

import click

from kinema.cli.common import operator_container

PERIODS = ("day", "week", "month")  # kinema.services.transparency.PERIODS, imported lazily

COLUMNS: tuple[tuple[str, str], ...] = (
    ("requested", "generations.requested"),
    ("completed", "generations.completed"),
    ("failed", "generations.failed"),
    ("cancelled", "generations.cancelled"),
    ("refused", "refusals.total"),
    ("lk.enrol", "likenesses.enrolled"),
    ("lk.revoke", "likenesses.revoked"),
    ("lk.delete", "likenesses.deleted"),
    ("key.susp", "keys.suspended"),
    ("key.revoke", "keys.revoked"),
    ("vid.delete", "video_deletions"),
    ("exports", "data_requests.exports"),
    ("acct.delete", "data_requests.account_deletions"),
)
"""(column heading, dotted path into a period's counts) of the table."""


def _get(counts: dict[str, Any], path: str) -> int:
    value: Any = counts
    for part in path.split("."):
        value = value[part]
    return int(value)


def _utc(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ts))


def render_table(data: dict[str, Any]) -> str:
    """The report as plain text: one row per period, a total row, then the breakdowns."""
    rows = [[p["label"], *(str(_get(p, path)) for _, path in COLUMNS)] for p in data["periods"]]
    rows.append(["total", *(str(_get(data["totals"], path)) for _, path in COLUMNS)])
    header = ["period", *(name for name, _ in COLUMNS)]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    out = [
        f"Transparency report, {_utc(data['since'])} to {_utc(data['until'])} (exclusive), per {data['period']}",
        "",
        line(header),
        line(["-" * w for w in widths]),
        *(line(r) for r in rows[:-1]),
        line(["-" * w for w in widths]),
        line(rows[-1]),
        "",
    ]
    totals = data["totals"]
    kinds = ", ".join(f"{k} {n}" for k, n in totals["generations"]["by_kind"].items())
    out.append(f"generations by kind: {kinds}")
    categories = totals["refusals"]["by_category"]
    if categories:
        out.append("refusals by category: " + ", ".join(f"{c} {n}" for c, n in categories.items()))
    else:
        out.append("refusals by category: none")
    out.append("(lk = likeness; outcomes count the jobs requested in the period that are still stored)")
    return "\n".join(out)


@click.command("report")
@click.option("--since", default=None, help="Start, inclusive: Unix seconds, YYYY-MM-DD or ISO 8601 (UTC).")
@click.option("--until", default=None, help="End, exclusive (a YYYY-MM-DD date includes that day). Default: now.")
@click.option("--period", type=click.Choice(PERIODS), default="day", show_default=True, help="UTC periods.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON (as the API returns it).")
def report(since: str | None, until: str | None, period: str, as_json: bool) -> None:
    """The transparency report: per period, generations and their outcomes, refusals by category,
    likeness enrolments, revocations and deletions, key suspensions and revocations, video deletions,
    data export and account deletion requests. Counts only. Default: the last 30 UTC days, per day."""
    from kinema.services.errors import ServiceError
    from kinema.services.transparency import report as build_report
    from kinema.services.transparency import resolve_range

    try:
        start, end, p = resolve_range(since, until, period)
    except ServiceError as exc:
        raise click.UsageError(exc.message) from None
    with operator_container() as c:
        data = build_report(c.sessions, since=start, until=end, period=p)
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        click.echo(render_table(data))
