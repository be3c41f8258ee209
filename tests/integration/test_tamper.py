"""The tamper suite (issue #12): every derived column edited in SQL is named.

Two cases are built through the engine with the fake clock: RICH-1, a 31-A
request (US→MX) with three officers (one assigned later, by an
``officers_assigned`` entry), two petitioners (one confidential), a facility with
city, region and sector, and deadlines in every status (open, paused, extended,
met, cancelled, and lapsed by the sweep, so ``deadline_missed`` entries exist);
and DOR-1, opened after it on another facility and taken to a panel's
denial-of-rights determination (an ``rrm_determination`` row).

Each test then makes ONE edit with the database's own client (``sqlite3``, or
``psycopg`` in the test's PostgreSQL schema), as an insider with write access
would, and expects ``rrm audit verify --json`` to exit 1 and name the table and
the field, with the stored value in the message (never a petitioner's name or
contact), and every case the edit did not touch to verify whole. Every read
command runs on the edited database before the verification and again after it
(once the case is in the damage register): none may end in a traceback.

An edit verify does not name is an xfail (strict, ``NotNamed``) saying why; one
that makes an untouched case look damaged too, an xfail (``Collateral``).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import psycopg
import pytest

import rrm
from rrm.adapters.sql.tables import DEADLINE
from rrm.cli import main

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

RICH_FACILITY = rrm.Facility(
    facility_id="MX-RICH",
    name="Planta Rica",
    owner="Grupo Rico",
    country=rrm.Party.MX,
    city="Silao",
    region="Guanajuato",
    sector="automotive",
)
DOR_FACILITY = rrm.Facility(
    facility_id="MX-DOR",
    name="Planta Dor",
    owner="Grupo Dor",
    country=rrm.Party.MX,
    city="Puebla",
    region="Puebla",
    sector="textiles",
)
# The confidential petitioner's name and contact: never in a verify message.
SECRET_NAME = "Trabajadora Confidencial"
SECRET_CONTACT = "+52 55 5555 0101"


# --------------------------------------------------------------------- the data


@dataclass(frozen=True)
class World:
    """The two cases, by id: ``rich`` (RICH-1) and ``dor`` (DOR-1)."""

    db_url: str
    rich: str
    dor: str


def _officer(officer_id: str, role: str, name: str, language: str, zone: str):
    return rrm.Officer(
        officer_id=officer_id,
        role=role,
        name=name,
        email=f"{officer_id}@{role}.example",
        language=language,
        timezone=zone,
    )


def build(engine: rrm.CaseEngine, clock: Any) -> tuple[rrm.Case, rrm.Case]:
    """Build RICH-1 and DOR-1 (see the module docstring); return both as stored."""
    rich = engine.open_case(
        rrm.OpenCase(
            workflow="usmca-31a",
            initiation="request",
            complainant="US",
            respondent="MX",
            facility=RICH_FACILITY,
            claim=rrm.Claim(
                basis="annex_23a_legislation",
                sector_category="manufacturing",
                legal_provisions=("LFT art. 390 Bis",),
                alleged_conduct_from=date(2024, 11, 1),
            ),
            petitioners=(
                rrm.Petitioner(
                    name="Sindicato Independiente", contact="sindicato@example.org"
                ),
                rrm.Petitioner(
                    name=SECRET_NAME, confidential=True, contact=SECRET_CONTACT
                ),
            ),
            officers=(
                _officer("ana", "ustr", "Ana Ruiz", "en", "America/New_York"),
                _officer("luis", "dol", "Luis Pérez", "es", "America/Mexico_City"),
            ),
            external_ref="RICH-1",
            actor="ana",
            role="ustr",
        )
    )
    cid = rich.case_id
    who = {"case_id": cid, "actor": "ana", "role": "ustr"}

    def fire(event: str, role: str, **payload: Any) -> rrm.Case:
        return engine.fire(
            rrm.FireEvent(
                case_id=cid, event=event, actor="ana", role=role, payload=payload
            )
        )

    clock.advance(timedelta(days=1))
    engine.assign(
        rrm.AssignOfficers(
            assign=(
                _officer("carla", "supervisor", "Carla Gómez", "es", "America/Chicago"),
            ),
            reason="supervision",
            **who,
        )
    )
    clock.advance(timedelta(days=1))
    engine.pause(rrm.PauseDeadline(key="respondent_review", reason="closure", **who))
    clock.advance(timedelta(days=2))
    engine.resume(rrm.ResumeDeadline(key="respondent_review", reason="open", **who))
    # Past the 10-day answer: the sweep records deadline_missed and advances the
    # case to panel_eligible (the review deadline is cancelled).
    clock.advance(timedelta(days=8))
    assert engine.tick().lapsed == 1
    clock.advance(timedelta(days=1))
    fire("respondent_finds_denial", "respondent")
    clock.advance(timedelta(days=1))
    fire(
        "remediation_plan_agreed",
        "ustr",
        due="2025-06-30",
        milestones=[
            {"label": "legitimation vote", "due": "2025-02-20"},
            {"label": "new union registered", "due": "2025-03-20"},
            {"label": "back pay", "due": "2025-04-15"},
            {"label": "training", "due": "2025-02-25"},
        ],
    )
    clock.advance(timedelta(days=1))
    fire("milestone_met", "ustr", milestone=1)
    clock.advance(timedelta(days=1))
    engine.pause(
        rrm.PauseDeadline(key="remediation_milestone.2", reason="strike", **who)
    )
    clock.advance(timedelta(days=1))
    engine.extend(
        rrm.ExtendDeadline(
            key="remediation_milestone.3",
            new_date=date(2025, 5, 15),
            reason="agreed",
            **who,
        )
    )
    # Past milestone 4: it lapses (deadline_missed) and stays open, overdue.
    clock.set(datetime(2025, 2, 27, 15, 0, tzinfo=UTC))
    assert engine.tick().lapsed == 1

    dor = engine.open_case(
        rrm.OpenCase(
            workflow="usmca-31a",
            initiation="request",
            complainant="US",
            respondent="MX",
            facility=DOR_FACILITY,
            claim=rrm.Claim(
                basis="annex_23a_legislation", sector_category="manufacturing"
            ),
            external_ref="DOR-1",
            actor="ana",
            role="ustr",
        )
    )
    for event, role in (
        ("respondent_declines", "respondent"),
        ("panel_requested", "ustr"),
        ("panel_constituted", "secretariat"),
        ("panel_finds_denial", "panel"),
    ):
        clock.advance(timedelta(hours=2))
        engine.fire(
            rrm.FireEvent(case_id=dor.case_id, event=event, actor="ana", role=role)
        )
    engine.tick()
    return engine.get(cid), engine.get(dor.case_id)


@pytest.fixture(name="world")
def _world(engine, clock, db_url) -> World:
    rich, dor = build(engine, clock)
    return World(db_url=db_url, rich=rich.case_id, dor=dor.case_id)


@pytest.fixture(name="run")
def _run(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Callable[..., tuple[int, str, str]]:
    """Run the CLI in-process; an escaping exception is returned as its traceback."""
    for name in ("RRM_DB", "RRM_CONFIG", "RRM_VERBOSE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.chdir(tmp_path)  # no ./rrm.toml of the developer's

    def run(*args: str) -> tuple[int, str, str]:
        try:
            code = main(list(args))
        except Exception:  # noqa: BLE001 - what a user would see as a traceback
            code = -1
            print(traceback.format_exc())
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


# ------------------------------------------------------- the database's own client


@dataclass(frozen=True)
class At:
    """An instant to write, as each client needs it."""

    iso: str


@dataclass(frozen=True)
class Day:
    """A calendar date to write, as each client needs it."""

    iso: str


class Sql:
    """Statements through ``sqlite3`` or ``psycopg``; write ``?`` for parameters."""

    def __init__(self, cursor: Any, *, sqlite: bool) -> None:
        self._cursor = cursor
        self.sqlite = sqlite

    def __call__(self, statement: str, *args: Any) -> list[tuple[Any, ...]]:
        style = "?" if self.sqlite else "%s"
        self._cursor.execute(
            statement.replace("?", style), tuple(self._value(a) for a in args)
        )
        if self._cursor.description:
            return list(self._cursor.fetchall())
        # An edit that touches no row would pass for an undetected one.
        assert self._cursor.rowcount >= 1, statement
        return []

    @property
    def as_json(self) -> str:
        """The placeholder of a JSON value (text in SQLite, ``json`` in PostgreSQL)."""
        return "?" if self.sqlite else "CAST(? AS JSON)"

    def _value(self, value: Any) -> Any:
        # SQLite holds instants as naive UTC text and dates as ISO text.
        if isinstance(value, At):
            instant = datetime.fromisoformat(value.iso).astimezone(UTC)
            if self.sqlite:
                return instant.replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
            return instant
        if isinstance(value, Day):
            return value.iso if self.sqlite else date.fromisoformat(value.iso)
        return value


@contextlib.contextmanager
def raw(db_url: str) -> Iterator[Sql]:
    """The database's own client on the test's database, committed on leaving."""
    if db_url.startswith("sqlite:///"):
        conn: Any = sqlite3.connect(db_url.removeprefix("sqlite:///"))
    else:
        # The URL's options carry the test's schema (search_path) to the server.
        conn = psycopg.connect(db_url.replace("postgresql+psycopg://", "postgresql://"))
    try:
        yield Sql(conn.cursor(), sqlite=isinstance(conn, sqlite3.Connection))
        conn.commit()
    finally:
        conn.close()


# -------------------------------------------------------------------- the edits

Edit = Callable[[Sql, World], None]


@dataclass(frozen=True)
class Tamper:
    """One edit, and what ``rrm audit verify`` must say about it.

    ``table`` and ``field`` (a substring) name the difference; ``shows`` must be
    in its message (the stored value, or ``(withheld`` for a petitioner's name or
    contact). ``chain`` is the problem accepted instead when the chain and row
    check catches the edit before any replay. ``case`` is whose report names it;
    ``touches`` are the other cases whose rows the edit changes too (every other
    case must verify whole).
    """

    edit: Edit
    table: str
    field: str
    shows: str
    case: str = "rich"
    chain: str | None = None
    touches: tuple[str, ...] = ()


def set_case(column: str, value: Any) -> Edit:
    def edit(sql: Sql, w: World) -> None:
        sql(f"UPDATE rrm_case SET {column} = ? WHERE case_id = ?", value, w.rich)

    return edit


def set_attributes(
    change: Callable[[dict[str, Any]], None], case: str = "rich"
) -> Edit:
    def edit(sql: Sql, w: World) -> None:
        case_id = getattr(w, case)
        ((held,),) = sql("SELECT attributes FROM rrm_case WHERE case_id = ?", case_id)
        attributes = held if isinstance(held, dict) else json.loads(held)
        change(attributes)
        sql(
            f"UPDATE rrm_case SET attributes = {sql.as_json} WHERE case_id = ?",
            json.dumps(attributes),
            case_id,
        )

    return edit


def set_deadline(key: str, column: str, value: Any) -> Edit:
    def edit(sql: Sql, w: World) -> None:
        sql(
            f"UPDATE rrm_deadline SET {column} = ? WHERE case_id = ? AND key = ?",
            value,
            w.rich,
            key,
        )

    return edit


def copy_deadline(key: str, new_id: str) -> Edit:
    """Insert a copy of a deadline row under another id."""
    columns = [c for c in DEADLINE.c.keys() if c != "deadline_id"]  # noqa: SIM118
    names = ", ".join(columns)

    def edit(sql: Sql, w: World) -> None:
        sql(
            f"INSERT INTO rrm_deadline (deadline_id, {names}) "
            f"SELECT ?, {names} FROM rrm_deadline WHERE case_id = ? AND key = ?",
            new_id,
            w.rich,
            key,
        )

    return edit


def set_officer(officer_id: str, column: str, value: Any) -> Edit:
    def edit(sql: Sql, w: World) -> None:
        sql(
            f"UPDATE rrm_case_officer SET {column} = ? "
            "WHERE case_id = ? AND officer_id = ?",
            value,
            w.rich,
            officer_id,
        )

    return edit


def set_petitioner(position: int, column: str, value: Any) -> Edit:
    def edit(sql: Sql, w: World) -> None:
        sql(
            f"UPDATE rrm_petitioner SET {column} = ? "
            "WHERE case_id = ? AND position = ?",
            value,
            w.rich,
            position,
        )

    return edit


def swap_petitioners(sql: Sql, w: World) -> None:
    # One row at a time: PostgreSQL checks the primary key after each row.
    for old, new in ((0, 99), (1, 0), (99, 1)):
        sql(
            "UPDATE rrm_petitioner SET position = ? WHERE case_id = ? AND position = ?",
            new,
            w.rich,
            old,
        )


def set_facility(column: str, value: Any) -> Edit:
    def edit(sql: Sql, w: World) -> None:
        sql(
            f"UPDATE rrm_facility SET {column} = ? WHERE facility_id = ?",
            value,
            RICH_FACILITY.facility_id,
        )

    return edit


def set_determination(column: str, value: Any) -> Edit:
    def edit(sql: Sql, w: World) -> None:
        sql(
            f"UPDATE rrm_determination SET {column} = ? WHERE case_id = ?",
            value,
            w.dor,
        )

    return edit


def copy_determination(to: str, seq: int) -> Edit:
    """Insert a copy of DOR-1's determination for case *to*, at entry *seq*."""

    def edit(sql: Sql, w: World) -> None:
        sql(
            "INSERT INTO rrm_determination "
            "(case_id, seq, facility_id, owner, determined_at) "
            "SELECT ?, ?, facility_id, owner, determined_at FROM rrm_determination "
            "WHERE case_id = ?",
            getattr(w, to),
            seq,
            w.dor,
        )

    return edit


def delete(table: str, where: str, *args: Any, case: str = "rich") -> Edit:
    def edit(sql: Sql, w: World) -> None:
        sql(f"DELETE FROM {table} WHERE case_id = ? {where}", getattr(w, case), *args)

    return edit


def sql_edit(statement: str, *args: Any) -> Edit:
    """A statement whose ``{rich}``/``{dor}`` parameters are the case ids."""

    def edit(sql: Sql, w: World) -> None:
        ids = {"{rich}": w.rich, "{dor}": w.dor}
        sql(statement, *(ids.get(a, a) if isinstance(a, str) else a for a in args))

    return edit


def _flag(attributes: dict[str, Any]) -> None:
    attributes["flags"]["panel_eligible_reason"] = "declined"


def _plan_dropped(attributes: dict[str, Any]) -> None:
    del attributes["remediation_plan"]


def _claim(attributes: dict[str, Any]) -> None:
    attributes["claim"]["sector_category"] = "services"


DUE = "deadline remediation_due (opened by entry 8)"
M1 = "deadline remediation_milestone.1 (opened by entry 8)"
M2 = "deadline remediation_milestone.2 (opened by entry 8)"
M3 = "deadline remediation_milestone.3 (opened by entry 8)"
M4 = "deadline remediation_milestone.4 (opened by entry 8)"
ANSWER = "deadline respondent_answer (opened by entry 1)"
WITHHELD = "(withheld: may be confidential)"

T = Tamper
P = pytest.param


class NotNamed(AssertionError):
    """Verify does not name the edited field (what an xfail of this suite expects)."""


class Collateral(AssertionError):
    """Verify reports a case whose rows the edit did not touch."""


def missed(reason: str) -> pytest.MarkDecorator:
    """An edit verify does not name yet: strict, so naming it fails the suite."""
    return pytest.mark.xfail(strict=True, raises=NotNamed, reason=reason)


def collateral(reason: str) -> pytest.MarkDecorator:
    """An edit named, but that makes an untouched case look damaged too."""
    return pytest.mark.xfail(strict=True, raises=Collateral, reason=reason)


TAMPERS = [
    # -- rrm_case (RICH-1)
    P(
        T(
            set_case("state", "remediation_negotiation"),
            "rrm_case",
            "state",
            "'remediation_negotiation'",
            chain="case row says state 'remediation_negotiation'",
        ),
        id="case.state",
    ),
    P(
        T(
            set_case("version", 11),
            "rrm_case",
            "version",
            "11",
            chain="case row says version 11",
        ),
        id="case.version",
    ),
    P(
        T(
            set_case("workflow_id", "usmca-31a-mx"),
            "rrm_case",
            "workflow_id",
            '"usmca-31a-mx"',
        ),
        id="case.workflow_id",
    ),
    P(
        T(set_case("workflow_version", 1), "rrm_case", "workflow_version", "stored 1"),
        id="case.workflow_version",
    ),
    P(
        T(set_case("external_ref", "RICH-9"), "rrm_case", "external_ref", '"RICH-9"'),
        id="case.external_ref",
    ),
    P(
        T(set_case("complainant", "CA"), "rrm_case", "complainant", '"CA"'),
        id="case.complainant",
    ),
    P(
        T(set_case("respondent", "US"), "rrm_case", "respondent", '"US"'),
        id="case.respondent",
    ),
    P(
        T(set_case("initiation", "petition"), "rrm_case", "initiation", '"petition"'),
        id="case.initiation",
    ),
    P(
        # DOR-1 onto RICH-1's facility: DOR-1's opening sealed its facility id
        # (MX-DOR). RICH-1 stays whole: only openings that sealed MX-RICH have a
        # say over MX-RICH's details.
        T(
            sql_edit(
                "UPDATE rrm_case SET facility_id = 'MX-RICH' WHERE case_id = ?", "{dor}"
            ),
            "rrm_case",
            "facility_id",
            '"MX-RICH"',
            case="dor",
        ),
        id="case.facility_id-to-older-case's",
    ),
    P(
        # RICH-1 onto DOR-1's facility: RICH-1's opening sealed MX-RICH.
        T(
            set_case("facility_id", "MX-DOR"),
            "rrm_case",
            "facility_id",
            '"MX-DOR"',
        ),
        id="case.facility_id-to-newer-case's",
    ),
    P(
        T(
            set_attributes(_flag),
            "rrm_case",
            "attributes.flags",
            '"panel_eligible_reason": "declined"',
        ),
        id="case.attributes-changed-key",
    ),
    P(
        T(
            set_attributes(_plan_dropped),
            "rrm_case",
            "attributes.remediation_plan",
            "stored null",
        ),
        id="case.attributes-removed-key",
    ),
    P(
        T(
            set_attributes(_claim),
            "rrm_case",
            "claim.sector_category",
            '"services"',
        ),
        id="case.attributes-claim",
    ),
    P(
        T(
            set_case("opened_at", At("2025-01-05T15:00:00+00:00")),
            "rrm_case",
            "opened_at",
            "2025-01-05T15:00:00+00:00",
        ),
        id="case.opened_at",
    ),
    P(
        T(
            set_case("last_event_at", At("2025-02-27T00:00:00+00:00")),
            "rrm_case",
            "last_event_at",
            "2025-02-27T00:00:00+00:00",
        ),
        id="case.last_event_at",
    ),
    # -- rrm_deadline (RICH-1), every field the history derives
    P(
        T(
            set_deadline("remediation_milestone.3", "key", "remediation_milestone.9"),
            "rrm_deadline",
            f"{M3}.key",
            '"remediation_milestone.9"',
        ),
        id="deadline.key",
    ),
    P(
        T(
            set_deadline("remediation_due", "label", "Forged label"),
            "rrm_deadline",
            f"{DUE}.label",
            '"Forged label"',
        ),
        id="deadline.label",
    ),
    P(
        T(
            set_deadline("remediation_due", "status", "met"),
            "rrm_deadline",
            f"{DUE}.status",
            "stored met",
        ),
        id="deadline.status",
    ),
    P(
        T(
            set_deadline("remediation_due", "due_date", Day("2025-07-31")),
            "rrm_deadline",
            f"{DUE}.due_date",
            "stored 2025-07-31",
        ),
        id="deadline.due_date",
    ),
    P(
        T(
            set_deadline("remediation_due", "due_at", At("2025-08-01T06:00:00+00:00")),
            "rrm_deadline",
            f"{DUE}.due_at",
            "stored 2025-08-01T06:00:00+00:00",
        ),
        id="deadline.due_at",
    ),
    P(
        T(
            set_deadline("remediation_due", "anchor_event", "milestone_added"),
            "rrm_deadline",
            f"{DUE}.anchor_event",
            '"milestone_added"',
        ),
        id="deadline.anchor_event",
    ),
    P(
        T(
            set_deadline("remediation_due", "anchor_at", At("2025-01-21T15:00:00Z")),
            "rrm_deadline",
            f"{DUE}.anchor_at",
            "stored 2025-01-21T15:00:00+00:00",
        ),
        id="deadline.anchor_at",
    ),
    P(
        T(
            set_deadline("remediation_due", "counting", "business"),
            "rrm_deadline",
            f"{DUE}.counting",
            '"business"',
        ),
        id="deadline.counting",
    ),
    P(
        T(
            set_deadline("respondent_answer", "days", 11),
            "rrm_deadline",
            f"{ANSWER}.days",
            "stored 11",
        ),
        id="deadline.days",
    ),
    P(
        T(
            set_deadline("remediation_due", "calendar_id", "us-federal"),
            "rrm_deadline",
            f"{DUE}.calendar_id",
            '"us-federal"',
        ),
        id="deadline.calendar_id",
    ),
    P(
        T(
            set_deadline("remediation_due", "timezone", "America/New_York"),
            "rrm_deadline",
            f"{DUE}.timezone",
            '"America/New_York"',
        ),
        id="deadline.timezone",
    ),
    P(
        T(
            set_deadline("remediation_due", "actor", "ustr"),
            "rrm_deadline",
            f"{DUE}.actor",
            '"ustr"',
        ),
        id="deadline.actor",
    ),
    P(
        T(
            set_deadline("remediation_due", "citation", "Forged citation"),
            "rrm_deadline",
            f"{DUE}.citation",
            '"Forged citation"',
        ),
        id="deadline.citation",
    ),
    P(
        T(
            set_deadline("remediation_due", "evidence", "R"),
            "rrm_deadline",
            f"{DUE}.evidence",
            'stored "R"',
        ),
        id="deadline.evidence",
    ),
    P(
        T(
            set_deadline("remediation_due", "explanation", "Forged explanation"),
            "rrm_deadline",
            f"{DUE}.explanation",
            '"Forged explanation"',
        ),
        id="deadline.explanation",
    ),
    P(
        T(
            set_deadline("remediation_due", "opened_seq", 7),
            "rrm_deadline",
            f"{DUE}.opened_seq",
            "stored 7",
        ),
        id="deadline.opened_seq",
    ),
    P(
        T(
            set_deadline("remediation_due", "opened_at", At("2025-01-19T15:00:00Z")),
            "rrm_deadline",
            f"{DUE}.opened_at",
            "stored 2025-01-19T15:00:00+00:00",
        ),
        id="deadline.opened_at",
    ),
    P(
        T(
            set_deadline("remediation_milestone.1", "closed_seq", 10),
            "rrm_deadline",
            f"{M1}.closed_seq",
            "stored 10",
        ),
        id="deadline.closed_seq",
    ),
    P(
        T(
            set_deadline(
                "remediation_milestone.1", "closed_at", At("2025-01-22T15:00:00Z")
            ),
            "rrm_deadline",
            f"{M1}.closed_at",
            "stored 2025-01-22T15:00:00+00:00",
        ),
        id="deadline.closed_at",
    ),
    P(
        T(
            set_deadline(
                "remediation_milestone.2", "paused_at", At("2025-01-23T15:00:00Z")
            ),
            "rrm_deadline",
            f"{M2}.paused_at",
            "stored 2025-01-23T15:00:00+00:00",
        ),
        id="deadline.paused_at",
    ),
    P(
        T(
            set_deadline("remediation_milestone.3", "extensions", 0),
            "rrm_deadline",
            f"{M3}.extensions",
            "stored 0",
        ),
        id="deadline.extensions",
    ),
    P(
        # A missed milestone made to look never missed.
        T(
            set_deadline("remediation_milestone.4", "lapsed_at", None),
            "rrm_deadline",
            f"{M4}.lapsed_at",
            "stored null",
        ),
        id="deadline.lapsed_at",
    ),
    P(
        T(
            set_deadline(
                "remediation_due", "next_action_at", At("2025-06-20T14:00:00Z")
            ),
            "rrm_deadline",
            f"{DUE}.next_action_at",
            "stored 2025-06-20T14:00:00+00:00",
        ),
        id="deadline.next_action_at",
    ),
    P(
        T(
            set_deadline("remediation_due", "alerts_through", At("2100-01-01T00:00Z")),
            "rrm_deadline",
            f"{DUE}.alerts_through",
            "stored 2100-01-01T00:00:00+00:00, in the future",
        ),
        id="deadline.alerts_through-future",
    ),
    P(
        T(
            delete("rrm_deadline", "AND key = ?", "remediation_milestone.2"),
            "rrm_deadline",
            M2,
            "is missing",
        ),
        id="deadline.deleted-row",
    ),
    P(
        T(
            copy_deadline("remediation_due", "forged-deadline"),
            "rrm_deadline",
            "deadline remediation_due (forged-deadline)",
            "forged-deadline",
        ),
        id="deadline.inserted-row",
    ),
    P(
        # A deadline moved to the other case: RICH-1 lacks it (DOR-1 has an extra).
        T(
            sql_edit(
                "UPDATE rrm_deadline SET case_id = ? WHERE case_id = ? AND key = ?",
                "{dor}",
                "{rich}",
                "remediation_milestone.2",
            ),
            "rrm_deadline",
            M2,
            "is missing",
            touches=("dor",),
        ),
        id="deadline.case_id",
    ),
    # -- rrm_case_officer (RICH-1; carla came by the officers_assigned entry)
    P(
        T(
            set_officer("ana", "name", "Ana Forged"),
            "rrm_case_officer",
            "officer ana (ustr).name",
            '"Ana Forged"',
        ),
        id="officer.name",
    ),
    P(
        T(
            set_officer("ana", "email", "eve@attacker.example"),
            "rrm_case_officer",
            "officer ana (ustr).email",
            '"eve@attacker.example"',
        ),
        id="officer.email",
    ),
    P(
        T(
            set_officer("luis", "language", "fr"),
            "rrm_case_officer",
            "officer luis (dol).language",
            '"fr"',
        ),
        id="officer.language",
    ),
    P(
        T(
            set_officer("carla", "timezone", "Europe/Paris"),
            "rrm_case_officer",
            "officer carla (supervisor).timezone",
            '"Europe/Paris"',
        ),
        id="officer.timezone",
    ),
    P(
        T(
            set_officer("luis", "role", "ilc"),
            "rrm_case_officer",
            "officer luis (ilc)",
            "officer luis (ilc) is stored but no entry recorded it",
        ),
        id="officer.role",
    ),
    P(
        T(
            set_officer("luis", "officer_id", "mallory"),
            "rrm_case_officer",
            "officer mallory (dol)",
            "officer mallory (dol) is stored but no entry recorded it",
        ),
        id="officer.officer_id",
    ),
    P(
        T(
            delete("rrm_case_officer", "AND officer_id = ?", "carla"),
            "rrm_case_officer",
            "officer carla (supervisor)",
            "missing from the stored rows",
        ),
        id="officer.deleted-row",
    ),
    P(
        T(
            delete("rrm_case_officer", ""),
            "rrm_case_officer",
            "officer ana (ustr)",
            "missing from the stored rows",
        ),
        id="officer.all-rows-deleted",
    ),
    P(
        T(
            sql_edit(
                "INSERT INTO rrm_case_officer "
                "(case_id, officer_id, role, name, email, language, timezone) "
                "VALUES (?, 'mallory', 'ilc', 'Mallory', 'm@evil.example', 'en', '')",
                "{rich}",
            ),
            "rrm_case_officer",
            "officer mallory (ilc)",
            "officer mallory (ilc) is stored but no entry recorded it",
        ),
        id="officer.inserted-row",
    ),
    # -- rrm_petitioner (RICH-1): positions count from 0; the report's "petitioner 2"
    # is position 1, the confidential one
    P(
        T(
            set_petitioner(1, "name", "Someone Else"),
            "rrm_petitioner",
            "petitioner 2.name",
            WITHHELD,
        ),
        id="petitioner.name",
    ),
    P(
        T(
            set_petitioner(1, "confidential", False),
            "rrm_petitioner",
            "petitioner 2.confidential",
            "stored false, entry 1 recorded true",
        ),
        id="petitioner.confidential",
    ),
    P(
        T(
            set_petitioner(1, "contact", "leak@example.org"),
            "rrm_petitioner",
            "petitioner 2.contact",
            WITHHELD,
        ),
        id="petitioner.contact",
    ),
    P(
        T(swap_petitioners, "rrm_petitioner", "petitioner 1.name", WITHHELD),
        id="petitioner.position-swapped",
    ),
    P(
        T(
            set_petitioner(1, "position", 5),
            "rrm_petitioner",
            "petitioner",
            "petitioner",
        ),
        id="petitioner.position-renumbered",
        marks=missed(
            "not observable: position only orders the petitioners (filing order); "
            "1 -> 5 keeps the order, and no domain object, document or view holds "
            "the number (the swap above, which changes the order, is named)"
        ),
    ),
    P(
        T(
            delete("rrm_petitioner", "AND position = ?", 1),
            "rrm_petitioner",
            "petitioner 2",
            "missing from the stored rows",
        ),
        id="petitioner.deleted-row",
    ),
    P(
        T(
            sql_edit(
                "INSERT INTO rrm_petitioner (case_id, position, name, confidential, "
                "contact) VALUES (?, 2, 'Forged Petitioner', ?, '')",
                "{rich}",
                False,
            ),
            "rrm_petitioner",
            "petitioner 3",
            "petitioner 3 is stored but no entry recorded it",
        ),
        id="petitioner.inserted-row",
    ),
    # -- rrm_facility (RICH-1's)
    P(
        T(
            set_facility("name", "Planta Falsa"),
            "rrm_facility",
            "facility.name",
            '"Planta Falsa"',
        ),
        id="facility.name",
    ),
    P(
        T(
            set_facility("owner", "Otro Grupo"),
            "rrm_facility",
            "facility.owner",
            '"Otro Grupo"',
        ),
        id="facility.owner",
    ),
    P(
        T(set_facility("country", "US"), "rrm_facility", "facility.country", '"US"'),
        id="facility.country",
    ),
    P(
        T(set_facility("city", "León"), "rrm_facility", "facility.city", '"León"'),
        id="facility.city",
    ),
    P(
        T(
            set_facility("region", "Jalisco"),
            "rrm_facility",
            "facility.region",
            '"Jalisco"',
        ),
        id="facility.region",
    ),
    P(
        T(
            set_facility("sector", "mining"),
            "rrm_facility",
            "facility.sector",
            '"mining"',
        ),
        id="facility.sector",
    ),
    # -- rrm_determination (DOR-1's, made by entry 5)
    P(
        T(
            set_determination("facility_id", "MX-RICH"),
            "rrm_determination",
            "determination of entry 5.facility_id",
            '"MX-RICH"',
            case="dor",
        ),
        id="determination.facility_id",
    ),
    P(
        T(
            set_determination("owner", "Otro Grupo"),
            "rrm_determination",
            "determination of entry 5.owner",
            '"Otro Grupo"',
            case="dor",
        ),
        id="determination.owner",
    ),
    P(
        T(
            set_determination("determined_at", At("2025-03-01T00:00:00Z")),
            "rrm_determination",
            "determination of entry 5.determined_at",
            "stored 2025-03-01T00:00:00+00:00",
            case="dor",
        ),
        id="determination.determined_at",
    ),
    P(
        T(
            set_determination("seq", 4),
            "rrm_determination",
            "determination of entry 4",
            "determination of entry 4 is stored but no entry made it",
            case="dor",
        ),
        id="determination.seq",
    ),
    P(
        T(
            delete("rrm_determination", "", case="dor"),
            "rrm_determination",
            "determination of entry 5",
            "determination of entry 5 is missing",
            case="dor",
        ),
        id="determination.deleted-row",
    ),
    P(
        T(
            copy_determination("dor", 3),
            "rrm_determination",
            "determination of entry 3",
            "determination of entry 3 is stored but no entry made it",
            case="dor",
        ),
        id="determination.inserted-row",
    ),
    P(
        # A determination against a case that never had one: a repeat offender made.
        T(
            copy_determination("rich", 7),
            "rrm_determination",
            "determination of entry 7",
            "determination of entry 7 is stored but no entry made it",
        ),
        id="determination.inserted-row-other-case",
    ),
]


# -------------------------------------------------------------------- the checks


def audit(run: Callable[..., tuple[int, str, str]], db_url: str) -> list[Any]:
    code, out, err = run("audit", "verify", "--json", "--db", db_url)
    assert "Traceback" not in out + err, out + err
    reports = json.loads(out)
    assert code == (1 if any(not r["ok"] for r in reports) else 0), (code, out, err)
    return reports


def read_commands(case_id: str) -> list[list[str]]:
    """Every read command of the CLI (``rrm audit verify --case`` apart).

    The case is named by id, so that an edited reference still finds it.
    """
    return [
        ["case", "show", case_id],
        ["case", "show", case_id, "--json"],
        ["case", "list"],
        ["case", "history", case_id],
        ["case", "outcomes"],
        ["case", "export", case_id],
        ["deadlines"],  # every open deadline: all are overdue by the real clock
        ["deadlines", "--overdue"],
        ["alerts"],
    ]


# What the reads do today, for every edit verify names (both backends), so the
# assertions below only ask for no traceback and a one-line refusal:
# - before any verification, `rrm case show` (text and --json) and `rrm case
#   history` replay the case on read and exit 1 naming the damage ("rrm: Case <id>
#   is damaged: <field>: <message>"); `case list`, `case export`, `deadlines`,
#   `deadlines --overdue`, `alerts` and `case outcomes` exit 0 and show the rows as
#   stored (`case export` exports the edited values);
# - once `rrm audit verify` has put the case in the damage register, every one of
#   them exits 1 naming it ("...; found by the verification of <instant>"), except
#   `case outcomes` (counts only), and `deadlines`/`alerts` for DOR-1, which has
#   no open deadline or alert to list;
# - the edits verify misses (the xfails) are shown as stored, exit 0, throughout.
def read_all(run: Callable[..., tuple[int, str, str]], db_url: str, case_id: str):
    """Run every read command: no traceback; exit 0, or 1 with one ``rrm:`` line.

    Return the commands that exited 1, by their words.
    """
    refused = []
    for args in read_commands(case_id):
        code, out, err = run(*args, "--db", db_url)
        assert "Traceback" not in out + err, (args, out + err)
        assert code in {0, 1}, (args, code, out, err)
        if code == 1:
            last = err.strip().splitlines()[-1]
            assert last.startswith("rrm: "), (args, err)
            refused.append(" ".join(args[:2]))
    return refused


def test_untouched_data_verifies(world, engine, run):
    """The data every tamper starts from: every deadline status, and no difference."""
    rich = engine.get(world.rich)
    statuses = {d.key: d.status.value for d in rich.deadlines}
    assert statuses == {
        "respondent_answer": "cancelled",  # lapsed, then left behind
        "respondent_review": "cancelled",  # paused and resumed first
        "remediation_due": "open",
        "remediation_milestone.1": "met",
        "remediation_milestone.2": "paused",
        "remediation_milestone.3": "open",  # extended
        "remediation_milestone.4": "open",  # lapsed, overdue
    }
    assert rich.deadline("remediation_milestone.3").extensions == 1
    assert rich.deadline("remediation_milestone.4").lapsed_at is not None
    events = [e.event for e in engine.history(world.rich)]
    assert events.count("deadline_missed") == 2
    assert "officers_assigned" in events
    assert read_all(run, world.db_url, world.rich) == []
    reports = audit(run, world.db_url)
    assert [(r["ref"], r["ok"], r["rows_checked"]) for r in reports] == [
        ("DOR-1", True, True),
        ("RICH-1", True, True),
    ], reports
    assert read_all(run, world.db_url, world.rich) == []
    code, out, err = run("audit", "verify", "--case", world.rich, "--db", world.db_url)
    assert (code, "Traceback" in out + err) == (0, False), (out, err)


def _named(report: dict[str, Any], tamper: Tamper) -> bool:
    """Whether *report* names the edited field, with the stored value in words."""
    hits = [
        d
        for d in report["differences"]
        if d["table"] == tamper.table and tamper.field in d["field"]
    ]
    if hits:
        assert any(tamper.shows in d["message"] for d in hits), hits
        assert all(d["message"] in report["problems"] for d in hits)
        return True
    if tamper.chain is not None and report["first_broken_seq"] is not None:
        assert any(tamper.chain in p for p in report["problems"]), report
        return True
    return False


@pytest.mark.parametrize("tamper", TAMPERS)
def test_tamper_is_named(world, run, tamper: Tamper):
    """One edit in SQL: verify exits 1 and names it; no read command crashes."""
    case_id = getattr(world, tamper.case)
    with raw(world.db_url) as sql:
        tamper.edit(sql, world)

    # The reads before any verification (the rows as stored), the verification
    # (which registers the damage), and the reads again. Every read failure is a
    # plain AssertionError, so an edit verify misses (an xfail, NotNamed) is
    # still read without a traceback.
    read_all(run, world.db_url, case_id)
    reports = audit(run, world.db_url)
    read_all(run, world.db_url, case_id)
    report = next(r for r in reports if r["case_id"] == case_id)
    code, out, err = run("audit", "verify", "--case", case_id, "--db", world.db_url)
    assert "Traceback" not in out + err, out + err
    assert code == (0 if report["ok"] else 1), (code, out, err)
    _assert_no_secret(out + err)
    _assert_no_secret(json.dumps(reports, ensure_ascii=False))

    if report["ok"] or not _named(report, tamper):
        raise NotNamed(report["problems"])
    touched = {case_id, *(getattr(world, c) for c in tamper.touches)}
    others = {r["ref"]: r["problems"] for r in reports if r["case_id"] not in touched}
    if any(others.values()):
        raise Collateral(others)


def _assert_no_secret(text: str) -> None:
    """A petitioner's name and contact are never repeated, whatever they are now."""
    for secret in (SECRET_NAME, SECRET_CONTACT, "leak@example.org", "Someone Else"):
        assert secret not in text, secret
