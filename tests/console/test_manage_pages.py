"""The console's management pages: open a case, import, workflows, alerts, audit.

Also the case page of an imported record: the steps it lacks, its dated facts and
their precision, the earlier case a second request follows, a closed case's facts.

Each test runs the whole app (``create_app``) in process with FastAPI's
TestClient over a SQLite file migrated with Alembic; the app's engine enforces the
service's ``AccessPolicy`` and reads a ``FakeClock``. Cases and alerts are seeded
by a second engine on the same database, as a host system would. A refused form
must answer with the engine's reason and leave the database exactly as it was.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

import rrm
from rrm.adapters.sql import migrate
from rrm.adapters.sql.credentials import SqlCredentialStore
from rrm.adapters.sql.engine import make_engine
from rrm.errors import NotificationError
from rrm.server import ServerSettings, create_app
from rrm.service.access import AccessPolicy
from rrm.service.credentials import create_token
from rrm.service.transfer import export_case, import_cases
from rrm.testing import FakeClock

# Monday 2025-01-06 15:00 UTC, the suite's documented start (tests/conftest.py).
START = datetime(2025, 1, 6, 15, 0, tzinfo=UTC)
BASE = "http://testserver"
ORIGIN = {"origin": BASE}
PUBLIC = Path(__file__).resolve().parents[1] / "data" / "public-cases"
CAST = {
    "ana": (("ustr",), ("USTR",)),
    "lupe": (("respondent",), ("SE",)),
    "sam": (("supervisor",), ("OTLA",)),
    "admin": (("admin",), ()),
}
ASSIGNED = (
    rrm.Officer(officer_id="ana", role="ustr", email="ana@ustr.example"),
    rrm.Officer(officer_id="lupe", role="respondent", email="lupe@se.example"),
    rrm.Officer(officer_id="sam", role="supervisor", email="sam@ustr.example"),
)
FACILITY = rrm.Facility(
    facility_id="MX-MAN-1",
    name="Planta Gestión",
    owner="Grupo Gestión",
    country=rrm.Party.MX,
    city="Silao",
    region="Guanajuato",
)
CLAIM = rrm.Claim(basis="annex_23a_legislation", sector_category="manufacturing")
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    """Return the CSRF token of the first form of a page."""
    found = _CSRF.search(html)
    assert found is not None, "the page has no form with a CSRF token"
    return found.group(1)


class Undeliverable:
    """A notifier whose every message bounces for good (alerts dead-letter)."""

    def send(self, message: Any) -> None:
        raise NotificationError("mailbox unavailable", permanent=True)


@dataclass
class Site:
    """The app, the seeding engine and the database under one test."""

    app: Any
    clock: FakeClock
    seed: rrm.CaseEngine
    sql: sa.Engine
    tokens: dict[str, str] = field(default_factory=dict)
    count: int = 0

    def client(self) -> TestClient:
        return TestClient(self.app, base_url=BASE, follow_redirects=False)

    def signed_in(self, name: str) -> TestClient:
        client = self.client()
        page = client.get("/sign-in")
        answer = client.post(
            "/sign-in",
            data={"csrf_token": csrf_of(page.text), "token": self.tokens[name]},
            headers=ORIGIN,
        )
        assert answer.status_code == 303, answer.text
        return client

    def post(
        self,
        client: TestClient,
        path: str,
        data: dict[str, Any] | None = None,
        *,
        page: str = "/work",
        **kwargs: Any,
    ) -> httpx.Response:
        token = csrf_of(client.get(page).text)
        return client.post(
            path, data={"csrf_token": token, **(data or {})}, headers=ORIGIN, **kwargs
        )

    def open_case(self, prefix: str = "MAN") -> rrm.Case:
        self.count += 1
        return self.seed.open_case(
            rrm.OpenCase(
                workflow="usmca-31a",
                initiation="request",
                complainant="US",
                respondent="MX",
                facility=FACILITY,
                claim=CLAIM,
                officers=ASSIGNED,
                external_ref=f"{prefix}-{self.count}",
                actor="ana",
                role="ustr",
            )
        )

    def dead_alerts(self) -> list[Any]:
        """Open a case, let a week pass and bounce its first reminders."""
        case = self.open_case("ALR")
        self.clock.advance(timedelta(days=4))
        self.seed.tick()
        found = self.seed.alerts(case_id=case.case_id)
        assert found
        assert {a.status.value for a in found} == {"dead"}
        return found

    def fingerprint(self) -> dict[str, Any]:
        """What any write would change: row counts, case versions, alert rows."""
        with self.sql.connect() as conn:
            tables = sorted(
                t
                for t in sa.inspect(conn).get_table_names()
                if t.startswith("rrm_") and t != "rrm_console_session"
            )
            found: dict[str, Any] = {
                t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one()
                for t in tables
            }
            found["versions"] = sorted(
                conn.execute(sa.text("SELECT case_id, version FROM rrm_case")).all()
            )
            found["alerts"] = sorted(
                map(repr, conn.execute(sa.text("SELECT * FROM rrm_alert")).all())
            )
        return found


@pytest.fixture(name="site")
def _site(tmp_path: Path, workflows: rrm.Workflows) -> Any:
    url = f"sqlite:///{tmp_path}/c.db"
    sql = make_engine(url)
    migrate.upgrade(sql)
    clock = FakeClock(START)
    settings = ServerSettings(policy=AccessPolicy())
    engine = rrm.bootstrap(
        url, clock=clock, workflows=workflows, authorizer=settings.policy
    )
    seed = rrm.bootstrap(
        url, clock=clock, workflows=workflows, notifier=Undeliverable()
    )
    credentials = SqlCredentialStore(make_engine(url))
    site = Site(
        app=create_app(engine, credentials, settings), clock=clock, seed=seed, sql=sql
    )
    for name, (roles, agencies) in CAST.items():
        _, site.tokens[name] = create_token(
            credentials,
            principal=name,
            roles=roles,
            agencies=agencies,
            created_by="t",
            now=clock.now(),
        )
    yield site
    sql.dispose()


def _open_form(ref: str, **changes: str) -> dict[str, str]:
    form = {
        "workflow": "usmca-31a",
        "initiation": "request",
        "role": "ustr",
        "external_ref": ref,
        "complainant": "US",
        "respondent": "MX",
        "facility.facility_id": "MX-NEW-1",
        "facility.name": "Planta Nueva",
        "facility.owner": "Grupo Nuevo",
        "facility.country": "MX",
        "facility.city": "Ramos Arizpe",
        "facility.region": "Coahuila",
        "facility.sector": "auto parts",
        "claim.basis": "annex_23a_legislation",
        "claim.sector_category": "manufacturing",
        "claim.legal_provisions": "LFT art. 390 Bis\nLFT art. 400 Bis",
        "claim.alleged_conduct_from": "2024-11-01",
        "petitioners[0].name": "Sindicato Independiente",
        "petitioners[0].confidential": "on",
        "officers[0].officer_id": "ana",
        "officers[0].role": "ustr",
        "officers[0].email": "ana@ustr.example",
        "reason": "Request sent to Mexico today.",
    }
    form.update(changes)
    return form


class TestOpenCase:
    def test_the_form_offers_workflows_openings_and_the_officers_roles(self, site):
        """The form lists each workflow's openings and pre-fills the officer as the signed-in one."""
        page = site.signed_in("ana").get("/cases/new")
        assert page.status_code == 200
        assert 'aria-current="page"' in page.text
        assert '<optgroup label="usmca-31a v2">' in page.text
        assert '<option value="request"' in page.text
        assert (
            'id="open-officers-0-officer_id" name="officers[0].officer_id" type="text" value="ana"'
            in page.text
        )
        for ident in re.findall(
            r'<(?:input|select|textarea)[^>]*\bid="([^"]+)"', page.text
        ):
            assert f'<label for="{ident}"' in page.text, ident

    def test_a_case_opened_through_the_form(self, site):
        """A posted form opens the case as the officer and shows its page."""
        client = site.signed_in("ana")
        answer = site.post(client, "/cases/new", _open_form("NEW-1"), page="/cases/new")
        assert answer.status_code == 303, answer.text
        case = site.seed.get("NEW-1")
        assert answer.headers["location"] == f"/cases/{case.case_id}"
        assert case.state == "review_requested"
        assert [(o.officer_id, o.role) for o in case.officers] == [("ana", "ustr")]
        assert case.petitioners[0].confidential
        assert case.attributes["claim"]["legal_provisions"] == [
            "LFT art. 390 Bis",
            "LFT art. 400 Bis",
        ]
        entry = site.seed.history(case.case_id)[0]
        assert (entry.actor, entry.role) == ("ana", "ustr")
        shown = client.get(answer.headers["location"])
        assert "Case NEW-1 was opened." in shown.text

    def test_a_role_the_officer_does_not_hold_is_refused(self, site):
        """Opening in a role not held answers 403 with the engine's reason; no case is written."""
        client = site.signed_in("ana")
        before = site.fingerprint()
        form = _open_form("NEW-2", initiation="petition", role="dol")
        answer = site.post(client, "/cases/new", form, page="/cases/new")
        assert answer.status_code == 403
        assert 'role="alert"' in answer.text
        assert "you do not hold this role" in answer.text
        assert "Nothing was recorded." in answer.text
        assert 'value="NEW-2"' in answer.text  # the officer's values are kept
        assert site.fingerprint() == before
        with pytest.raises(rrm.CaseNotFound):
            site.seed.get("NEW-2")

    def test_an_invalid_field_is_marked_on_the_form(self, site):
        """A field the engine rejects is marked invalid and described by its message."""
        client = site.signed_in("ana")
        before = site.fingerprint()
        form = _open_form("NEW-3", **{"facility.name": ""})
        answer = site.post(client, "/cases/new", form, page="/cases/new")
        assert answer.status_code == 422
        assert re.search(
            r'id="open-facility-name"[^>]*aria-invalid="true" '
            r'aria-describedby="err-open-facility-name"',
            answer.text,
        )
        assert 'id="err-open-facility-name"' in answer.text
        assert site.fingerprint() == before


def _export_document() -> dict[str, Any]:
    """A case exported (rrm-case/1) from another RRM, with one event recorded."""
    clock = FakeClock(START - timedelta(days=10))
    other = rrm.bootstrap("sqlite://", clock=clock, upgrade=True)
    case = other.open_case(
        rrm.OpenCase(
            workflow="usmca-31a",
            initiation="request",
            complainant="US",
            respondent="MX",
            facility=FACILITY,
            claim=CLAIM,
            officers=(rrm.Officer(officer_id="ana", role="ustr"),),
            external_ref="EXP-7",
            actor="ana",
            role="ustr",
        )
    )
    clock.advance(timedelta(days=1))
    other.fire(
        rrm.FireEvent(
            case_id=case.case_id,
            event="respondent_agrees",
            actor="lupe",
            role="respondent",
        )
    )
    return export_case(other, case.case_id)


def _uploads() -> list[tuple[str, tuple[str, bytes, str]]]:
    history = (PUBLIC / "US-MX-2021-01.json").read_bytes()
    return [
        (
            "files",
            ("exp-7.json", json.dumps(_export_document()).encode(), "application/json"),
        ),
        ("files", ("broken.json", b'{"format": "rrm-case/1", ', "application/json")),
        ("files", ("US-MX-2021-01.json", history, "application/json")),
        ("files", ("list.json", b"[1, 2]", "application/json")),
    ]


class TestImport:
    def test_good_files_import_and_a_broken_one_is_reported(self, site):
        """Each file is imported on its own; a file that is not JSON gets its own row."""
        client = site.signed_in("admin")
        answer = site.post(client, "/import", page="/import", files=_uploads())
        assert answer.status_code == 200, answer.text
        assert "<html" in answer.text  # without JavaScript: the whole page
        imported = site.seed.get("EXP-7")
        assert imported.state == "respondent_reviewing"
        assert site.seed.get("US-MX-2021-01").workflow_id == "usmca-31a"
        rows = re.findall(
            r"<tr>\s*<th scope=\"row\">(.*?)</tr>", answer.text, re.DOTALL
        )
        assert len(rows) == 4
        assert "exp-7.json" in rows[0]
        assert f'href="/cases/{imported.case_id}"' in rows[0]
        assert "Imported" in rows[0]
        assert "broken.json" in rows[1]
        assert "Refused" in rows[1]
        assert "not JSON" in rows[1]
        assert "Imported" in rows[2]
        assert "not one case document" in rows[3]
        assert "4 files: 2 imported, 0 unchanged, 2 refused." in answer.text

    def test_the_same_file_twice_changes_nothing(self, site):
        """A case already imported with the same history is reported unchanged."""
        client = site.signed_in("admin")
        upload = _uploads()[2:3]
        site.post(client, "/import", page="/import", files=upload)
        before = site.fingerprint()
        again = site.post(client, "/import", page="/import", files=upload)
        assert "Already here, unchanged" in again.text
        assert site.fingerprint() == before

    def test_an_htmx_upload_gets_only_the_results(self, site):
        """With HX-Request the answer is the results fragment, CSRF token in the header."""
        client = site.signed_in("admin")
        page = client.get("/import")
        assert 'hx-post="/import"' in page.text
        assert '<progress id="import-progress"' in page.text
        answer = client.post(
            "/import",
            files=_uploads()[:2],
            headers={
                **ORIGIN,
                "HX-Request": "true",
                "X-CSRF-Token": csrf_of(page.text),
            },
        )
        assert answer.status_code == 200
        assert "<html" not in answer.text
        assert 'id="import-table"' in answer.text
        assert "exp-7.json" in answer.text

    def test_too_many_files_are_refused_in_the_fragment(self, site):
        """Over 200 files: htmx still gets a 2xx fragment, with the refusal and nothing written."""
        client = site.signed_in("admin")
        page = client.get("/import")
        before = site.fingerprint()
        many = [
            ("files", (f"f{i}.json", b"{}", "application/json")) for i in range(201)
        ]
        answer = client.post(
            "/import",
            files=many,
            headers={
                **ORIGIN,
                "HX-Request": "true",
                "X-CSRF-Token": csrf_of(page.text),
            },
        )
        assert answer.status_code == 200
        assert 'role="alert"' in answer.text
        assert "at most 200 files" in answer.text
        assert site.fingerprint() == before

    def test_an_officer_who_is_not_an_administrator_may_not_import(self, site):
        """Import is for administrators: the page and the upload are refused, nothing written."""
        client = site.signed_in("sam")
        assert client.get("/import").status_code == 403
        before = site.fingerprint()
        answer = site.post(client, "/import", files=_uploads()[:1])
        assert answer.status_code == 403
        assert "may not import cases" in answer.text
        assert 'id="import-form"' not in answer.text
        assert site.fingerprint() == before


# An imported request for review, its day approximate, whose record stops after a
# legitimation vote known only by its month: both of Mexico's deadlines (2025-01-16
# and 2025-02-20) are past due, neither met nor lapsed in the record.
SILENT = {
    "format": "rrm-history/1",
    "case": {
        "external_ref": "SIL-1",
        "workflow": "usmca-31a",
        "initiation": "request",
        "complainant": "US",
        "respondent": "MX",
        "facility": {
            "facility_id": "MX-S1",
            "name": "Planta S",
            "owner": "G",
            "country": "MX",
        },
        "claim": {
            "basis": "annex_23a_legislation",
            "sector_category": "manufacturing",
        },
        "officers": [{"officer_id": "ana", "role": "ustr"}],
    },
    "events": [
        {
            "at": "2025-01-06T17:00:00+00:00",
            "event": "request_for_review",
            "role": "ustr",
            "payload": {"date_precision": "approx"},
        },
        {
            "at": "2025-01-08T17:00:00+00:00",
            "event": "legitimation_vote",
            "role": "ustr",
            "payload": {
                "on": "2024-11-01",
                "result": "rejected",
                "date_precision": "month",
            },
        },
    ],
}


def _section(html: str, ident: str) -> str:
    """The element that opens with ``id="<ident>"``, up to the end of its section."""
    assert f'id="{ident}"' in html, ident
    return html.split(f'id="{ident}"', 1)[1].split("</section>", 1)[0]


def _import_silent(site: Site) -> tuple[rrm.Case, rrm.Case]:
    """Import SIL-1 on 2025-03-03, then open the second request that follows it."""
    site.clock.set(datetime(2025, 3, 3, 15, 0, tzinfo=UTC))
    report = import_cases(site.seed, [SILENT])
    assert report.cases[0].unknown_steps == ("respondent_answer", "respondent_review")
    earlier = site.seed.get("SIL-1")
    second = site.seed.open_case(
        rrm.OpenCase(
            workflow="usmca-31a",
            initiation="request",
            complainant="US",
            respondent="MX",
            facility=rrm.Facility(
                facility_id="MX-S1", name="Planta S", owner="G", country=rrm.Party.MX
            ),
            claim=CLAIM,
            officers=ASSIGNED,
            external_ref="SIL-2",
            actor="ana",
            role="ustr",
            payload={"follows": "SIL-1"},
        )
    )
    return earlier, second


class TestImportedCasePage:
    def test_the_steps_the_record_lacks_are_a_warning_and_marked(self, site):
        """Past-due steps the import could not tell are listed, with no lapse taken."""
        case, _ = _import_silent(site)
        page = site.signed_in("ana").get(f"/cases/{case.case_id}")
        assert page.status_code == 200
        warning = _section(page.text, "unknown-steps")
        assert "Steps missing from the imported record" in warning
        assert "RRM took no lapse action on them" in warning
        rows = _section(page.text, "unknown-table").split("</tr>")
        assert '<time datetime="2025-01-16">Jan 16, 2025</time>' in rows[1]
        assert "Mexico answers whether it will conduct the review" in rows[1]
        assert "<td>respondent</td>" in rows[1]
        assert '<time datetime="2025-02-20">Feb 20, 2025</time>' in rows[2]
        assert "Mexico completes its review" in rows[2]
        # Both open deadlines are marked; the case did not move.
        deadlines = _section(page.text, "deadlines-h")
        assert deadlines.count('class="deadline step-unknown"') == 2
        assert deadlines.count("step missing from the record") == 2
        assert site.seed.get(case.case_id).state == "review_requested"
        assert 'id="remediation-due-unknown"' not in page.text

    def test_a_fact_known_by_its_month_says_so(self, site):
        """The dated facts table and the history show the date as precise as known."""
        case, _ = _import_silent(site)
        client = site.signed_in("ana")
        page = client.get(f"/cases/{case.case_id}")
        facts = _section(page.text, "facts-h")
        assert "Dated facts" in facts
        assert "<td>2024-11 (month only)</td>" in facts
        assert "A legitimation vote on the collective bargaining agreement" in facts
        assert "result: rejected" in facts
        history = _section(page.text, "history-table")
        row = next(r for r in history.split("<tr>") if "legitimation_vote" in r)
        assert "Date of the fact: 2024-11 (month only)" in row
        first = next(r for r in history.split("<tr>") if "request_for_review" in r)
        assert "Date as recorded: 2025-01-06 (approximate)" in first
        client.cookies.set("rrm_lang", "es")
        spanish = client.get(f"/cases/{case.case_id}").text
        assert "Pasos que faltan en el historial importado" in spanish
        assert "<td>2024-11 (solo el mes)</td>" in spanish
        assert "Fecha del hecho: 2024-11 (solo el mes)" in spanish
        assert "Fecha según el registro: 2025-01-06 (aproximada)" in spanish
        assert "paso ausente del historial" in spanish

    def test_a_second_request_links_the_case_it_follows(self, site):
        """The follow-up case names the earlier one on the facility, with its link."""
        earlier, second = _import_silent(site)
        page = site.signed_in("ana").get(f"/cases/{second.case_id}")
        assert page.status_code == 200
        follows = page.text.split('id="follows">', 1)[1].split("</dd>", 1)[0]
        assert f'<a href="/cases/{earlier.case_id}">SIL-1</a>' in follows
        assert 'id="unknown-steps"' not in page.text
        assert 'id="facts-h"' not in page.text
        assert (
            'id="follows"'
            not in site.signed_in("ana").get(f"/cases/{earlier.case_id}").text
        )

    def test_an_unknown_remediation_end_date_is_noticed(self, site):
        """A plan agreed without its end date: the page says no completion clock runs."""
        case = site.open_case("REM")
        for event, role in (
            ("respondent_finds_denial", "respondent"),
            ("remediation_plan_agreed", "ustr"),
        ):
            site.seed.fire(
                rrm.FireEvent(case_id=case.case_id, event=event, actor="ana", role=role)
            )
        page = site.signed_in("ana").get(f"/cases/{case.case_id}")
        notice = page.text.split('id="remediation-due-unknown">', 1)[1]
        notice = notice.split("</div>", 1)[0]
        assert "End date of the remediation unknown." in notice
        assert "no completion deadline runs" in notice


class TestClosedCase:
    def _closed(self, site: Site) -> rrm.Case:
        case = site.open_case("CLO")
        return site.seed.fire(
            rrm.FireEvent(
                case_id=case.case_id,
                event="request_withdrawn",
                actor="ana",
                role="ustr",
            )
        )

    def test_a_closed_case_offers_its_dated_facts(self, site, workflows):
        """The closed case stays shown closed and offers a form for each dated fact."""
        case = self._closed(site)
        page = site.signed_in("ana").get(f"/cases/{case.case_id}")
        assert page.status_code == 200
        actions = _section(page.text, "actions-h")
        assert "(closed)" in actions.split('id="closed-facts">', 1)[1].split("</p>")[0]
        assert "It still accepts the dated facts below" in actions
        assert "nothing more may be recorded" not in actions
        spec = workflows.get("usmca-31a", case.workflow_version)
        forms = re.findall(r'name="event" value="([^"]+)"', actions)
        assert forms == list(spec.facts)
        assert "The case stays in <code>withdrawn</code>" in actions
        assert "Moves the case to" not in actions

    def test_a_fact_recorded_from_the_form_keeps_its_fields(self, site):
        """Recording a fact on a closed case keeps its date and details; it stays closed."""
        case = self._closed(site)
        client = site.signed_in("ana")
        answer = site.post(
            client,
            f"/cases/{case.case_id}/events",
            {
                "event": "legitimation_vote",
                "role": "ustr",
                "version": str(case.version),
                "p.on": "2025-02-14",
                "p.result": "approved",
                "reason": "Reported by the union.",
            },
            page=f"/cases/{case.case_id}",
        )
        assert answer.status_code == 303, answer.text
        after = site.seed.get(case.case_id)
        assert after.state == "withdrawn"
        page = client.get(f"/cases/{case.case_id}")
        facts = _section(page.text, "facts-h")
        assert '<time datetime="2025-02-14">Feb 14, 2025</time>' in facts
        assert "result: approved" in facts

    def test_an_officer_who_may_record_no_fact_sees_who_may(self, site):
        """Mexico's officer records no fact: the page says so and lists who may."""
        case = self._closed(site)
        page = site.signed_in("lupe").get(f"/cases/{case.case_id}")
        actions = _section(page.text, "actions-h")
        assert "you may record none of the dated facts it still accepts" in actions
        assert 'name="event"' not in actions
        assert "What others may record" in actions
        assert "A union representation election was held" in actions


class TestWorkflows:
    def test_the_list_shows_every_loaded_version(self, site, workflows):
        """Every loaded workflow version is listed with its short hash and a link."""
        page = site.signed_in("ana").get("/workflows")
        assert page.status_code == 200
        for spec in workflows.specs.values():
            assert f'href="/workflows/{spec.workflow_id}/{spec.version}"' in page.text
            assert spec.sha256[:12] in page.text

    def test_a_workflow_marks_its_nominal_deadlines(self, site, workflows):
        """A deadline resting on recalled text carries the NOMINAL mark; the diagram is text."""
        spec = workflows.get("usmca-31a", 1)
        nominal = next(d for d in spec.deadlines.values() if d.nominal)
        page = site.signed_in("ana").get("/workflows/usmca-31a/1")
        assert page.status_code == 200
        table = page.text.split('id="deadlines-table"', 1)[1].split("</table>", 1)[0]
        row = next(r for r in table.split("<tr>") if f"<code>{nominal.key}</code>" in r)
        assert ">NOMINAL</span>" in row
        assert "stateDiagram-v2" in page.text
        assert 'id="text-diagram"' in page.text
        assert "<script" not in page.text.split("<body", 1)[1]

    def test_a_workflow_lists_its_dated_facts(self, site, workflows):
        """Version 2 lists each dated fact with its roles, fields, source and evidence."""
        spec = workflows.get("usmca-31a", 2)
        assert spec.facts
        client = site.signed_in("ana")
        page = client.get("/workflows/usmca-31a/2")
        assert page.status_code == 200
        table = page.text.split('id="facts-table"', 1)[1].split("</table>", 1)[0]
        rows = table.split("<tr>")[2:]
        assert len(rows) == len(spec.facts)
        for fact, row in zip(spec.facts.values(), rows, strict=True):
            assert f"<code>{fact.event}</code><br>{fact.label}" in row
            assert f"<td>{', '.join(fact.roles)}</td>" in row
            assert fact.citation in row
            assert ("Verified" in row) == (fact.evidence.value == "V")
            assert ("Secondary source" in row) == (fact.evidence.value == "S")
        vote = rows[list(spec.facts).index("legitimation_vote")]
        assert "<code>on</code>, <code>result</code>" in vote
        assert 'id="facts-table"' not in client.get("/workflows/usmca-31a/1").text

    def test_an_unknown_version_is_not_found(self, site):
        """A version that is not loaded answers 404 with the engine's reason."""
        client = site.signed_in("ana")
        assert client.get("/workflows/usmca-31a/99").status_code == 404
        latest = client.get("/workflows/usmca-31a")
        assert latest.headers["location"] == "/workflows/usmca-31a/2"


class TestAlerts:
    def test_the_outbox_lists_alerts_with_their_status_in_words(self, site):
        """Alerts show recipient, case, status in words and the acknowledge button."""
        alerts = site.dead_alerts()
        page = site.signed_in("ana").get("/alerts", params={"status": "dead"})
        assert page.status_code == 200
        assert "Undeliverable" in page.text
        assert "mailbox unavailable" in page.text
        assert alerts[0].case_id in page.text
        assert "/acknowledge" in page.text
        assert "/retry" not in page.text  # only administrators retry

    def test_an_unknown_case_filter_is_marked(self, site):
        """Filtering by a case that does not exist marks the field with the reason."""
        page = site.signed_in("ana").get("/alerts", params={"case": "NOPE-1"})
        assert page.status_code == 404
        assert 'aria-describedby="err-alerts-case"' in page.text

    def test_retry_is_refused_to_an_officer_who_is_not_an_administrator(self, site):
        """A non-administrator's retry answers 403 with the reason and changes nothing."""
        alert = site.dead_alerts()[0]
        client = site.signed_in("sam")
        before = site.fingerprint()
        answer = site.post(
            client,
            f"/alerts/{alert.alert_id}/retry",
            {"status": "dead"},
            page="/alerts",
        )
        assert answer.status_code == 403
        assert 'role="alert"' in answer.text
        assert "may not retry an alert" in answer.text
        assert site.fingerprint() == before

    def test_an_administrator_queues_a_dead_alert_again(self, site):
        """An administrator's retry puts the alert back in the queue."""
        alert = site.dead_alerts()[0]
        client = site.signed_in("admin")
        page = client.get("/alerts")
        assert "/retry" in page.text
        answer = site.post(
            client,
            f"/alerts/{alert.alert_id}/retry",
            {"status": "dead"},
            page="/alerts",
        )
        assert answer.status_code == 303
        assert answer.headers["location"] == "/alerts?status=dead"
        again = next(a for a in site.seed.alerts() if a.alert_id == alert.alert_id)
        assert again.status.value == "pending"
        assert "The alert was queued again." in client.get("/alerts").text

    def test_the_recipient_acknowledges_an_alert(self, site):
        """Acknowledging records who saw the alert and when; the button goes away."""
        alert = next(a for a in site.dead_alerts() if a.recipient_id == "ana")
        client = site.signed_in("ana")
        answer = site.post(
            client, f"/alerts/{alert.alert_id}/acknowledge", page="/alerts"
        )
        assert answer.status_code == 303
        acked = next(a for a in site.seed.alerts() if a.alert_id == alert.alert_id)
        assert acked.acknowledged_by == "ana"
        assert acked.acknowledged_at == site.clock.now()
        page = client.get("/alerts", params={"case": alert.case_id})
        assert "Acknowledged by ana" in page.text


class TestAudit:
    def test_verify_shows_an_intact_chain(self, site):
        """A supervisor verifies a case by reference: its chain is intact."""
        case = site.open_case()
        client = site.signed_in("sam")
        page = client.get("/audit")
        assert page.status_code == 200
        assert "/audit/verify-all" not in page.text  # administrators only
        answer = site.post(
            client, "/audit/verify", {"case": case.external_ref}, page="/audit"
        )
        assert answer.status_code == 200
        assert "Chain intact" in answer.text
        assert "1 case histories intact." in answer.text

    def test_every_case_is_verified_by_an_administrator(self, site):
        """Verify every case lists each case's chain."""
        cases = [site.open_case() for _ in range(3)]
        client = site.signed_in("admin")
        answer = site.post(client, "/audit/verify-all", page="/audit")
        assert answer.status_code == 200
        for case in cases:
            assert f'href="/cases/{case.case_id}"' in answer.text
        assert "3 case histories intact." in answer.text

    def test_an_anchor_shows_the_newest_hash(self, site):
        """Taking an anchor shows the case, entry and hash to keep elsewhere."""
        case = site.open_case()
        client = site.signed_in("admin")
        answer = site.post(
            client, "/audit/anchor", {"case": case.case_id}, page="/audit"
        )
        assert answer.status_code == 200
        anchor = site.seed.anchor(case.case_id)
        assert anchor.hash in answer.text
        assert f"<dd>{anchor.seq}</dd>" in answer.text

    def test_a_broken_chain_says_what_is_wrong(self, site):
        """A deleted newest entry: the audit page names the row the history contradicts."""
        case = site.open_case()
        site.seed.fire(
            rrm.FireEvent(
                case_id=case.case_id,
                event="respondent_agrees",
                actor="mx",
                role="respondent",
            )
        )
        with site.sql.begin() as conn:
            conn.execute(
                sa.text("DELETE FROM rrm_case_event WHERE case_id = :c AND seq = 2"),
                {"c": case.case_id},
            )
        client = site.signed_in("sam")
        answer = site.post(
            client, "/audit/verify", {"case": case.external_ref}, page="/audit"
        )
        assert answer.status_code == 200
        assert "Chain broken" in answer.text
        assert "case row says version 2" in answer.text

    def test_an_unknown_case_is_marked(self, site):
        """Verifying a case that does not exist marks the field with the reason."""
        client = site.signed_in("sam")
        answer = site.post(client, "/audit/verify", {"case": "NOPE-9"}, page="/audit")
        assert answer.status_code == 404
        assert 'aria-describedby="err-verify-case"' in answer.text

    def test_an_officer_without_audit_rights_is_refused(self, site):
        """The audit pages need a supervisor or an administrator."""
        client = site.signed_in("ana")
        assert client.get("/audit").status_code == 403
        answer = site.post(client, "/audit/verify-all")
        assert answer.status_code == 403


class TestCsrf:
    @pytest.mark.parametrize(
        "path",
        [
            "/cases/new",
            "/import",
            "/alerts/{alert}/retry",
            "/alerts/{alert}/acknowledge",
            "/audit/verify",
            "/audit/verify-all",
            "/audit/anchor",
        ],
    )
    def test_a_post_without_the_token_is_refused(self, site, path):
        """Every form POST without the session's CSRF token answers 403 and writes nothing."""
        alert = site.dead_alerts()[0]
        case = site.seed.get(alert.case_id)
        client = site.signed_in("admin")
        client.get("/work")  # the session has a token; the form does not send it
        before = site.fingerprint()
        data = {**_open_form("CSRF-1"), "case": case.case_id}
        answer = client.post(
            path.format(alert=alert.alert_id),
            data=data,
            files=_uploads()[:1] if path == "/import" else None,
            headers=ORIGIN,
        )
        assert answer.status_code == 403
        assert "did not come from this site" in answer.text
        assert site.fingerprint() == before
