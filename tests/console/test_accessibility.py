"""Every console page passes axe-core's WCAG 2.1 A and AA rules in a real browser.

axe-core (vendored from the npm registry, pinned: ``tests/console/vendor``) runs in
Debian's Chromium on each page, in English, Spanish and French, with every folded section
opened so the forms inside are judged too: no serious or critical violation. Each
page's screenshot is saved (``tests/artifacts/screenshots/page-*.png``).
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import pytest

import rrm
from rrm.service.credentials import create_token

from . import browser as b

if TYPE_CHECKING:
    from collections.abc import Iterator

    from playwright.sync_api import Browser, Page

    from .conftest import Console


@pytest.fixture(name="chromium", scope="module")
def _chromium() -> Iterator[Browser]:
    b.require_chromium()
    with b.launch() as found:
        yield found


@pytest.fixture(name="seeded", scope="module")
def _seeded(console: Console) -> rrm.Case:
    """The case the pages show (made before signing in: it moves the clock)."""
    return _case(console)


@pytest.fixture(name="signed_in", scope="module")
def _signed_in(chromium: Browser, console: Console, seeded: rrm.Case) -> Iterator[Page]:
    """One page signed in as Sam, supervisor of the seeded cases and administrator.

    Both roles, so that every page shows all it can (import, audit, retry).
    """
    _, token = create_token(
        console.credentials,
        principal="sam",
        roles=("supervisor", "admin"),
        created_by="tests",
        now=console.clock.now(),
    )
    context = b.new_context(chromium)
    page = context.new_page()
    page.goto(f"{console.url}/sign-in")
    page.get_by_role("textbox", name="API token").fill(token)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.wait_for_load_state()
    try:
        yield page
    finally:
        context.close()


def _case(console: Console) -> rrm.Case:
    """A case with an open deadline due soon, a lapse, and some history."""
    case = console.open_case("A11Y", at=console.clock.now() - timedelta(days=6))
    console.seed.fire(
        rrm.FireEvent(
            case_id=case.case_id,
            event="suspend_liquidation",
            actor="ana",
            role="ustr",
            payload={"basis": "Section 4646"},
        )
    )
    # A day on, the reminders of the answer deadline are owed: the outbox and
    # My work have rows to show.
    console.clock.advance(timedelta(days=1))
    console.seed.tick()
    return console.seed.get(case.case_id)


def _pages(case: rrm.Case) -> list[tuple[str, str]]:
    pages = [
        ("my-work", "/work"),
        ("cases", "/cases"),
        ("cases-filtered", f"/cases?q={case.external_ref}&due_within=5"),
        ("case", f"/cases/{case.case_id}"),
        ("not-found", "/cases/NO-SUCH-CASE"),
    ]
    import importlib.util

    if importlib.util.find_spec("rrm.server.console.manage") is not None:
        pages += [
            ("open-a-case", "/cases/new"),
            ("import", "/import"),
            ("workflows", "/workflows"),
            *(
                (f"workflow-{w}", f"/workflows/{w}/1")
                for w in ("usmca-31a", "usmca-31a-mx", "usmca-31b")
            ),
            ("alerts", "/alerts"),
            ("audit", "/audit"),
        ]
    return pages


def _judge(page: Page, name: str) -> str:
    page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
    b.screenshot(page, f"page-{name}")
    return b.format_violations(b.serious(b.axe(page)))


def _backend(console: Console) -> str:
    return "sqlite" if console.db_url.startswith("sqlite") else "postgres"


class TestAxe:
    def test_the_sign_in_page(self, chromium: Browser, console: Console):
        context = b.new_context(chromium)
        try:
            page = context.new_page()
            page.goto(f"{console.url}/sign-in")
            found = _judge(page, f"sign-in-{_backend(console)}")
        finally:
            context.close()
        assert found == "no violations", found

    def test_every_page_in_every_language(
        self, signed_in: Page, console: Console, seeded: rrm.Case
    ):
        page = signed_in
        failures = []
        for lang in ("en", "es", "fr"):
            page.context.add_cookies(
                [{"name": "rrm_lang", "value": lang, "url": console.url}]
            )
            for name, path in _pages(seeded):
                page.goto(f"{console.url}{path}")
                assert page.url == f"{console.url}{path}"  # not sent to sign in
                assert page.locator("html").get_attribute("lang") == lang
                found = _judge(page, f"{name}-{lang}-{_backend(console)}")
                if found != "no violations":
                    failures.append(f"{path} ({lang}):\n{found}")
        assert not failures, "\n\n".join(failures)

    def test_focus_is_visible_on_every_control(self, signed_in: Page, console: Console):
        """Tabbing through My work, every focused control shows an outline."""
        page = signed_in
        page.goto(f"{console.url}/work")
        seen = 0
        for _ in range(25):
            page.keyboard.press("Tab")
            style = page.evaluate(
                "(() => { const s = getComputedStyle(document.activeElement);"
                " return [document.activeElement.tagName, s.outlineStyle,"
                " s.outlineWidth]; })()"
            )
            if style[0] in ("A", "BUTTON", "INPUT", "SELECT", "TEXTAREA", "SUMMARY"):
                seen += 1
                assert style[1] != "none", style
                assert style[2] != "0px", style
        assert seen >= 10
