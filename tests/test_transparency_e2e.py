"""The transparency report end to end: a member generates and is refused on a real server, then the
admin's GET /v1/admin/transparency and ``kinema report`` (a subprocess on the same database) count it;
a member's key and no key at all are turned away, and bad parameters are 400s naming the parameter."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import openai
import pytest

from tests.conftest import kinema_env, provision
from tests.factories import SMALL

pytestmark = pytest.mark.slow

FAST = {"num_inference_steps": 1}
BLOCKED_PROMPT = "revenge porn"  # the default policy's nonconsensual_intimate category
CATEGORY = "nonconsensual_intimate"


def kinema(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kinema.cli", *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_report_counts_generations_and_refusals_for_admins_only(
    db_url: str,
    kinema_server,  # type: ignore[no-untyped-def]
    models_dir: Path,
) -> None:
    server = kinema_server(db_url, workers=1)
    member = openai.OpenAI(base_url=f"{server.base_url}/v1", api_key=server.api_key, max_retries=0, timeout=120)
    prompts = ["a paper kite over a quiet lake", "a lighthouse at dusk, slow pan"]
    videos = [member.videos.create_and_poll(prompt=p, size=SMALL, seconds="1", extra_body=FAST) for p in prompts]
    assert [v.status for v in videos] == ["completed", "completed"]
    with pytest.raises(openai.BadRequestError) as refused:
        member.videos.create(prompt=BLOCKED_PROMPT, seconds="1")
    assert refused.value.code == "moderation_blocked"

    admin = {"Authorization": f"Bearer {provision(server.data_dir, server.db_url, 'admin@example.com', role='admin')}"}
    url = f"{server.base_url}/v1/admin/transparency"
    r = httpx.get(url, headers=admin, timeout=30)
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["object"] == "transparency_report" and report["period"] == "day"
    assert len(report["periods"]) == 30
    totals = report["totals"]
    assert totals["generations"]["requested"] == 2
    assert totals["generations"]["by_kind"]["create"] == 2 and totals["generations"]["completed"] == 2
    assert totals["refusals"] == {"total": 1, "by_category": {CATEGORY: 1}}
    assert report["periods"][-1]["generations"]["requested"] == 2  # today is the last period
    assert totals["keys"] == {"suspended": 0, "revoked": 0} and totals["video_deletions"] == 0
    # counts only: no prompts, ids or identities
    for leak in (*prompts, BLOCKED_PROMPT, *(v.id for v in videos), "example.com", "user_", "key_"):
        assert leak not in r.text, leak

    monthly = httpx.get(url, headers=admin, params={"since": "2020-01-01", "period": "month"}, timeout=30)
    assert monthly.status_code == 200, monthly.text
    assert monthly.json()["periods"][0]["label"] == "2020-01" and monthly.json()["totals"] == totals

    for params, param in (
        ({"period": "year"}, "period"),
        ({"since": "last tuesday"}, "since"),
        ({"until": "2020-13-40"}, "until"),
        ({"since": "2026-02-01", "until": "2026-01-01"}, "since"),
        ({"since": "2000-01-01", "until": "2026-01-01"}, "since"),  # more than 366 days
    ):
        bad = httpx.get(url, headers=admin, params=params, timeout=30)
        assert bad.status_code == 400, (params, bad.text)
        assert bad.json()["error"]["param"] == param and bad.json()["error"]["type"] == "invalid_request_error"

    denied = httpx.get(url, headers={"Authorization": f"Bearer {server.api_key}"}, timeout=30)
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "admin_required"
    assert httpx.get(url, timeout=30).status_code == 401

    # The CLI, on the same database, counts the same.
    assert server.data_dir is not None
    env = kinema_env(server.data_dir, server.db_url, models_dir)
    out = kinema(["report", "--json"], env)
    assert out.returncode == 0, out.stderr
    cli = json.loads(out.stdout)
    assert cli["totals"]["generations"]["requested"] == 2
    assert cli["totals"]["refusals"]["by_category"] == {CATEGORY: 1}
    assert cli["totals"] == totals
    table = kinema(["report", "--period", "week"], env)
    assert table.returncode == 0, table.stderr
    assert "per week" in table.stdout and f"{CATEGORY} 1" in table.stdout
    assert "create 2" in table.stdout and BLOCKED_PROMPT not in table.stdout
    bad = kinema(["report", "--since", "nonsense"], env)
    assert bad.returncode == 2 and "'since'" in bad.stderr
