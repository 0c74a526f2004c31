"""The studio's admin pages and verify page in real Chromium, against one real server for the module.

An admin signs in and uses every admin page (each checked for console errors, CSP violations and serious
accessibility violations, and screenshotted at desktop and phone widths); a member gets 404 for every
/admin page and form; an admin's form without the CSRF token changes nothing; the verify page tells a
video made here (signed and watermarked) from a plain PNG.
"""

from __future__ import annotations

import io
import re
import sqlite3
import time
from typing import Any

import httpx
import numpy as np
import openai
import pytest
from PIL import Image

from testkit.server import OWNER_EMAIL, client_for, provision
from tests.web.browser import ADMIN_EMAIL, OTHER_EMAIL, Studio, Tab, check_page, new_tab, sign_in

pytestmark = pytest.mark.slow

ADMIN_PAGES = ("users", "invites", "pause", "keys", "transparency", "audit")
BLOCKED_PROMPT = "revenge porn"  # refused by the default policy (nonconsensual_intimate)


def admin_api(studio: Studio, path: str) -> Any:
    """The JSON of ``GET /v1/admin/{path}`` with the admin's key."""
    r = httpx.get(f"{studio.base}/v1/admin/{path}", headers=studio.admin)
    assert r.status_code == 200, r.text
    return r.json()


def admin_tab(studio: Studio) -> Tab:
    tab = new_tab(studio)
    sign_in(studio, tab, ADMIN_EMAIL)
    return tab


def test_a_video_and_a_refusal_for_the_report_and_the_verify_page(studio: Studio) -> None:
    sdk = client_for(studio.server)
    video = sdk.videos.create_and_poll(prompt="a kite", seconds="1", extra_body={"num_inference_steps": 1})
    assert video.status == "completed", video.error
    studio.state["video_id"] = video.id
    with pytest.raises(openai.BadRequestError):
        sdk.videos.create(prompt=BLOCKED_PROMPT, seconds="4")


def test_users_page_changes_a_cohort(studio: Studio) -> None:
    tab = admin_tab(studio)
    page = tab.page
    page.get_by_role("link", name="Admin").click()
    page.wait_for_url(f"{studio.base}/admin/users")
    check_page(studio, tab, "admin-users")
    row = page.locator("#users > li", has_text=OTHER_EMAIL)
    row.get_by_label("Cohort").fill("beta")
    row.get_by_role("button", name=re.compile("^Save")).click()
    page.wait_for_url(f"{studio.base}/admin/users")
    assert "cohort beta" in page.locator("#users > li", has_text=OTHER_EMAIL).inner_text()
    users = {u["email"]: u for u in admin_api(studio, "users")["data"]}
    assert users[OTHER_EMAIL]["cohort"] == "beta" and users[OWNER_EMAIL]["cohort"] == "default"
    # The last admin cannot be demoted: the page says why and nothing changes.
    me = page.locator("#users > li", has_text=ADMIN_EMAIL)
    me.get_by_label("Role").select_option("member")
    me.get_by_role("button", name=re.compile("^Save")).click()
    assert page.locator("#admin-error").is_visible()
    assert {u["email"]: u for u in admin_api(studio, "users")["data"]}[ADMIN_EMAIL]["role"] == "admin"
    page.context.close()


def test_invites_page_creates_shows_once_and_revokes(studio: Studio) -> None:
    tab = admin_tab(studio)
    page = tab.page
    page.goto(f"{studio.base}/admin/invites")
    page.get_by_label("Email").fill("invitee@example.com")
    page.get_by_label("Cohort", exact=True).fill("beta")
    page.get_by_role("button", name="Create invite").click()
    code = page.locator("#invite-code").inner_text()
    assert code.startswith("inv_")
    invite = page.locator("#invites > li", has_text="invitee@example.com")
    assert "pending" in invite.inner_text() and "cohort beta" in invite.inner_text()
    assert page.locator('#cohorts ~ ul li[data-cohort="beta"]').count() == 1
    check_page(studio, tab, "admin-invites-created")
    page.goto(f"{studio.base}/admin/invites")
    assert code not in page.content()
    page.locator("#invites > li", has_text="invitee@example.com").get_by_role(
        "button", name=re.compile("^Revoke")
    ).click()
    page.wait_for_url(f"{studio.base}/admin/invites")
    assert "revoked" in page.locator("#invites > li", has_text="invitee@example.com").inner_text()
    check_page(studio, tab, "admin-invites")
    page.context.close()


def test_pause_page_pauses_and_resumes_everyone_and_a_cohort(studio: Studio) -> None:
    tab = admin_tab(studio)
    page = tab.page
    page.goto(f"{studio.base}/admin/pause")
    assert "runs for everyone" in page.locator("#pause-state").inner_text()
    page.get_by_label("Reason (optional)").fill("maintenance <b>now</b>")
    page.get_by_label("Also hold running jobs at their next step").uncheck()
    page.get_by_role("button", name="Pause", exact=True).click()
    page.wait_for_url(f"{studio.base}/admin/pause")
    page.get_by_label("Cohort (empty: everyone)").fill("beta")
    page.get_by_role("button", name="Pause", exact=True).click()
    page.wait_for_url(f"{studio.base}/admin/pause")
    everyone = page.locator('#pauses li[data-scope="*"]')
    assert "maintenance <b>now</b>" in everyone.inner_text() and page.locator("#pauses b").count() == 0
    assert page.locator('#pauses li[data-scope="beta"]').count() == 1
    state = admin_api(studio, "pause")["data"]
    assert [(p["cohort"], p["hold_running"]) for p in state] == [(None, False), ("beta", False)]
    with pytest.raises(openai.InternalServerError) as paused:
        client_for(studio.server).videos.create(prompt="while paused", seconds="4")
    assert paused.value.status_code == 503
    check_page(studio, tab, "admin-pause-paused")
    for scope in ("*", "beta"):
        page.locator(f'#pauses li[data-scope="{scope}"]').get_by_role("button", name=re.compile("^Resume")).click()
        page.wait_for_url(f"{studio.base}/admin/pause")
    assert admin_api(studio, "pause")["data"] == []
    assert page.locator("#pause-state").is_visible()
    page.context.close()


def test_keys_page_reinstates_a_suspended_key_and_revokes_it(studio: Studio) -> None:
    assert studio.server.data_dir is not None
    secret = provision(studio.server.data_dir, studio.server.db_url, OTHER_EMAIL)
    mine = httpx.get(f"{studio.base}/v1/keys", headers={"Authorization": f"Bearer {secret}"}).json()["data"]
    key_id = next(k["id"] for k in mine if secret.startswith(k["hint"]))
    # Suspended as the shared-key defense would (its trigger is tested in tests/test_keyguard_e2e.py).
    with sqlite3.connect(studio.server.db_url.removeprefix("sqlite:///")) as db:
        db.execute(
            "UPDATE api_keys SET suspended_at = ?, suspend_reason = ? WHERE id = ?",
            (time.time(), "used from 9 networks in 10 minutes", key_id),
        )
    tab = admin_tab(studio)
    page = tab.page
    page.goto(f"{studio.base}/admin/keys")
    item = page.locator(f'#all-keys li[data-key-id="{key_id}"]')
    assert "suspended" in item.inner_text() and "9 networks" in item.inner_text() and OTHER_EMAIL in item.inner_text()
    check_page(studio, tab, "admin-keys")
    item.get_by_role("button", name=re.compile("^Reinstate")).click()
    page.wait_for_url(f"{studio.base}/admin/keys")
    assert "active" in page.locator(f'#all-keys li[data-key-id="{key_id}"]').inner_text()
    assert client_for(studio.server, secret).videos.list().data == []
    page.locator(f'#all-keys li[data-key-id="{key_id}"]').get_by_role("button", name=re.compile("^Revoke")).click()
    page.wait_for_url(f"{studio.base}/admin/keys")
    assert "revoked" in page.locator(f'#all-keys li[data-key-id="{key_id}"]').inner_text()
    with pytest.raises(openai.AuthenticationError):
        client_for(studio.server, secret).videos.list()
    page.context.close()


def test_transparency_page_draws_its_charts_and_audit_page_verifies(studio: Studio) -> None:
    tab = admin_tab(studio)
    page = tab.page
    page.goto(f"{studio.base}/admin/transparency")
    bars = page.locator("#jobs-chart rect.bar")
    assert bars.count() == 30  # the last 30 days, by day
    titles = page.locator("#jobs-chart rect.bar title").all_text_contents()
    assert sum(int(t.rsplit(": ", 1)[1]) for t in titles) >= 1
    assert page.locator("#refusals-chart rect.bar").count() == 1
    assert "nonconsensual_intimate" in (page.locator("#refusals-chart").text_content() or "")
    check_page(studio, tab, "admin-transparency")
    page.get_by_label("Per", exact=True).select_option("week")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url(re.compile(r".*period=week.*"))
    assert 4 <= page.locator("#jobs-chart rect.bar").count() <= 6
    page.goto(f"{studio.base}/admin/audit")
    assert "intact" in page.locator("#audit-result").inner_text()
    check_page(studio, tab, "admin-audit")
    page.context.close()


def test_a_member_gets_404_for_every_admin_page_and_form(studio: Studio) -> None:
    tab = new_tab(studio)
    sign_in(studio, tab)
    page = tab.page
    assert page.get_by_role("link", name="Admin").count() == 0
    response = page.goto(f"{studio.base}/admin/users")
    assert response is not None and response.status == 404
    assert OTHER_EMAIL not in page.content()
    check_page(studio, tab, "admin-not-found", expected_problems=("status of 404",))
    for name in ADMIN_PAGES:
        assert page.request.get(f"{studio.base}/admin/{name}").status == 404, name
    csrf = page.locator('meta[name="csrf-token"]').get_attribute("content") or ""
    r = page.request.post(f"{studio.base}/admin/pause", form={"csrf_token": csrf}, max_redirects=0)
    assert r.status == 404
    assert admin_api(studio, "pause")["data"] == []
    page.context.close()


def test_an_admin_form_without_the_csrf_token_is_refused(studio: Studio) -> None:
    tab = admin_tab(studio)
    request = tab.page.request
    for form in ({}, {"csrf_token": "forged"}):
        r = request.post(f"{studio.base}/admin/pause", form={**form, "reason": "csrf"}, max_redirects=0)
        assert r.status == 403 and "csrf_failed" in r.text()
        r = request.post(f"{studio.base}/admin/invites", form={**form, "email": "x@example.com"}, max_redirects=0)
        assert r.status == 403
    assert admin_api(studio, "pause")["data"] == []
    assert all(i["email"] != "x@example.com" for i in admin_api(studio, "invites")["data"])
    # Signed out, an admin page is the sign-in page.
    signed_out = httpx.get(f"{studio.base}/admin/users", follow_redirects=False)
    assert signed_out.status_code == 303 and signed_out.headers["location"].startswith("/login?next=")
    tab.page.context.close()


def plain_png() -> bytes:
    rng = np.random.default_rng(5)
    out = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)).save(out, format="PNG")
    return out.getvalue()


def test_verify_page_tells_a_video_made_here_from_a_plain_png(studio: Studio) -> None:
    video_id = studio.state["video_id"]
    mp4 = client_for(studio.server).videos.download_content(video_id).read()
    tab = new_tab(studio)
    sign_in(studio, tab)
    page = tab.page
    page.get_by_role("link", name="Verify").click()
    page.wait_for_url(f"{studio.base}/verify")
    check_page(studio, tab, "verify")
    page.get_by_label("File").set_input_files({"name": "made-here.mp4", "mimeType": "video/mp4", "buffer": mp4})
    page.get_by_role("button", name="Verify").click()
    page.wait_for_selector("#verify-summary")
    assert "signed and watermarked" in page.locator("#verify-summary").inner_text()
    assert page.locator("#c2pa-state").inner_text() == "trusted"
    assert page.locator("#watermark-state").inner_text() == "found"
    assert page.locator(f'#verify-facts a[href="/videos/{video_id}"]').count() == 1  # the owner is told which
    check_page(studio, tab, "verify-signed")
    page.get_by_label("File").set_input_files({"name": "plain.png", "mimeType": "image/png", "buffer": plain_png()})
    page.get_by_role("button", name="Verify").click()
    page.wait_for_selector("#c2pa-state")
    assert page.locator("#c2pa-state").inner_text() == "absent"
    assert page.locator("#watermark-state").inner_text() == "not found"
    assert "nothing says where it came from" in page.locator("#verify-summary").inner_text()
    check_page(studio, tab, "verify-plain")
    page.context.close()
