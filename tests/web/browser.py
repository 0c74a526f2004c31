"""What the studio's browser tests share: a real ``kinema serve`` (one in-process worker, the offline miniature
model) with Debian's Chromium (``/usr/bin/chromium``) driven by Playwright, signing in, and ``check_page``.

Every page visited by ``check_page`` is checked for console errors, CSP violations and serious accessibility
violations (axe-core, run inside the page), and screenshotted at desktop and phone widths under
``tests/web/output/`` (or ``$KINEMA_STUDIO_OUTPUT``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright

from testkit.server import OWNER_EMAIL, PASSWORD, Proc, provision, start_server

CHROMIUM = "/usr/bin/chromium"
HERE = Path(__file__).parent
AXE = (HERE / "axe.min.js").read_text()
OUT = Path(os.environ.get("KINEMA_STUDIO_OUTPUT", HERE / "output"))
WIDTHS = {"desktop": (1280, 800), "phone": (390, 844)}
ADMIN_EMAIL = "root@example.com"
OTHER_EMAIL = "other@example.com"
# Record CSP violations from the first moment of every document (an init script is not subject to the CSP).
CSP_LISTENER = (
    "window.__csp = [];"
    "document.addEventListener('securitypolicyviolation',"
    " e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));"
)


@dataclass
class Studio:
    """A running server, the module's browser, an admin's API headers, and what the tests hand on."""

    server: Proc
    browser: Browser
    admin: dict[str, str]
    playwright: Playwright | None = None
    shots: list[Path] = field(default_factory=list)
    state: dict[str, str] = field(default_factory=dict)

    @property
    def base(self) -> str:
        return self.server.base_url


@contextmanager
def running_studio(workdir: Path, models_dir: Path) -> Iterator[Studio]:
    """A server with three accounts (the owner, ``other@`` and the admin ``root@``, all with PASSWORD) and one
    Chromium; ``state["other_key"]`` is other@'s API key."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install -y chromium` (scripts/install.sh test does it)")
    from playwright.sync_api import sync_playwright

    data, db_url = workdir / "data", f"sqlite:///{workdir / 'kinema.db'}"
    server = start_server(data, db_url, models_dir, workers=1)
    other_key = provision(data, db_url, OTHER_EMAIL)
    admin = {"Authorization": f"Bearer {provision(data, db_url, ADMIN_EMAIL, role='admin')}"}
    OUT.mkdir(parents=True, exist_ok=True)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            try:
                yield Studio(server, browser, admin, playwright=pw, state={"other_key": other_key})
            finally:
                browser.close()
    finally:
        server.stop()


@dataclass
class Tab:
    """A page plus everything it reported that a clean page must not."""

    page: Page
    problems: list[str]


def new_tab(studio: Studio, context: BrowserContext | None = None) -> Tab:
    """A page in ``context`` (default: a new desktop-sized one) that records console problems and CSP reports."""
    ctx = context or studio.browser.new_context(viewport={"width": 1280, "height": 800})
    ctx.add_init_script(CSP_LISTENER)
    page = ctx.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    return Tab(page, problems)


def sign_in(studio: Studio, tab: Tab, email: str = OWNER_EMAIL) -> None:
    """Sign in through the page; it lands on the create page."""
    page = tab.page
    page.goto(f"{studio.base}/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{studio.base}/create")


def check_page(studio: Studio, tab: Tab, name: str, *, expected_problems: tuple[str, ...] = ()) -> None:
    """No console error, no CSP violation, no serious axe violation, at both widths; screenshots of each."""
    page = tab.page
    for label, (width, height) in WIDTHS.items():
        page.set_viewport_size({"width": width, "height": height})
        path = OUT / f"{name}-{label}.png"
        page.screenshot(path=str(path), full_page=True)
        studio.shots.append(path)
        page.evaluate(AXE)  # evaluated by the test, not loaded by the page: no CSP change
        violations = page.evaluate(
            """async () => (await axe.run(document, {resultTypes: ['violations']})).violations
                .filter(v => v.impact === 'serious' || v.impact === 'critical')
                .map(v => v.id + ': ' + v.help + ' @ ' + v.nodes.map(n => n.target.join(' ')).join(', '))"""
        )
        assert violations == [], f"{name} at {label} width: {violations}"
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{name} scrolls sideways by {overflow}px at {label} width"
    page.set_viewport_size({"width": 1280, "height": 800})
    assert page.evaluate("window.__csp") == [], f"CSP violations on {name}"
    unexpected = [p for p in tab.problems if not any(e in p for e in expected_problems)]
    assert unexpected == [], f"console problems on {name}: {unexpected}"
    tab.problems.clear()
