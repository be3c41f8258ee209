"""The console refuses what it must: forged forms, planted sessions, script, exits.

Each attack of issue #10 is tried against a live console over HTTP (a cookie jar
per "browser"): cross-site request forgery, session fixation, cross-site scripting
through case data, and open redirects after sign-in; plus sign-in by the identity
provider with PKCE, session ends, the security headers, and a refused action that
writes nothing.
"""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

import rrm
from rrm.server.console import SESSION_COOKIE

from .conftest import ASSIGNED, FACILITY, csrf_of

if TYPE_CHECKING:
    from .conftest import Console

pytestmark = pytest.mark.filterwarnings("error")

XSS = '<script>alert("rrm")</script><img src=x onerror=alert(1)>'


def _case_path(case: rrm.Case) -> str:
    return f"/cases/{case.case_id}"


class TestSignIn:
    def test_every_page_sends_a_stranger_to_sign_in(self, console: Console):
        """Without a session, a page answers with the way to sign in, and back."""
        case = console.open_case()
        client = console.client()
        for path in ("/work", "/cases", _case_path(case), "/cases.csv"):
            answer = client.get(path)
            assert answer.status_code == 303
            location = answer.headers["location"]
            assert location.startswith("/sign-in?next=")
            assert parse_qs(urlsplit(location).query)["next"] == [path]

    def test_token_sign_in_then_the_page_asked_for(self, console: Console):
        case = console.open_case()
        client = console.client()
        answer = console.sign_in(client, "ana", next_path=_case_path(case))
        assert answer.status_code == 303
        assert answer.headers["location"] == _case_path(case)
        page = client.get(_case_path(case))
        assert page.status_code == 200
        assert case.external_ref in page.text

    def test_a_wrong_token_is_refused_on_the_page(self, console: Console):
        client = console.client()
        page = client.get("/sign-in")
        answer = client.post(
            "/sign-in",
            data={"csrf_token": csrf_of(page.text), "token": "rrm_0123_nottoken"},
            headers={"Origin": console.url},
        )
        assert answer.status_code == 401
        assert "This token is not valid" in answer.text
        assert client.get("/work").status_code == 303

    def test_a_principal_without_a_role_may_not_read(self, console: Console):
        console.provider.user = {"sub": "nobody", "realm_access": {"roles": []}}
        client = console.client()
        _provider_sign_in(console, client)
        answer = client.get("/work")
        assert answer.status_code == 403
        assert "you hold no role" in answer.text


def _provider_sign_in(
    console: Console, client: httpx.Client, *, next_path: str = ""
) -> httpx.Response:
    """Walk the authorization-code flow as a browser would; return the last answer."""
    start = client.get("/sign-in/oidc" + (f"?next={next_path}" if next_path else ""))
    assert start.status_code in (302, 303, 307), start.text
    with httpx.Client(trust_env=False, follow_redirects=False) as browser:
        at_provider = browser.get(start.headers["location"])
    assert at_provider.status_code == 302, at_provider.text
    back = at_provider.headers["location"]
    assert back.startswith(console.url)
    return client.get(back.removeprefix(console.url))


class TestIdentityProvider:
    def test_sign_in_with_the_provider_uses_pkce(self, console: Console):
        """Authorization code with PKCE (S256): the verifier matches the challenge."""
        console.provider.user = {
            "sub": "ana",
            "name": "Ana Officer",
            "realm_access": {"roles": ["rrm-ustr"]},
            "agency": ["USTR"],
        }
        client = console.client()
        before = len(console.provider.requests)
        done = _provider_sign_in(console, client, next_path="/cases")
        assert done.status_code == 303, done.text
        assert done.headers["location"] == "/cases"
        seen = console.provider.requests[before:]
        authorize = next(r for r in seen if r.path == "/authorize")
        token = next(r for r in seen if r.path == "/token")
        assert authorize.params["code_challenge_method"] == "S256"
        assert authorize.params["code_challenge"]
        assert token.params["code_verifier"]
        page = client.get("/work")
        assert page.status_code == 200
        assert "Ana Officer" in page.text

    def test_a_forged_state_is_refused(self, console: Console):
        console.provider.user = {"sub": "ana", "realm_access": {"roles": ["rrm-ustr"]}}
        client = console.client()
        start = client.get("/sign-in/oidc")
        with httpx.Client(trust_env=False, follow_redirects=False) as browser:
            at_provider = browser.get(start.headers["location"])
        back = urlsplit(at_provider.headers["location"])
        params = parse_qs(back.query)
        forged = f"{back.path}?code={params['code'][0]}&state=forged-state"
        answer = client.get(forged)
        assert answer.status_code == 401
        assert "did not sign you in" in answer.text
        assert client.get("/work").status_code == 303


class TestSessionFixation:
    def test_a_planted_cookie_never_becomes_signed_in(self, console: Console):
        """An attacker's pre-sign-in cookie stays signed out after the victim signs in."""
        victim = console.client()
        victim.get("/sign-in")
        planted = victim.cookies.get(SESSION_COOKIE)
        assert planted
        attacker = console.client()
        attacker.cookies.set(SESSION_COOKIE, planted)

        assert console.sign_in(victim, "ana").status_code == 303

        assert victim.cookies.get(SESSION_COOKIE) != planted
        assert victim.get("/work").status_code == 200
        assert attacker.get("/work").status_code == 303

    def test_signing_out_ends_every_copy_of_the_session(self, console: Console):
        client = console.signed_in("ana")
        copy = console.client()
        copy.cookies.set(SESSION_COOKIE, client.cookies.get(SESSION_COOKIE) or "")
        assert copy.get("/work").status_code == 200
        out = console.post(client, "/sign-out", {})
        assert out.status_code == 303
        assert copy.get("/work").status_code == 303

    def test_revoking_the_token_ends_its_sessions(self, console: Console):
        from rrm.service.credentials import create_token

        token, text = create_token(
            console.credentials,
            principal="ana",
            roles=("ustr",),
            created_by="tests",
            now=console.clock.now(),
        )
        client = console.client()
        page = client.get("/sign-in")
        client.post(
            "/sign-in",
            data={"csrf_token": csrf_of(page.text), "token": text},
            headers={"Origin": console.url},
        )
        assert client.get("/work").status_code == 200
        console.credentials.revoke_token(token.token_id, console.clock.now())
        assert client.get("/work").status_code == 303

    def test_a_session_ends_after_eight_hours(self, console: Console):
        client = console.signed_in("ana")
        console.clock.advance(timedelta(hours=8, seconds=1))
        assert client.get("/work").status_code == 303


class TestCsrf:
    def _attempt(
        self, console: Console, data: dict[str, Any], headers: dict[str, str]
    ) -> None:
        case = console.open_case()
        client = console.signed_in("lupe")
        before = console.fingerprint()
        answer = client.post(
            f"{_case_path(case)}/events",
            data={"event": "respondent_agrees", "role": "respondent", **data},
            headers=headers,
        )
        assert answer.status_code == 403
        assert "did not come from this site" in answer.text
        assert console.fingerprint() == before

    def test_a_form_without_the_token_is_refused(self, console: Console):
        self._attempt(console, {}, {"Origin": console.url})

    def test_a_form_with_another_token_is_refused(self, console: Console):
        self._attempt(console, {"csrf_token": "x" * 43}, {"Origin": console.url})

    def test_a_form_from_another_site_is_refused(self, console: Console):
        """Even with the right token, a post from another origin is refused."""
        case = console.open_case()
        client = console.signed_in("lupe")
        token = csrf_of(client.get(_case_path(case)).text)
        before = console.fingerprint()
        answer = client.post(
            f"{_case_path(case)}/events",
            data={
                "csrf_token": token,
                "event": "respondent_agrees",
                "role": "respondent",
            },
            headers={"Origin": "https://evil.example"},
        )
        assert answer.status_code == 403
        assert console.fingerprint() == before

    def test_sign_in_itself_needs_the_token(self, console: Console):
        """No login CSRF: a forged sign-in form does not sign the browser in."""
        client = console.client()
        answer = client.post(
            "/sign-in", data={"token": console.tokens["mallory"]}, headers={}
        )
        assert answer.status_code == 403
        assert client.get("/work").status_code == 303

    def test_the_same_form_with_the_token_is_recorded(self, console: Console):
        case = console.open_case()
        client = console.signed_in("lupe")
        token = csrf_of(client.get(_case_path(case)).text)
        answer = client.post(
            f"{_case_path(case)}/events",
            data={"csrf_token": token, "event": "respondent_agrees", "version": "1"},
            headers={"Origin": console.url},
        )
        assert answer.status_code == 303, answer.text
        assert console.seed.get(case.case_id).state == "respondent_reviewing"


class TestOpenRedirect:
    @pytest.mark.parametrize(
        "target",
        [
            "https://evil.example/",
            "//evil.example/",
            "/\\evil.example",
            "javascript:alert(1)",
            "/%2F%2Fevil.example",
            "http:evil.example",
            "\\\\evil.example",
        ],
    )
    def test_sign_in_never_leaves_the_site(self, console: Console, target: str):
        client = console.client()
        answer = console.sign_in(client, "ana", next_path=target)
        assert answer.status_code == 303
        location = answer.headers["location"]
        assert location.startswith("/")
        assert not location.startswith(("//", "/\\"))
        assert "evil" not in location or location.startswith("/%2F")

    def test_the_language_switch_never_leaves_the_site(self, console: Console):
        client = console.signed_in("ana")
        answer = console.post(
            client, "/language", {"lang": "es", "back": "https://evil.example/"}
        )
        assert answer.status_code == 303
        assert answer.headers["location"] == "/work"


class TestCrossSiteScripting:
    def test_case_data_is_shown_as_text(self, console: Console):
        """A facility name, a reason and a payload holding markup are escaped."""
        facility = rrm.Facility(
            facility_id="MX-XSS-1",
            name=f"Planta {XSS}",
            owner=XSS,
            country=rrm.Party.MX,
            city=XSS,
            region="Guanajuato",
        )
        case = console.open_case("XSS", facility=facility)
        console.seed.fire(
            rrm.FireEvent(
                case_id=case.case_id,
                event="suspend_liquidation",
                actor="ana",
                role="ustr",
                reason=XSS,
                payload={"basis": XSS},
            )
        )
        client = console.signed_in("ana")
        for path in (_case_path(case), f"/cases?q={case.external_ref}", "/work"):
            html = client.get(path).text
            assert "<script>alert" not in html
            assert "onerror=alert" not in html.replace("onerror=alert(1)&gt;", "")
            assert "<img src=x" not in html
        page = client.get(_case_path(case)).text
        assert "&lt;script&gt;alert(&#34;rrm&#34;)&lt;/script&gt;" in page

    def test_a_reference_with_markup_is_escaped_in_the_timeline(self, console: Console):
        case = console.open_case("XSS")
        client = console.signed_in("ana")
        svg = client.get(f"{_case_path(case)}/timeline.svg")
        assert svg.status_code == 200
        assert svg.headers["content-type"].startswith("image/svg+xml")
        assert "<script" not in svg.text

    def test_the_csv_export_cannot_run_formulas(self, console: Console):
        facility = rrm.Facility(
            facility_id="MX-CSV-1",
            name='=HYPERLINK("https://evil.example","x")',
            owner="o",
            country=rrm.Party.MX,
            city="c",
            region="r",
        )
        case = console.open_case("CSV", facility=facility)
        client = console.signed_in("ana")
        answer = client.get("/cases.csv", params={"q": case.external_ref})
        assert answer.status_code == 200
        rows = list(csv.DictReader(io.StringIO(answer.text)))
        assert [r["ref"] for r in rows] == [case.external_ref]
        assert rows[0]["facility"].startswith("'=")


class TestHeaders:
    def test_pages_carry_a_strict_policy(self, console: Console):
        client = console.signed_in("ana")
        page = client.get("/work")
        policy = page.headers["content-security-policy"]
        assert "script-src 'self'" in policy
        assert "default-src 'none'" in policy
        assert "unsafe-inline" not in policy
        assert "frame-ancestors 'none'" in policy
        assert page.headers["x-frame-options"] == "DENY"
        assert page.headers["x-content-type-options"] == "nosniff"
        assert page.headers["cache-control"] == "no-store"

    def test_the_session_cookie_is_http_only_and_same_site(self, console: Console):
        client = console.client()
        answer = client.get("/sign-in")
        cookie = answer.headers["set-cookie"].lower()
        assert f"{SESSION_COOKIE}=" in cookie
        assert "httponly" in cookie
        assert "samesite=lax" in cookie
        assert "secure" not in cookie  # plain http on loopback

    def test_behind_https_the_cookie_is_secure(self, console: Console):
        from fastapi.testclient import TestClient

        from rrm.server import ServerSettings, create_app

        settings = ServerSettings(
            public_url="https://rrm.agency.example", session_secret="k"
        )
        app = create_app(console.seed, console.credentials, settings)
        with TestClient(app, base_url="https://rrm.agency.example") as client:
            answer = client.get("/sign-in")
        cookie = answer.headers["set-cookie"].lower()
        assert "secure" in cookie
        assert answer.headers["strict-transport-security"].startswith("max-age=")


class TestRefusals:
    def test_an_event_the_role_may_not_record_writes_nothing(self, console: Console):
        """Mallory holds the respondent role but is not an officer of the case."""
        case = console.open_case()
        client = console.signed_in("mallory")
        page = client.get(_case_path(case))
        assert page.status_code == 200
        assert "Nothing you may record in this state." in page.text
        before = console.fingerprint()
        answer = client.post(
            f"{_case_path(case)}/events",
            data={
                "csrf_token": csrf_of(page.text),
                "event": "respondent_agrees",
                "role": "respondent",
                "version": str(case.version),
            },
            headers={"Origin": console.url},
        )
        assert answer.status_code == 403
        assert "Refused:" in answer.text
        assert "Nothing was recorded." in answer.text
        assert console.fingerprint() == before

    def test_a_stale_page_is_refused_with_the_reason(self, console: Console):
        case = console.open_case()
        client = console.signed_in("lupe")
        page = client.get(_case_path(case))
        console.seed.fire(
            rrm.FireEvent(
                case_id=case.case_id,
                event="suspend_liquidation",
                actor="ana",
                role="ustr",
            )
        )
        before = console.fingerprint()
        answer = client.post(
            f"{_case_path(case)}/events",
            data={
                "csrf_token": csrf_of(page.text),
                "event": "respondent_agrees",
                "version": str(case.version),
            },
            headers={"Origin": console.url},
        )
        assert answer.status_code == 409
        assert "Refused:" in answer.text
        assert console.fingerprint() == before

    def test_an_extension_needs_a_reason(self, console: Console):
        case = console.open_case()
        client = console.signed_in("sam")
        page = client.get(_case_path(case))
        assert "Extend this deadline" in page.text
        before = console.fingerprint()
        answer = client.post(
            f"{_case_path(case)}/deadlines/respondent_answer/extend",
            data={
                "csrf_token": csrf_of(page.text),
                "new_date": "2025-02-28",
                "reason": "",
                "version": str(case.version),
            },
            headers={"Origin": console.url},
        )
        assert answer.status_code == 422
        assert 'aria-invalid="true"' in answer.text
        assert console.fingerprint() == before

    def test_an_officer_is_not_shown_management_forms(self, console: Console):
        case = console.open_case()
        page = console.signed_in("ana").get(_case_path(case)).text
        assert "Extend this deadline" not in page
        assert "Assign an officer" not in page

    def test_assigning_needs_a_reason(self, console: Console):
        case = console.open_case()
        client = console.signed_in("sam")
        before = console.fingerprint()
        answer = console.post(
            client,
            f"{_case_path(case)}/officers",
            {"officer_id": "eve", "officer_role": "ustr", "reason": " "},
            page=_case_path(case),
        )
        assert answer.status_code == 422
        assert console.fingerprint() == before


class TestPages:
    def test_my_work_lists_a_deadline_due_this_week(self, console: Console):
        case = console.open_case("WEEK", at=console.clock.now() - timedelta(days=7))
        html = console.signed_in("ana").get("/work").text
        assert case.external_ref in html
        assert "Mexico answers whether it will conduct the review" in html

    def test_the_cases_page_filters_sorts_and_pages(self, console: Console):
        made = [console.open_case("PAGE") for _ in range(3)]
        client = console.signed_in("ana")
        html = client.get("/cases", params={"q": "PAGE-", "sort": "reference"}).text
        positions = [html.index(c.external_ref + "<") for c in made]
        assert positions == sorted(positions)
        assert (
            client.get("/cases", params={"cursor": "not a cursor"}).status_code == 422
        )

    def test_a_long_history_shows_the_newest_entries_first(self, console: Console):
        case = console.open_case("LONG")
        for _ in range(50):
            for event, payload in (
                ("suspend_liquidation", {}),
                ("resume_liquidation", {"basis": "USTR notice"}),
            ):
                console.seed.fire(
                    rrm.FireEvent(
                        case_id=case.case_id,
                        event=event,
                        actor="ana",
                        role="ustr",
                        payload=payload,
                    )
                )
        client = console.signed_in("ana")

        def rows(html: str) -> int:
            table = html.split('id="history-table"', 1)[1].split("</table>", 1)[0]
            return table.count("<tr><td>")

        recent = client.get(_case_path(case)).text
        assert rows(recent) == 100
        assert "Show all 101 entries (older 1 hidden)" in recent
        assert "All 101 entries verify against their hashes." in recent
        whole = client.get(_case_path(case), params={"history": "all"}).text
        assert rows(whole) == 101
        assert "Show all" not in whole

    def test_an_unknown_case_is_a_page_not_a_trace(self, console: Console):
        answer = console.signed_in("ana").get("/cases/NO-SUCH-CASE")
        assert answer.status_code == 404
        assert "text/html" in answer.headers["content-type"]
        assert "Traceback" not in answer.text


class TestEveryConsoleRoute:
    def test_every_console_route_is_covered(self, console: Console):
        """The console's routes are those these suites try (a new one must be added)."""
        import re

        from rrm.server.console import manage, pages, signin

        routes = {
            (m, r.path)
            for module in (pages, signin, manage)
            for r in module.router.routes
            for m in getattr(r, "methods", ())
        }
        assert {p for _, p in routes} >= {
            "/work",
            "/cases",
            "/cases.csv",
            "/cases/{case}",
            "/cases/{case}/events",
            "/cases/{case}/deadlines/{key}/{change}",
            "/cases/{case}/officers",
            "/cases/{case}/timeline.svg",
            "/cases/{case}/export",
            "/sign-in",
            "/sign-in/oidc",
            "/sign-in/oidc/callback",
            "/sign-out",
            "/language",
            "/cases/new",
            "/import",
            "/workflows",
            "/alerts",
            "/audit",
        }
        # Every POST is refused without the CSRF token, before anything else.
        client = console.signed_in("admin")
        case = console.open_case()
        values = {"case": case.case_id, "key": "respondent_answer"}

        def fill(m: re.Match[str]) -> str:
            return values.get(m.group(1), "extend")

        for method, path in sorted(routes):
            if method != "POST":
                continue
            concrete = re.sub(r"\{(\w+)(:\w+)?\}", fill, path)
            answer = client.post(concrete, data={}, headers={"Origin": console.url})
            assert answer.status_code == 403, (path, answer.status_code)


def test_officer_list_unchanged(console: Console):
    """The seeded cases keep their officers (a guard for the tests above)."""
    case = console.open_case()
    assert {o.officer_id for o in console.seed.get(case.case_id).officers} == {
        o.officer_id for o in ASSIGNED
    }
    assert case.facility.facility_id == FACILITY.facility_id


class TestBehindAProxy:
    def test_forms_from_the_public_address_are_accepted(self, console: Console):
        """A TLS proxy forwards https://rrm.agency.example to the app's own http."""
        from starlette.requests import Request

        from rrm.server import ServerSettings, create_app
        from rrm.server.console.web import _same_origin

        app = create_app(
            console.seed,
            console.credentials,
            ServerSettings(public_url="https://rrm.agency.example", session_secret="k"),
        )

        def request(origin: str) -> Request:
            return Request(
                {
                    "type": "http",
                    "method": "POST",
                    "scheme": "http",
                    "server": ("10.0.0.5", 8000),
                    "path": "/sign-out",
                    "headers": [
                        (b"host", b"10.0.0.5:8000"),
                        (b"origin", origin.encode()),
                    ],
                    "app": app,
                }
            )

        assert _same_origin(request("https://rrm.agency.example"))
        assert _same_origin(request("http://10.0.0.5:8000"))
        assert not _same_origin(request("https://evil.example"))
        assert not _same_origin(request("http://rrm.agency.example"))


def test_the_api_docs_keep_their_own_headers(console: Console):
    """The console's CSP is for its pages: Swagger UI's page is left as FastAPI makes it."""
    client = console.client()
    docs = client.get("/api/v1/docs")
    assert docs.status_code == 200
    assert "content-security-policy" not in docs.headers
    assert docs.headers["x-content-type-options"] == "nosniff"
