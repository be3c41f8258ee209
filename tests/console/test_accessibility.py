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
from rrm.service.transfer import import_cases

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


@pytest.fixture(name="records", scope="module")
def _records(console: Console) -> dict[str, str]:
    """Case pages with the sections only some records have (ids by page name)."""
    return _records_of(console)


@pytest.fixture(name="signed_in", scope="module")
def _signed_in(
    chromium: Browser, console: Console, seeded: rrm.Case, records: dict[str, str]
) -> Iterator[Page]:
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


# An imported request for review whose record stops after a vote known by its month:
# both of Mexico's deadlines are past due, neither met nor lapsed in the record.
_SILENT = {
    "format": "rrm-history/1",
    "case": {
        "external_ref": "A11Y-SIL",
        "workflow": "usmca-31a",
        "initiation": "request",
        "complainant": "US",
        "respondent": "MX",
        "facility": {
            "facility_id": "MX-A11Y-S",
            "name": "Planta S",
            "owner": "G",
            "country": "MX",
        },
        "claim": {
            "basis": "annex_23a_legislation",
            "sector_category": "manufacturing",
        },
        "officers": [{"officer_id": "sam", "role": "supervisor"}],
    },
    "events": [
        {
            "at": "2024-10-01T17:00:00+00:00",
            "event": "request_for_review",
            "role": "ustr",
        },
        {
            "at": "2024-10-03T17:00:00+00:00",
            "event": "legitimation_vote",
            "role": "ustr",
            "payload": {
                "on": "2024-08-01",
                "result": "rejected",
                "date_precision": "month",
            },
        },
    ],
}


def _records_of(console: Console) -> dict[str, str]:
    """An imported case with unknown steps and a fact, the case that follows it, and
    a closed case with a dated fact recorded after it closed."""
    import_cases(console.seed, [_SILENT])
    earlier = console.seed.get("A11Y-SIL")
    second = console.seed.open_case(
        rrm.OpenCase(
            workflow="usmca-31a",
            initiation="request",
            complainant="US",
            respondent="MX",
            facility=earlier.facility,
            claim=rrm.Claim(
                basis="annex_23a_legislation", sector_category="manufacturing"
            ),
            officers=(rrm.Officer(officer_id="sam", role="supervisor"),),
            external_ref=console.ref("A11Y-FOL"),
            actor="ana",
            role="ustr",
            payload={"follows": earlier.external_ref},
        )
    )
    closed = console.open_case("A11Y-CLO")
    for event, payload in (
        ("request_withdrawn", {}),
        ("public_statement", {"on": "2024-12-20", "by": "the union"}),
    ):
        console.seed.fire(
            rrm.FireEvent(
                case_id=closed.case_id,
                event=event,
                actor="ana",
                role="ustr",
                payload=payload,
            )
        )
    return {
        "case-imported": earlier.case_id,
        "case-follows": second.case_id,
        "case-closed": closed.case_id,
    }


def _pages(case: rrm.Case, records: dict[str, str]) -> list[tuple[str, str]]:
    pages = [
        ("my-work", "/work"),
        ("cases", "/cases"),
        ("cases-filtered", f"/cases?q={case.external_ref}&due_within=5"),
        ("case", f"/cases/{case.case_id}"),
        *((name, f"/cases/{case_id}") for name, case_id in records.items()),
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
            ("workflow-usmca-31a-v2", "/workflows/usmca-31a/2"),
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
        self,
        signed_in: Page,
        console: Console,
        seeded: rrm.Case,
        records: dict[str, str],
    ):
        page = signed_in
        failures = []
        for lang in ("en", "es", "fr"):
            page.context.add_cookies(
                [{"name": "rrm_lang", "value": lang, "url": console.url}]
            )
            for name, path in _pages(seeded, records):
                page.goto(f"{console.url}{path}")
                assert page.url == f"{console.url}{path}"  # not sent to sign in
                assert page.locator("html").get_attribute("lang") == lang
                found = _judge(page, f"{name}-{lang}-{_backend(console)}")
                if found != "no violations":
                    failures.append(f"{path} ({lang}):\n{found}")
        assert not failures, "\n\n".join(failures)

    def test_a_closed_case_with_its_fact_forms(
        self, chromium: Browser, console: Console, records: dict[str, str]
    ):
        """Ana (USTR) may record the closed case's dated facts: their forms are judged."""
        context = b.new_context(chromium)
        failures = []
        try:
            page = context.new_page()
            page.goto(f"{console.url}/sign-in")
            page.get_by_role("textbox", name="API token").fill(console.tokens["ana"])
            page.get_by_role("button", name="Sign in", exact=True).click()
            page.wait_for_load_state()
            for lang in ("en", "es", "fr"):
                context.add_cookies(
                    [{"name": "rrm_lang", "value": lang, "url": console.url}]
                )
                page.goto(f"{console.url}/cases/{records['case-closed']}")
                assert page.locator("#closed-facts").count() == 1
                assert page.locator("form.action").count() > 1
                found = _judge(page, f"case-closed-ana-{lang}-{_backend(console)}")
                if found != "no violations":
                    failures.append(f"{lang}:\n{found}")
        finally:
            context.close()
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
