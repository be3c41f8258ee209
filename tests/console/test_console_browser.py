"""The officer's journeys in a real browser: Debian's Chromium driven by Playwright.

Against a live console on loopback (SQLite, and PostgreSQL with
``--rrm-postgres``): sign in; see the deadlines due this week; record Mexico's
agreement; extend a deadline with a reason and see the timeline and My work
change; be refused an action the role no longer allows, with the reason shown;
switch to Spanish; do a case's main task with the keyboard alone. Each journey
saves screenshots to ``tests/artifacts/screenshots`` (``RRM_ARTIFACTS``).
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import pytest

import rrm

from . import browser as b

if TYPE_CHECKING:
    from collections.abc import Iterator

    from playwright.sync_api import Browser, Page

    from .conftest import Console

AGREES = "respondent_agrees"


@pytest.fixture(name="chromium", scope="module")
def _chromium() -> Iterator[Browser]:
    b.require_chromium()
    with b.launch() as found:
        yield found


def _backend(console: Console) -> str:
    return "sqlite" if console.db_url.startswith("sqlite") else "postgres"


def shot(console: Console, page: Page, name: str) -> None:
    """Save a full-page screenshot named after the journey and the backend."""
    b.screenshot(page, f"{name}-{_backend(console)}")


def sign_in(console: Console, page: Page, name: str, *, next_path: str = "") -> None:
    """Sign in through the sign-in form with the person's API token."""
    page.goto(f"{console.url}/sign-in" + (f"?next={next_path}" if next_path else ""))
    page.get_by_role("textbox", name="API token").fill(console.tokens[name])
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.wait_for_load_state()


@pytest.fixture(name="page")
def _page(chromium: Browser) -> Iterator[Page]:
    """A page under the console's own Content-Security-Policy (not bypassed).

    Any violation the browser reports (a blocked script, style or request)
    fails the journey.
    """
    context = b.new_context(chromium, bypass_csp=False)
    found = context.new_page()
    blocked: list[str] = []
    found.on(
        "console",
        lambda m: (
            blocked.append(m.text) if "Content Security Policy" in m.text else None
        ),
    )
    try:
        yield found
    finally:
        context.close()
    assert not blocked, blocked


def _case_url(console: Console, case: rrm.Case) -> str:
    return f"{console.url}/cases/{case.case_id}"


class TestJourneys:
    def test_sign_in_and_see_what_is_due_this_week(self, console: Console, page):
        case = console.open_case("WEEK", at=console.clock.now() - timedelta(days=6))
        page.goto(console.url)
        assert page.url.startswith(f"{console.url}/sign-in")
        shot(console, page, "sign-in")
        sign_in(console, page, "ana")
        assert page.url == f"{console.url}/work"
        due = page.locator("#due-table")
        row = due.locator("tr", has_text=case.external_ref)
        assert row.count() == 1
        assert "Mexico answers whether it will conduct the review" in row.inner_text()
        assert "business days" in row.inner_text()
        shot(console, page, "my-work")

    def test_record_mexicos_agreement(self, console: Console, page):
        case = console.open_case("AGREE")
        sign_in(console, page, "lupe", next_path=f"/cases/{case.case_id}")
        assert page.url == _case_url(console, case)
        form = page.locator("form.action", has=page.locator(f"input[value='{AGREES}']"))
        shot(console, page, "case-before-agreement")
        form.get_by_role("button").click()
        page.wait_for_load_state()
        assert (
            page.get_by_role("status").inner_text().endswith("The event was recorded.")
        )
        assert console.seed.get(case.case_id).state == "respondent_reviewing"
        history = page.locator("#history-table tbody tr").first.inner_text()
        assert AGREES in history
        assert "lupe (respondent)" in history
        shot(console, page, "case-after-agreement")

    def test_extend_a_deadline_and_see_the_timeline_and_my_work_change(
        self, console: Console, page
    ):
        case = console.open_case("EXTEND", at=console.clock.now() - timedelta(days=6))
        sign_in(console, page, "sam")
        assert page.locator("#due-table tr", has_text=case.external_ref).count() == 1
        page.goto(_case_url(console, case))
        timeline_before = page.locator("#timeline-img").get_attribute("src")
        svg_before = page.request.get(f"{console.url}{timeline_before}").text()
        article = page.locator("article.deadline", has_text="Mexico answers")
        article.get_by_text("Extend this deadline").click()
        form = article.locator("form[action$='/extend']")
        form.get_by_label("New due date").fill("2025-02-28")
        form.get_by_label("Reason").fill("The Parties agreed to a longer answer.")
        shot(console, page, "extend-form")
        form.get_by_role("button", name="Extend").click()
        page.wait_for_load_state()
        assert "The deadline was extended." in page.get_by_role("status").inner_text()
        deadline = page.locator("article.deadline", has_text="Mexico answers")
        assert "2025-02-28" in deadline.locator("time").get_attribute("datetime")
        timeline_after = page.locator("#timeline-img").get_attribute("src")
        assert timeline_after != timeline_before
        svg_after = page.request.get(f"{console.url}{timeline_after}").text()
        assert "due 2025-02-28" in svg_after
        assert "due 2025-02-28" not in svg_before
        shot(console, page, "case-after-extension")
        page.get_by_role("link", name="My work").click()
        assert page.locator("#due-table tr", has_text=case.external_ref).count() == 0
        shot(console, page, "my-work-after-extension")

    def test_a_refused_action_shows_the_reason_and_writes_nothing(
        self, console: Console, page
    ):
        case = console.open_case("REFUSE")
        sign_in(console, page, "sam", next_path=f"/cases/{case.case_id}")
        article = page.locator("article.deadline", has_text="Mexico answers")
        article.get_by_text("Extend this deadline").click()
        form = article.locator("form[action$='/extend']")
        form.get_by_label("New due date").fill("2025-02-28")
        form.get_by_label("Reason").fill("Agreed on the phone.")
        # Meanwhile the case's supervisor changes: sam no longer supervises it.
        console.seed.assign(
            rrm.AssignOfficers(
                case_id=case.case_id,
                actor="admin",
                role="admin",
                remove=("sam",),
                reason="reorganised",
            )
        )
        before = console.fingerprint()
        form.get_by_role("button", name="Extend").click()
        page.wait_for_load_state()
        alert = page.locator("#refusal")
        assert alert.get_attribute("role") == "alert"
        text = alert.inner_text()
        assert "Refused:" in text
        assert "sam" in text
        assert "Nothing was recorded." in text
        assert console.fingerprint() == before
        shot(console, page, "refused")

    def test_switch_to_spanish_and_it_is_remembered(self, console: Console, page):
        case = console.open_case("ES", at=console.clock.now() - timedelta(days=6))
        sign_in(console, page, "ana")
        page.get_by_label("Language").select_option("es")
        page.get_by_role("button", name="Change").click()
        page.wait_for_load_state()
        assert page.locator("html").get_attribute("lang") == "es"
        assert page.get_by_role("heading", level=1).inner_text() == "Mi trabajo"
        row = page.locator("#due-table tr", has_text=case.external_ref).inner_text()
        assert "ene 2025" in row  # the due date in Spanish
        shot(console, page, "my-work-es")
        page.get_by_role("button", name="Cerrar sesión").click()
        page.wait_for_load_state()
        assert page.get_by_role("heading", level=1).inner_text() == "Iniciar sesión"

    def test_keyboard_only(self, console: Console, page):
        """Sign in, find a case, record an event: Tab, type and Enter only."""
        case = console.open_case("KEYS")
        page.goto(f"{console.url}/sign-in")

        def tab_to(predicate: str, limit: int = 60) -> None:
            for _ in range(limit):
                page.keyboard.press("Tab")
                if page.evaluate(predicate):
                    return
            pytest.fail(f"Tab never reached {predicate}")

        def enter() -> None:
            with page.expect_navigation():
                page.keyboard.press("Enter")

        tab_to("document.activeElement.id === 'token'")
        outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
        assert outline != "none"  # focus is visible
        page.keyboard.type(console.tokens["lupe"])
        enter()
        shot(console, page, "keyboard-signed-in")
        assert page.url == f"{console.url}/work"
        tab_to("document.activeElement.textContent.trim() === 'Cases'")
        enter()
        tab_to("document.activeElement.id === 'q'")
        page.keyboard.type(case.external_ref)
        enter()
        shot(console, page, "keyboard-search")
        tab_to(f"document.activeElement.textContent.trim() === '{case.external_ref}'")
        enter()
        assert page.url == _case_url(console, case)
        tab_to(
            "document.activeElement.tagName === 'BUTTON' && "
            f"document.activeElement.form?.elements?.event?.value === '{AGREES}'"
        )
        shot(console, page, "keyboard-focus")
        enter()
        assert console.seed.get(case.case_id).state == "respondent_reviewing"


def test_the_case_list_narrows_as_the_officer_types(console: Console, page):
    """htmx: typing in the search box replaces the results without a page load."""
    wanted = console.open_case("LIVE")
    other = console.open_case("OTHER")
    sign_in(console, page, "ana", next_path="/cases")
    assert page.locator("#cases-table", has_text=other.external_ref).count() == 1
    with page.expect_response(lambda r: "/cases?" in r.url):
        page.get_by_label("Reference or facility name").type(wanted.external_ref)
    page.wait_for_function(
        "(ref) => !document.querySelector('#results').textContent.includes(ref)",
        arg=other.external_ref,
    )
    assert wanted.external_ref in page.locator("#results").inner_text()
    assert f"q={wanted.external_ref}" in page.url


def test_sign_in_with_the_identity_provider(console: Console, page):
    """The provider's button: authorization code with PKCE, back to the page asked for."""
    case = console.open_case("IDP")
    console.provider.user = {
        "sub": "ana",
        "name": "Ana Officer",
        "realm_access": {"roles": ["rrm-ustr"]},
        "agency": ["USTR"],
    }
    page.goto(f"{console.url}/cases/{case.case_id}")
    assert "/sign-in" in page.url
    page.get_by_role("link", name="Sign in with your identity provider").click()
    page.wait_for_url(_case_url(console, case))
    assert "Ana Officer" in page.locator("header").inner_text()
    shot(console, page, "signed-in-by-provider")


def test_open_a_case(console: Console, page):
    """Ana opens a request for review through the form; the case page follows."""
    ref = console.ref("OPENED")
    sign_in(console, page, "ana", next_path="/cases/new")
    form = page.locator("form", has=page.locator("[name='workflow']"))
    form.locator("[name='workflow']").select_option("usmca-31a")
    form.locator("[name='initiation']").select_option("request")
    form.locator("[name='role']").select_option("ustr")
    form.locator("[name='external_ref']").fill(ref)
    form.locator("[name='complainant']").select_option("US")
    form.locator("[name='respondent']").select_option("MX")
    form.locator("[name='facility.facility_id']").fill("MX-OPEN-1")
    form.locator("[name='facility.name']").fill("Planta Abierta")
    form.locator("[name='facility.owner']").fill("Grupo Abierto")
    form.locator("[name='facility.country']").select_option("MX")
    form.locator("[name='claim.basis']").select_option("annex_23a_legislation")
    form.locator("[name='claim.sector_category']").fill("manufacturing")
    form.locator("[name='officers[0].email']").fill("ana@ustr.example")
    shot(console, page, "open-form-filled")
    form.get_by_role("button", name="Open the case").click()
    page.wait_for_load_state()
    case = console.seed.get(ref)
    assert page.url == _case_url(console, case)
    assert case.state == "review_requested"
    assert [e.actor for e in console.seed.history(case.case_id)] == ["ana"]
    assert "Mexico answers whether it will conduct the review" in page.inner_text(
        "body"
    )
    shot(console, page, "opened-case")


def test_import_files_with_a_result_per_file(console: Console, page, tmp_path):
    """An administrator uploads two files (htmx); each gets its own result."""
    import json

    from rrm.service.transfer import export_case

    source = console.open_case("EXPORTED")
    good = tmp_path / "good.json"
    document = export_case(console.seed, source.case_id)
    document["case"]["external_ref"] = console.ref("IMPORTED")
    good.write_text(json.dumps(document))
    broken = tmp_path / "broken.json"
    broken.write_text("{ not json")
    sign_in(console, page, "admin", next_path="/import")
    page.locator("input[type=file]").set_input_files([good, broken])
    with page.expect_response(lambda r: r.url.endswith("/import")):
        page.get_by_role("button", name="Import").click()
    results = page.locator("#import-results")
    results.locator("table").wait_for()
    text = results.inner_text()
    assert "good.json" in text
    assert "broken.json" in text
    assert console.seed.get(document["case"]["external_ref"]).case_id
    shot(console, page, "import-results")
