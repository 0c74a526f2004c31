"""The web studio in a real browser: Debian's Chromium (``/usr/bin/chromium``) driven by Playwright, against a
real ``kinema serve`` with one in-process worker and the offline miniature model. One server and one browser
for the whole module (the ``studio`` fixture of conftest.py; tests run in file order and share them).

Every page visited by ``check_page`` (tests/web/browser.py) is checked for console errors, CSP violations and
serious accessibility violations, and screenshotted at desktop and phone widths.
"""

from __future__ import annotations

import io
import json
import re
import time
import zipfile
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest
from PIL import Image

from testkit.server import OWNER_EMAIL, PASSWORD, client_for
from tests.web.browser import CHROMIUM, OTHER_EMAIL, OUT, Studio, Tab, check_page, new_tab, sign_in

pytestmark = pytest.mark.slow

HOSTILE_PROMPT = 'A red fox <script>alert("x")</script> <img src=x onerror=alert(1)> & "quotes"'


def api_status(studio: Studio, video_id: str) -> dict[str, object]:
    r = httpx.get(f"{studio.base}/v1/videos/{video_id}", headers={"Authorization": f"Bearer {studio.server.api_key}"})
    return {"http": r.status_code, **(r.json() if r.status_code == 200 else {})}


# -- the tests, in order -------------------------------------------------------------------------


def test_sign_in_page_and_redirect(studio: Studio) -> None:
    tab = new_tab(studio)
    tab.page.goto(f"{studio.base}/videos")
    assert tab.page.url.startswith(f"{studio.base}/login?next=")
    check_page(studio, tab, "login")
    # A wrong password: the page says so, nothing is set.
    tab.page.get_by_label("Email").fill(OWNER_EMAIL)
    tab.page.get_by_label("Password").fill("not the password at all")
    tab.page.get_by_role("button", name="Sign in").click()
    assert "wrong email or password" in tab.page.locator("#login-error").inner_text().lower()
    assert not any(c["name"] == "kinema_session" for c in tab.page.context.cookies())
    check_page(studio, tab, "login-error", expected_problems=("status of 401",))
    sign_in(studio, tab)
    assert any(c["name"] == "kinema_session" and c["httpOnly"] for c in tab.page.context.cookies())
    tab.page.context.close()


def test_create_watch_progress_across_a_reload_play_and_delete(studio: Studio) -> None:
    tab = new_tab(studio)
    page = tab.page
    sign_in(studio, tab)
    check_page(studio, tab, "create")
    # Only the model's own sizes and seconds are offered.
    spec_sizes = page.eval_on_selector_all("#size option", "els => els.map(e => e.value)")
    assert spec_sizes and all(re.fullmatch(r"\d+x\d+", s) for s in spec_sizes)
    page.get_by_label("Prompt").fill(HOSTILE_PROMPT)
    page.get_by_label("Seed (optional)").fill("7")
    page.get_by_label("Steps").fill("3")
    page.get_by_role("button", name="Create video").click()
    page.wait_for_url(re.compile(r".*/videos/video_[0-9a-f]{32}$"))
    video_id = page.url.rsplit("/", 1)[1]
    # Hold it mid-way: a pause that holds running jobs at their next step (or keeps it queued).
    r = httpx.post(f"{studio.base}/v1/admin/pause", headers=studio.admin, json={"hold_running": True, "reason": "t"})
    assert r.status_code == 200, r.text
    try:
        before = api_status(studio, video_id)
        assert before["status"] in ("queued", "in_progress"), before
        page.reload()
        assert page.locator("#video-status").inner_text() in ("queued", "in progress")
        shown = int(page.locator("#video-progress").get_attribute("value"))
        assert 0 <= shown < 100
        # The job shows on every tab: a second tab on another page lists it with its progress.
        other = new_tab(studio, page.context)
        other.page.goto(f"{studio.base}/videos")
        other.page.wait_for_selector(f'#jobs-list a[href="/videos/{video_id}"]')
        assert other.page.locator("#jobs").is_visible()
        check_page(studio, other, "library-running")
        check_page(studio, tab, "video-running")
    finally:
        assert httpx.post(f"{studio.base}/v1/admin/resume", headers=studio.admin, json={}).status_code == 200
    # The page follows the job to the end by itself, then shows the player.
    page.wait_for_selector("#player", timeout=120_000)
    assert page.locator("#video-status").inner_text() == "completed"
    assert page.locator("#video-progress").get_attribute("value") == "100"
    assert api_status(studio, video_id)["progress"] == 100
    # The tray in the other tab empties once nothing runs.
    other.page.wait_for_selector("#jobs", state="hidden")
    # HTML in the prompt is text, never markup.
    assert page.locator(".prompt-full").inner_text() == HOSTILE_PROMPT
    assert page.locator("main script, main img[src='x']").count() == 0
    # Play it: the browser decodes the MP4 and time advances.
    page.evaluate("document.getElementById('player').muted = true")
    page.evaluate("document.getElementById('player').play()")
    page.wait_for_function("() => document.getElementById('player').currentTime > 0", timeout=20_000)
    dims = page.evaluate("(v => [v.videoWidth, v.videoHeight])(document.getElementById('player'))")
    assert dims[0] > 0 and dims[1] > 0
    check_page(studio, tab, "video-completed")
    # The library shows it with a decoded thumbnail, and filters by status.
    page.goto(f"{studio.base}/videos?status=completed")
    card = page.locator(f'li.card[data-video-id="{video_id}"]')
    card.locator("img").evaluate("img => img.decode()")
    assert card.locator("img").evaluate("img => img.naturalWidth") > 0
    check_page(studio, tab, "library")
    scrub_preview(studio, tab, video_id)
    page.goto(f"{studio.base}/videos?status=failed")
    assert page.locator(f'li.card[data-video-id="{video_id}"]').count() == 0
    # Delete it from the library.
    page.goto(f"{studio.base}/videos")
    page.locator(f'li.card[data-video-id="{video_id}"] button', has_text="Delete").click()
    page.wait_for_url(f"{studio.base}/videos")
    assert page.locator(f'li.card[data-video-id="{video_id}"]').count() == 0
    assert api_status(studio, video_id)["http"] == 404
    page.context.close()


def scrub_preview(studio: Studio, tab: Tab, video_id: str) -> None:
    """The library card's thumbnail shows the spritesheet's frame under the pointer (and with the arrow keys
    once focused), cut from the real spritesheet, without moving anything on the page."""
    page = tab.page
    card = page.locator(f'li.card[data-video-id="{video_id}"]')
    frame = card.locator(".scrub-frame")
    tiles, columns, rows = (int(frame.get_attribute(f"data-{k}") or 0) for k in ("tiles", "columns", "rows"))
    assert tiles >= 2 and columns * rows >= tiles
    # The layout the page assumes is the spritesheet's: columns x rows tiles of the video's aspect.
    sheet = page.request.get(f"{studio.base}{frame.get_attribute('data-sprite')}")
    assert sheet.status == 200 and sheet.headers["content-type"] == "image/jpeg"
    with Image.open(io.BytesIO(sheet.body())) as im:
        width, height = im.size
    vw, vh = (int(x) for x in (frame.get_attribute("data-aspect") or "").split("x"))
    assert abs((width / columns) / (height / rows) - vw / vh) < 0.05
    assert frame.locator(".scrub").count() == 0  # nothing until the pointer or focus comes
    before = card.bounding_box()
    box = frame.bounding_box()
    assert before and box
    page.mouse.move(box["x"] + 1, box["y"] + box["height"] / 2)
    layer = frame.locator(".scrub")
    start = layer.evaluate("e => getComputedStyle(e).backgroundPosition")
    assert frame.get_attribute("data-frame") == "0"
    assert "variant=spritesheet" in layer.evaluate("e => getComputedStyle(e).backgroundImage")
    page.mouse.move(box["x"] + box["width"] - 1, box["y"] + box["height"] / 2)
    end = layer.evaluate("e => getComputedStyle(e).backgroundPosition")
    assert frame.get_attribute("data-frame") == str(tiles - 1)
    assert end != start, (start, end)
    # The last tile's offset is its column and row in the grid, in tile sizes.
    size = layer.evaluate("e => getComputedStyle(e).backgroundSize")
    tile_w, tile_h = (float(v[:-2]) / n for v, n in zip(size.split(), (columns, rows), strict=True))
    x, y = (float(v[:-2]) for v in end.split())
    last_col, last_row = (tiles - 1) % columns, (tiles - 1) // columns
    assert abs(x - ((box["width"] - tile_w) / 2 - last_col * tile_w)) < 1.5
    assert abs(y - ((box["height"] - tile_h) / 2 - last_row * tile_h)) < 1.5
    assert layer.is_visible() and card.bounding_box() == before  # over the thumbnail: no layout shift
    shot = OUT / "library-scrub-card.png"
    card.screenshot(path=str(shot))
    studio.shots.append(shot)
    page.mouse.move(0, 0)
    assert not layer.is_visible()
    # Keyboard: focus the card's link, then the arrow keys step through the frames.
    frame.locator("xpath=ancestor::a").focus()
    assert layer.is_visible() and frame.get_attribute("data-frame") == "0"
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    assert frame.get_attribute("data-frame") == "2"
    page.keyboard.press("End")
    assert layer.evaluate("e => getComputedStyle(e).backgroundPosition") == end
    page.keyboard.press("ArrowLeft")
    assert frame.get_attribute("data-frame") == str(tiles - 2)
    check_page(studio, tab, "library-scrub")
    # Without script: the plain thumbnail, the same size, and nothing over it.
    plain = new_tab(
        studio, studio.browser.new_context(viewport={"width": 1280, "height": 800}, java_script_enabled=False)
    )
    sign_in(studio, plain)
    plain.page.goto(f"{studio.base}/videos?status=completed")
    still = plain.page.locator(f'li.card[data-video-id="{video_id}"] .scrub-frame')
    still.hover()
    assert still.locator("img").is_visible() and still.locator(".scrub").count() == 0
    plain_box, js_box = still.bounding_box(), frame.bounding_box()
    assert plain_box and js_box and (plain_box["width"], plain_box["height"]) == (js_box["width"], js_box["height"])
    plain.page.context.close()


def test_another_users_video_page_is_a_404_and_cannot_be_deleted(studio: Studio) -> None:
    video = client_for(studio.server).videos.create(prompt="owner only", extra_body={"num_inference_steps": 1})
    tab = new_tab(studio)
    sign_in(studio, tab, OTHER_EMAIL)
    page = tab.page
    response = page.goto(f"{studio.base}/videos/{video.id}")
    assert response.status == 404
    assert "owner only" not in page.content()
    check_page(studio, tab, "not-found", expected_problems=("status of 404",))
    csrf = page.locator('meta[name="csrf-token"]').get_attribute("content")
    r = page.request.post(f"{studio.base}/videos/{video.id}/delete", form={"csrf_token": csrf}, max_redirects=0)
    assert r.status == 404
    assert api_status(studio, video.id)["http"] == 200
    studio.state["owner_video"] = video.id
    page.context.close()


def test_forms_without_the_csrf_token_are_refused(studio: Studio) -> None:
    video_id = studio.state["owner_video"]
    tab = new_tab(studio)
    sign_in(studio, tab)
    request = tab.page.request  # shares the signed-in cookies
    for form in ({}, {"csrf_token": "forged"}):
        r = request.post(f"{studio.base}/videos/{video_id}/delete", form=form, max_redirects=0)
        assert r.status == 403 and "csrf_failed" in r.text()
        r = request.post(f"{studio.base}/create", multipart={**form, "prompt": "csrf"}, max_redirects=0)
        assert r.status == 403
        r = request.post(f"{studio.base}/logout", form=form, max_redirects=0)
        assert r.status == 403
    assert api_status(studio, video_id)["http"] == 200
    assert len(client_for(studio.server).videos.list().data) == 1  # the refused create made nothing
    # Before sign-in the form token is a cookie the page also carries (double submit).
    anonymous = httpx.post(
        f"{studio.base}/login", data={"email": OWNER_EMAIL, "password": PASSWORD}, follow_redirects=False
    )
    assert anonymous.status_code == 403 and "kinema_session" not in anonymous.cookies
    # The right token still works (and the session survived the refusals).
    csrf = tab.page.locator('meta[name="csrf-token"]').get_attribute("content")
    r = request.post(f"{studio.base}/videos/{video_id}/delete", form={"csrf_token": csrf}, max_redirects=0)
    assert r.status == 303
    assert api_status(studio, video_id)["http"] == 404
    tab.page.context.close()


def test_invite_sign_up_keys_likeness_pages(studio: Studio) -> None:
    r = httpx.post(f"{studio.base}/v1/admin/invites", headers=studio.admin, json={"email": "new@example.com"})
    assert r.status_code == 201, r.text
    tab = new_tab(studio)
    page = tab.page
    page.goto(f"{studio.base}/signup")
    check_page(studio, tab, "signup")
    page.get_by_label("Invitation code").fill(r.json()["code"])
    page.get_by_label("Email").fill("new@example.com")
    page.get_by_label("Password (at least 12 characters)").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    page.wait_for_url(f"{studio.base}/login?signed_up=1")
    sign_in(studio, tab, "new@example.com")
    # API keys: made in the page, shown once, usable with the SDK, then revoked.
    page.goto(f"{studio.base}/keys")
    page.get_by_label("Name").fill("<b>laptop</b>")
    page.get_by_role("button", name="Create key").click()
    secret = page.locator("#new-key").inner_text()
    assert secret.startswith("kin_")
    assert page.locator("ul.keys b").count() == 0 and "<b>laptop</b>" in page.locator("ul.keys").inner_text()
    check_page(studio, tab, "keys-created")
    sdk = client_for(studio.server, secret)
    assert sdk.videos.list().data == []
    page.goto(f"{studio.base}/keys")
    assert secret not in page.content()
    page.get_by_role("button", name=re.compile("^Revoke")).click()
    page.wait_for_url(f"{studio.base}/keys")
    with pytest.raises(openai.AuthenticationError):
        sdk.videos.list()
    check_page(studio, tab, "keys")
    # My likeness, before enrolment: the consent text and the enrolment form.
    page.goto(f"{studio.base}/likeness")
    assert "I am the person shown in this clip" in page.locator("#consent-text").inner_text()
    check_page(studio, tab, "likeness")
    # Sign out ends the session for good.
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{studio.base}/login")
    page.goto(f"{studio.base}/create")
    assert page.url.startswith(f"{studio.base}/login")
    page.context.close()


def write_y4m(frames: np.ndarray, fps: int, path: Path) -> None:
    """RGB frames as a Y4M file (4:2:0, full-range BT.601), the format Chromium's fake camera reads."""
    _, h, w, _ = frames.shape
    rgb = frames[:, : h // 2 * 2, : w // 2 * 2].astype(np.float32)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    u = 128 + (b - y) * 0.564
    v = 128 + (r - y) * 0.713
    t, hh, ww = y.shape

    def sub(c: np.ndarray) -> np.ndarray:
        return c.reshape(t, hh // 2, 2, ww // 2, 2).mean(axis=(2, 4))

    planes = [np.clip(p, 0, 255).round().astype(np.uint8) for p in (y, sub(u), sub(v))]
    with path.open("wb") as fh:
        fh.write(f"YUV4MPEG2 W{ww} H{hh} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for i in range(t):
            fh.write(b"FRAME\n")
            for plane in planes:
                fh.write(plane[i].tobytes())


def test_webcam_enrolment_then_a_granted_user_generates_and_the_owner_deletes_the_use(
    studio: Studio, tmp_path: Path
) -> None:
    """Chromium's fake camera plays a synthetic clip of a real face photo turning left then right (the test
    material of testkit/faces); the challenge is random, so the page is reloaded until it asks for that order.
    The live guide (POST /likeness/guide) draws the face box and says what to do; it starts the recording once
    the face is centred and moves on from each turn once it has seen it, as it would for a person."""
    from testkit.faces.clips import head_turn_clip

    moves = ["left", "right"]
    turns = head_turn_clip(moves, "obama_1", seconds=3.5, fps=15, seed=3, amplitudes=(30, 30))
    # The fake camera plays the file from when the page opens it, and loops it. The guide starts the recording
    # on a still, centred face and waits for each turn; the still head and tail are where it can start.
    still = turns[:1]
    clip = np.concatenate([np.repeat(still, 15, axis=0), turns, np.repeat(still, 15 * 6, axis=0)])
    y4m = tmp_path / "clip.y4m"
    write_y4m(clip, 15, y4m)
    flags = [
        "--no-sandbox",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={y4m}",
    ]
    assert studio.playwright is not None
    if True:  # a second browser, with the fake camera, from the module's Playwright
        browser = studio.playwright.chromium.launch(executable_path=CHROMIUM, args=flags)
        try:
            ctx = browser.new_context(viewport={"width": 1280, "height": 800}, permissions=["camera"])
            owner = Studio(studio.server, browser, studio.admin, shots=studio.shots)
            tab = new_tab(owner, ctx)
            sign_in(owner, tab)
            page = tab.page
            for attempt in range(12):
                page.goto(f"{studio.base}/likeness")
                page.get_by_label("Name others will use (@name)").fill("owner_face")
                page.get_by_label("Your full name, typed, as your signature").fill("Owner Example")
                if attempt == 0:
                    check_page(owner, tab, "likeness-form")
                page.get_by_role("button", name="Start camera and get my challenge").click()
                page.wait_for_selector("#enrol-record:not([disabled])")
                steps = page.locator("#enrol-steps li").all_inner_texts()
                if [s.split("your ")[-1].split(",")[0] for s in steps if "Turn" in s] == moves:
                    break
            else:
                raise AssertionError("the challenge never asked for left then right in 12 tries")
            assert "Turn your head to your left" in page.locator("#enrol-status").inner_text()
            # The guide finds the face: a box over the preview (solid: placed right) and the hint in words.
            page.wait_for_function(
                "() => document.getElementById('enrol-overlay').dataset.face === 'ok'", timeout=60_000
            )
            assert page.locator("#enrol-hint").inner_text() in ("Hold still.", "Good: hold it there.")
            assert page.locator("#enrol-overlay").evaluate(
                "c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
                " for (let i = 3; i < d.length; i += 4) if (d[i]) return true; return false; }"
            ), "no face box drawn"
            # Every hint and status the page shows from now on (kept over the reload that follows enrolment).
            page.evaluate(
                "() => { sessionStorage.setItem('said', '[]'); for (const id of ['enrol-hint', 'enrol-status']) {"
                " const el = document.getElementById(id);"
                " new MutationObserver(() => { const said = JSON.parse(sessionStorage.getItem('said'));"
                " said.push(el.textContent); sessionStorage.setItem('said', JSON.stringify(said)); })"
                ".observe(el, {childList: true, characterData: true, subtree: true}); } }"
            )
            # The checks may take their time: the guide, not a timer, decides when recording starts.
            check_page(owner, tab, "likeness-guide")
            page.get_by_role("button", name="Record").click()
            page.wait_for_function(
                "() => Number(document.getElementById('enrol-steps').dataset.step) >= 1", timeout=60_000
            )
            shot = OUT / "likeness-recording-desktop.png"
            page.screenshot(path=str(shot))
            studio.shots.append(shot)
            page.wait_for_function(
                "() => document.getElementById('likeness-status') || "
                "/^Not enrolled/.test(document.getElementById('enrol-status').textContent)",
                timeout=120_000,
            )
            assert page.locator("#enrol-status").count() == 0, page.locator("#enrol-status").inner_text()
            assert page.locator("#likeness-status").inner_text() == "active", page.locator("#enrol-status").inner_text()
            said = page.evaluate("() => JSON.parse(sessionStorage.getItem('said') || '[]')")
            assert "Good: hold it there." in said, said  # the guide saw a turn far enough
            assert any(t.startswith("Recording") for t in said), said
            assert any(t.endswith("Checking your clip…") for t in said), said
            (OUT / "likeness-guide-said.json").write_text(json.dumps(said, indent=1, ensure_ascii=False))
            # Grant the other user; they generate with the likeness from the create page.
            other_id = httpx.get(
                f"{studio.base}/v1/me", headers={"Authorization": f"Bearer {studio.state['other_key']}"}
            ).json()["user"]["id"]
            page.get_by_label("People I choose").check()
            page.get_by_label("Chosen people (user ids, separated by spaces)").fill(other_id)
            page.get_by_role("button", name="Save permissions").click()
            page.wait_for_url(f"{studio.base}/likeness")
            assert page.get_by_label("People I choose").is_checked()
        finally:
            browser.close()
    other = new_tab(studio)
    sign_in(studio, other, OTHER_EMAIL)
    other.page.get_by_label("Prompt").fill("@owner_face waves")
    other.page.get_by_label("@owner_face").check()
    other.page.get_by_label("How they appear").select_option("scene")  # reference-to-video on tiny-wan
    other.page.get_by_label("Steps").fill("1")
    other.page.get_by_role("button", name="Create video").click()
    other.page.wait_for_selector("#player", timeout=120_000)
    made = other.page.url.rsplit("/", 1)[1]
    # The owner sees that use, watches it and deletes it from the usage page.
    tab = new_tab(studio)
    sign_in(studio, tab)
    tab.page.goto(f"{studio.base}/likeness")
    use = tab.page.locator("ul.uses li", has_text="@owner_face waves")
    assert use.locator("video").count() == 1
    check_page(studio, tab, "likeness-enrolled")
    use.get_by_role("button", name=re.compile("^Delete this video")).click()
    tab.page.wait_for_url(f"{studio.base}/likeness")
    assert "deleted" in tab.page.locator("ul.uses li", has_text="@owner_face waves").inner_text()
    r = httpx.get(f"{studio.base}/v1/videos/{made}", headers={"Authorization": f"Bearer {studio.state['other_key']}"})
    assert r.status_code == 404
    other.page.context.close()
    tab.page.context.close()


def wait_for_status(studio: Studio, video_id: str, status: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while (now := api_status(studio, video_id)).get("status") != status:
        assert now.get("status") in ("queued", "in_progress"), now
        assert time.monotonic() < deadline, f"{video_id} not {status} in {timeout}s: {now}"
        time.sleep(0.3)


def test_a_failing_guide_does_not_hold_up_the_recording(studio: Studio, tmp_path: Path) -> None:
    """The face guide answering 503 (its server-side analysis down) must not leave the person stuck before the
    recording: the page says the guide is unavailable and records without it."""
    from testkit.faces.photos import photo

    still = np.asarray(Image.fromarray(photo("obama_1")).resize((640, 480)))
    y4m = tmp_path / "still.y4m"
    write_y4m(np.repeat(still[None], 15, axis=0), 15, y4m)
    flags = [
        "--no-sandbox",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={y4m}",
    ]
    assert studio.playwright is not None
    browser = studio.playwright.chromium.launch(executable_path=CHROMIUM, args=flags)
    try:
        ctx = browser.new_context(viewport={"width": 1280, "height": 800}, permissions=["camera"])
        guide_calls: list[str] = []

        def guide_down(route: object) -> None:
            guide_calls.append("503")
            route.fulfill(  # type: ignore[attr-defined]
                status=503,
                content_type="application/json",
                body=json.dumps({"error": {"message": "The face guide is down.", "type": "server_error"}}),
            )

        ctx.route("**/likeness/guide*", guide_down)
        tab = new_tab(Studio(studio.server, browser, studio.admin, shots=studio.shots), ctx)
        sign_in(studio, tab, OTHER_EMAIL)  # other@ has no likeness of their own in this module
        page = tab.page
        page.goto(f"{studio.base}/likeness")
        page.get_by_label("Name others will use (@name)").fill("other_face")
        page.get_by_label("Your full name, typed, as your signature").fill("Other Example")
        page.get_by_role("button", name="Start camera and get my challenge").click()
        page.wait_for_selector("#enrol-record:not([disabled])")
        page.wait_for_function(
            "() => document.getElementById('enrol-hint').textContent.includes('not available')", timeout=30_000
        )
        page.get_by_role("button", name="Record").click()
        page.wait_for_function(
            "() => document.getElementById('enrol-status').textContent.startsWith('Recording without the guide')",
            timeout=30_000,
        )
        assert page.locator("#enrol-hint").inner_text().startswith("The guide is not available")
        assert guide_calls  # the page did ask the guide; nothing was uploaded (the browser closes mid-recording)
    finally:
        browser.close()


def test_remix_from_the_video_page_makes_a_job_in_the_library(studio: Studio) -> None:
    video = client_for(studio.server).videos.create(prompt="a lighthouse", extra_body={"num_inference_steps": 1})
    wait_for_status(studio, video.id, "completed")
    tab = new_tab(studio)
    sign_in(studio, tab)
    page = tab.page
    page.goto(f"{studio.base}/videos/{video.id}")
    assert page.locator("#remix-form").count() == 1
    check_page(studio, tab, "video-actions")
    remix_prompt = "<i>the lighthouse</i> at dawn"
    page.get_by_label("Remix prompt").fill(remix_prompt)
    page.get_by_role("button", name="Remix", exact=True).click()
    page.wait_for_url(re.compile(r".*/videos/video_[0-9a-f]{32}$"))
    remix_id = page.url.rsplit("/", 1)[1]
    made = api_status(studio, remix_id)
    assert remix_id != video.id and made["remixed_from_video_id"] == video.id and made["prompt"] == remix_prompt
    page.goto(f"{studio.base}/videos")
    assert page.locator(f'li.card[data-video-id="{remix_id}"] .prompt').inner_text() == remix_prompt
    # Extend and edit, with this video as the source.
    made_ids: dict[str, str] = {}
    for action, label, button in (("extend", "Extension prompt", "Extend"), ("edit", "Edit prompt", "Edit")):
        page.goto(f"{studio.base}/videos/{video.id}")
        page.get_by_label(label).fill(f"{action}ed lighthouse")
        if action == "extend":
            page.get_by_label("Seconds to add").select_option("2")
        page.get_by_role("button", name=button, exact=True).click()
        page.wait_for_url(re.compile(r".*/videos/video_[0-9a-f]{32}$"))
        made_ids[action] = page.url.rsplit("/", 1)[1]
        assert (
            made_ids[action] != video.id and api_status(studio, made_ids[action])["prompt"] == f"{action}ed lighthouse"
        )
    assert float(str(api_status(studio, made_ids["extend"])["seconds"])) == float(video.seconds) + 2
    # Someone else's video cannot be remixed from their session: a 404, and no job.
    other = new_tab(studio)
    sign_in(studio, other, OTHER_EMAIL)
    csrf = other.page.locator('meta[name="csrf-token"]').get_attribute("content")
    r = other.page.request.post(
        f"{studio.base}/videos/{video.id}/remix", form={"csrf_token": csrf, "prompt": "mine now"}, max_redirects=0
    )
    assert r.status == 404
    other_videos = httpx.get(
        f"{studio.base}/v1/videos", headers={"Authorization": f"Bearer {studio.state['other_key']}"}
    ).json()["data"]
    assert all(v["prompt"] != "mine now" for v in other_videos)
    for made_id in (remix_id, *made_ids.values()):
        wait_for_status(studio, made_id, "completed")
    other.page.context.close()
    page.context.close()


def test_mention_suggestions_and_an_expiry_that_survives_saving(studio: Studio) -> None:
    """After the webcam test: other@ may use @owner_face (granted there), and the owner's permissions form."""
    tab = new_tab(studio)
    sign_in(studio, tab, OTHER_EMAIL)
    page = tab.page
    # The only likeness in this module: other@ has none of their own.
    assert page.eval_on_selector_all("#mention-names option", "els => els.map(e => e.value)") == ["@owner_face"]
    prompt = page.get_by_label("Prompt")
    prompt.press_sequentially("A portrait of @own")
    page.wait_for_selector("#mention-suggest:not([hidden])")
    assert page.locator("#mention-options button").all_inner_texts() == ["@owner_face"]
    check_page(studio, tab, "create-mention")
    prompt.focus()
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    assert prompt.input_value() == "A portrait of @owner_face "
    assert page.locator("#mention-suggest").is_hidden()
    page.context.close()
    # The owner's expiry, set to the second through the API, survives a save that does not touch it.
    owner_headers = {"Authorization": f"Bearer {studio.server.api_key}"}
    listed = httpx.get(f"{studio.base}/v1/videos/characters", headers=owner_headers)
    assert listed.status_code == 200, listed.text
    mine = next(c for c in listed.json()["data"] if c["owned"])
    url = f"{studio.base}/v1/videos/characters/{mine['id']}"
    expires = int(time.time()) + 30 * 86400 + 1234
    r = httpx.post(
        f"{url}/permissions",
        headers=owner_headers,
        json={"visibility": "users", "allowed_users": mine["allowed_users"], "expires_at": expires},
    )
    assert r.status_code == 200, r.text
    tab = new_tab(studio)
    sign_in(studio, tab)
    page = tab.page
    page.goto(f"{studio.base}/likeness")
    day = page.get_by_label("Others may use it through this day (UTC; empty: no end)")
    assert day.input_value() == time.strftime("%Y-%m-%d", time.gmtime(expires - 1))
    check_page(studio, tab, "likeness-expiry")
    page.get_by_label("Restrictions (kept for the moderation policy)").fill("No adverts")
    page.get_by_role("button", name="Save permissions").click()
    page.wait_for_url(f"{studio.base}/likeness")
    saved = httpx.get(url, headers=owner_headers).json()
    assert saved["permission_expires_at"] == expires and saved["restrictions"] == "No adverts"
    assert saved["allowed_users"] == mine["allowed_users"]
    # A date chosen in the form: through the end of that UTC day; cleared: no end.
    day.fill("2031-01-31")
    page.get_by_role("button", name="Save permissions").click()
    page.wait_for_url(f"{studio.base}/likeness")
    assert httpx.get(url, headers=owner_headers).json()["permission_expires_at"] == 1927670400  # 2031-02-01T00:00Z
    assert day.input_value() == "2031-01-31"
    day.fill("")
    page.get_by_label("Restrictions (kept for the moderation policy)").fill("")
    page.get_by_role("button", name="Save permissions").click()
    page.wait_for_url(f"{studio.base}/likeness")
    cleared = httpx.get(url, headers=owner_headers).json()
    assert cleared["permission_expires_at"] is None and cleared["restrictions"] is None
    page.context.close()


def test_account_alerts_export_and_delete(studio: Studio, tmp_path: Path) -> None:
    tab = new_tab(studio)
    sign_in(studio, tab)
    page = tab.page
    page.get_by_role("link", name="Account").click()
    page.wait_for_url(f"{studio.base}/account")
    # other@ used @owner_face in the webcam test: the owner was alerted.
    unread = page.locator("#alerts li.unread", has_text="@owner_face")
    before = unread.count()
    assert before >= 1
    check_page(studio, tab, "account")
    unread.first.get_by_role("button", name=re.compile("^Mark read")).click()
    page.wait_for_url(f"{studio.base}/account")
    assert page.locator("#alerts li.unread", has_text="@owner_face").count() == before - 1
    # Export: the ZIP of GET /v1/me/export.
    with page.expect_download() as download:
        page.get_by_role("button", name="Download my data (ZIP)").click()
    assert download.value.suggested_filename == "kinema-export.zip"
    saved = tmp_path / "export.zip"
    download.value.save_as(saved)
    with zipfile.ZipFile(saved) as archive:
        assert json.loads(archive.read("me.json"))["account"]["email"] == OWNER_EMAIL
    page.context.close()
    # Delete an account: a new user, invited for it.
    leaving = "leaving@example.com"
    code = httpx.post(f"{studio.base}/v1/admin/invites", headers=studio.admin, json={"email": leaving}).json()["code"]
    r = httpx.post(f"{studio.base}/v1/auth/signup", json={"invite_code": code, "email": leaving, "password": PASSWORD})
    assert r.status_code == 201, r.text
    tab = new_tab(studio)
    sign_in(studio, tab, leaving)
    page = tab.page
    page.goto(f"{studio.base}/account")
    assert "every video made with it, by anyone, is deleted" in page.locator("main").inner_text()
    password, confirm = page.get_by_label("Your password"), page.get_by_label(re.compile("^Type .delete my account"))
    delete = page.get_by_role("button", name="Delete my account")
    password.fill("not the password at all")
    confirm.fill("delete my account")
    delete.click()
    assert "password is wrong" in page.locator("#account-error").inner_text()
    check_page(studio, tab, "account-delete-refused", expected_problems=("status of 400",))
    password.fill(PASSWORD)
    confirm.fill("delete it")
    delete.click()
    assert "Nothing was deleted" in page.locator("#account-error").inner_text()
    tab.problems.clear()  # the same 400 again
    page.goto(f"{studio.base}/account")  # still signed in: nothing was deleted
    assert page.url == f"{studio.base}/account"
    password.fill(PASSWORD)
    confirm.fill("Delete my account")
    delete.click()
    page.wait_for_url(f"{studio.base}/login?deleted=1")
    assert "Your account was deleted" in page.locator("main").inner_text()
    assert not any(c["name"] == "kinema_session" for c in page.context.cookies())
    page.get_by_label("Email").fill(leaving)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    assert "wrong email or password" in page.locator("#login-error").inner_text().lower()
    page.context.close()


def test_screenshots_were_written(studio: Studio) -> None:
    assert len(studio.shots) >= 2 * 10
    for path in studio.shots:
        assert path.stat().st_size > 5000, path
