"""B8: verify by replay (``engine.verify_all``) over 100,000 cases.

Population (a SQLite file in a temporary folder, and with ``--postgres`` a
PostgreSQL schema of its own at common.PG, dropped after): CASES usmca-31a cases.

TEMPLATES of them (QUICK_TEMPLATES with ``--quick``) are built through the
engine's own API. A fake clock starts on START and moves one day at a time; each
simulated day opens the next cases (spread evenly over OPEN_DAYS days), runs
``engine.tick()`` once (without a notifier: lapses and their lapse actions are
recorded, alerts queued), then every command the open cases' recipes schedule for
that day, 20 ms of fake time apart, until every recipe is done; then one last
tick. Each case follows one of seven recipes, chosen by its number (weights in
RECIPES; the reference starts with the recipe's name): remediated during Mexico's
review (4 entries); no denial accepted after liquidation was suspended (5); the
10-day answer lapsed, then a late acceptance and a course of remediation (8); an
extended, paused and resumed review (8); the 45-day review lapsed, then
consultations and an agreement, an officer assigned (7); a petition by two
petitioners, one confidential, officers assigned and removed, an ILC
determination, an extension, a pause, a course of remediation with milestones (one
added later), dated facts and the 60-day USTR clock lapsing (24); self-initiated,
through a panel, a lapsed verification answer, remedies and their lifting (17).
Facilities are shared (FACILITY_SHARE cases each, the same details every time).

Building 100,000 cases that way would take 23 to 35 minutes on SQLite and 43 to
110 on PostgreSQL on a 2-CPU machine (360-550 and 110-300 engine commands/s,
measured; the notes give this run's rate), so the templates are cloned at the SQL
level (``clone``) up to CASES: clone *k* of a template gets a new
case id, reference (same recipe prefix), facility (same details, new id) and
deadline ids (``case_id:key:opened_seq``, as the engine makes them); its rows keep
every other value and instant of the template's, alerts excepted (not cloned: not
verified). Every sealed digest whose value the clone changes (by
``rrm.domain.subject.subject_values``: the reference and the facility id, wherever
sealed) is redone with the entry's own salt, once the template's value has
reproduced the stored digest, and every entry is re-hashed under the new case id
(``rrm.domain.case.entry_hash``). Before cloning, each template's stored hashes
must be reproduced that way, and no other column may hold its case id, reference
or facility id; after, verify must find every clone ok like every template.

Measured, in a fresh child process per backend (``rrm.bootstrap`` on the URL with
the system clock, as the nightly ``rrm audit verify`` runs): one pass of
``engine.verify_all()`` over the whole database. Figures: the pass's wall time and
its ratio to one hour (the nightly target: well under an hour for 100,000 cases;
with ``--quick`` the total is also extrapolated linearly to 100,000), cases/s, the
median and p95 time per case (the time between two reports, so a page read of
verify_all lands on the first case of its page), the time per history entry (total
time / total entries), and the child's peak RSS growth over its RSS after
bootstrap. Every report must be ok with its rows checked: a difference raises (it is
a bug of the verifier or of the engine, not a figure), naming the case's recipe
(its reference starts with it) and the problems. On SQLite the command
``rrm audit verify --json`` is also timed once as a subprocess over the same
database (exit status 0 and every row ok required), with its peak RSS. The CPU
time of both processes is in the notes beside the load average (wall times on a
shared machine). The processes import RRM afresh: if its code or bundled data
changed on disk since this one imported it, the run is void and says so.

Run alone:  python tests/bench/bench_verify.py [--quick] [--postgres] [--cases N]
            [--templates N]  (cases a multiple of templates)
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import sqlalchemy as sa
from common import START, Row, database, peak_rss_mb, quiet

import rrm
from rrm.adapters.sql.engine import make_engine
from rrm.adapters.sql.mapping import entry_from_row
from rrm.adapters.sql.tables import (
    CASE,
    CASE_EVENT,
    CASE_OFFICER,
    DEADLINE,
    DETERMINATION,
    FACILITY,
    PETITIONER,
)
from rrm.domain.case import GENESIS_HASH, entry_hash
from rrm.domain.subject import GROUPS, _digest, subject_values
from rrm.testing import FakeClock

CASES = 100_000
TEMPLATES = 5_000  # built through the engine; the rest are re-hashed clones
QUICK_CASES = 2_000
QUICK_TEMPLATES = 500
CLONE_CHUNK = 500  # template cases cloned per transaction
FULL = 100_000  # what the nightly target is about
OPEN_DAYS = 400  # cases are opened evenly over this many simulated days
QUICK_OPEN_DAYS = 100
FACILITY_SHARE = 5  # cases per facility
STEP = timedelta(milliseconds=20)  # fake time between two commands of a day
HOUR = 3600.0
RRM = Path(sys.executable).with_name("rrm")


def _fingerprint() -> str:
    """A digest of RRM's code and bundled data as they are on disk now."""
    from rrm._resources import migrations_dir, workflows_dir

    digest = hashlib.sha256()
    for folder in (Path(rrm.__file__).parent, workflows_dir(), migrations_dir()):
        for path in sorted(folder.rglob("*")):
            if path.is_file() and path.suffix in {".py", ".toml", ".json", ".ics"}:
                digest.update(str(path).encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()


# The processes this benchmark starts import RRM afresh: a change on disk after
# this one imported it would have them verify with other code than built.
_SOURCE = _fingerprint()


def _same_code(what: str) -> None:
    if _fingerprint() != _SOURCE:
        msg = (
            f"RRM's code or data changed on disk during the run ({what} may have "
            "imported other code than built the population): figures void, run again"
        )
        raise RuntimeError(msg)


# -- recipes ------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One command of a recipe, *day* days after the case was opened."""

    day: int
    kind: str  # fire, extend, pause, resume, assign
    event: str = ""
    role: str = "ustr"
    payload: dict[str, Any] = field(default_factory=dict)
    key: str = ""
    days: int = 0  # extend: new due date = current due date + days
    officers: tuple[rrm.Officer, ...] = ()
    remove: tuple[str, ...] = ()


def _fire(day: int, event: str, role: str = "ustr", **payload: Any) -> Step:
    return Step(day, "fire", event=event, role=role, payload=payload)


def _iso(d0: date, days: int) -> str:
    return (d0 + timedelta(days=days)).isoformat()


LUIS = rrm.Officer(officer_id="luis", role="ustr", name="Luis", email="luis@b8.example")
ILC = rrm.Officer(officer_id="ines", role="ilc", name="Inés", email="ines@b8.example")
DOL = rrm.Officer(officer_id="dora", role="dol", name="Dora", email="dora@b8.example")


def remediated(_d0: date) -> list[Step]:
    return [
        _fire(2, "respondent_agrees", "respondent"),
        _fire(25, "respondent_reports_remediated", "respondent", actions="Rehired"),
        _fire(35, "remediation_in_review_verified"),
    ]


def no_denial(_d0: date) -> list[Step]:
    return [
        _fire(1, "suspend_liquidation", basis="Denial of rights alleged"),
        _fire(5, "respondent_agrees", "respondent"),
        _fire(40, "respondent_finds_no_denial", "respondent", grounds="No evidence"),
        _fire(48, "complainant_accepts_no_denial", basis="USTR accepts the finding"),
    ]


def answer_lapsed(d0: date) -> list[Step]:
    # The tick of day 11 records the lapse of the 10-day answer and its action.
    return [
        _fire(14, "respondent_agrees_late", "respondent"),
        _fire(30, "respondent_finds_denial", "respondent"),
        _fire(40, "remediation_plan_agreed", due=_iso(d0, 200), plan_ref="Plan A"),
        _fire(60, "remediation_reported_complete", "respondent"),
        _fire(70, "remediation_verified"),
    ]


def extended(_d0: date) -> list[Step]:
    return [
        _fire(3, "respondent_agrees", "respondent"),
        Step(20, "extend", key="respondent_review", days=15, role="supervisor"),
        Step(25, "pause", key="respondent_review", role="supervisor"),
        Step(32, "resume", key="respondent_review", role="supervisor"),
        _fire(55, "respondent_finds_no_denial", "respondent"),
        _fire(60, "complainant_disputes_no_denial"),
        _fire(70, "no_panel_certified"),
    ]


def review_lapsed(_d0: date) -> list[Step]:
    # The tick of day 46 records the lapse of the 45-day review and its action.
    return [
        Step(1, "assign", officers=(LUIS,), role="supervisor"),
        _fire(4, "respondent_agrees", "respondent"),
        _fire(50, "consultations_opened"),
        _fire(80, "agreement_reached", respondent_agreement="Note 12/2025"),
    ]


def petition(d0: date) -> list[Step]:
    # The tick of day 81 records the lapse of the 60-day USTR clock (no action).
    milestones = [
        {"label": "Reinstate workers", "due": _iso(d0, 100)},
        {"label": "Training", "due": _iso(d0, 130)},
    ]
    return [
        Step(3, "assign", officers=(ILC, LUIS), role="supervisor"),
        _fire(20, "ilc_affirmative", "ilc"),
        _fire(25, "request_for_review", received_on=_iso(d0, 25)),
        _fire(26, "suspend_liquidation", basis="Denial of rights alleged"),
        _fire(27, "legitimation_vote", on=_iso(d0, 26), result="rejected"),
        _fire(28, "respondent_agrees", "respondent"),
        _fire(30, "request_receipt_recorded", "respondent", received_on=_iso(d0, 26)),
        Step(40, "extend", key="respondent_review", days=10, role="supervisor"),
        Step(45, "pause", key="respondent_review", role="supervisor"),
        Step(50, "resume", key="respondent_review", role="supervisor"),
        _fire(70, "respondent_finds_denial", "respondent"),
        _fire(72, "consultations_held", "respondent"),
        _fire(75, "remediation_plan_agreed", due=_iso(d0, 200), milestones=milestones),
        _fire(100, "milestone_met", milestone=1),
        _fire(105, "union_election", on=_iso(d0, 104), result="independent union"),
        Step(110, "assign", remove=("ines",), officers=(DOL,), role="supervisor"),
        _fire(130, "milestone_met", milestone=2),
        _fire(150, "milestone_added", label="Second vote", due=_iso(d0, 170)),
        _fire(170, "milestone_met", milestone=3),
        _fire(180, "remediation_reported_complete", "respondent"),
        _fire(190, "remediation_verified"),
        _fire(195, "public_statement", on=_iso(d0, 194), by="USTR"),
    ]


def self_initiated(_d0: date) -> list[Step]:
    # The tick after 7 business days records the lapse of the verification
    # answer and its action (to determination_pending).
    return [
        _fire(30, "ustr_initiates"),
        _fire(32, "request_for_review"),
        _fire(33, "respondent_declines", "respondent"),
        _fire(34, "suspend_liquidation", basis="Mexico declined to review"),
        _fire(40, "panel_requested", panel_ref="MEX-USA-2025-31A-01"),
        _fire(42, "panel_constituted", "secretariat", panelists=["A", "B", "C"]),
        _fire(45, "verification_requested", "panel"),
        _fire(70, "panel_finds_denial", "panel", report_ref="Report 1"),
        _fire(75, "remedies_noticed", remedies=["suspension_of_preferences"]),
        _fire(92, "remedies_imposed"),
        _fire(120, "remediation_claimed", "respondent"),
        _fire(130, "claim_accepted"),
        _fire(135, "close_remediated"),
    ]


@dataclass(frozen=True)
class Recipe:
    name: str
    weight: int
    opening: str  # request, petition, self_initiated
    steps: Callable[[date], list[Step]]


RECIPES = (
    Recipe("remediated", 25, "request", remediated),
    Recipe("nodenial", 20, "request", no_denial),
    Recipe("anslapse", 15, "request", answer_lapsed),
    Recipe("extended", 15, "request", extended),
    Recipe("revlapse", 10, "request", review_lapsed),
    Recipe("petition", 10, "petition", petition),
    Recipe("selfinit", 5, "self_initiated", self_initiated),
)
_WHEEL = [r for r in RECIPES for _ in range(r.weight)]


def recipe_of(i: int) -> Recipe:
    # A fixed shuffle of the wheel: neighbours get different recipes.
    return _WHEEL[(i * 37) % len(_WHEEL)]


def _facility(j: int) -> rrm.Facility:
    return rrm.Facility(
        facility_id=f"B8F{j:06d}",
        name=f"Planta {j:06d}",
        owner=f"Grupo {j % 997:03d} S.A. de C.V.",
        country=rrm.Party.MX,
        city="Saltillo",
        region="COA",
        sector="manufacturing",
    )


_OPENING = {
    "request": ("ustr", "ana", "ustr"),
    "petition": ("dol", "dora", "dol"),
    "self_initiated": ("ilc", "ines", "ilc"),
}


def opening(i: int, recipe: Recipe, facilities: int) -> rrm.OpenCase:
    role, officer, officer_role = _OPENING[recipe.opening]
    petitioners: tuple[rrm.Petitioner, ...] = ()
    if recipe.opening == "petition":
        petitioners = (
            rrm.Petitioner(name=f"Sindicato Independiente {i}"),
            rrm.Petitioner(name=f"Worker {i}", confidential=True, contact="+52 55 0"),
        )
    return rrm.OpenCase(
        workflow="usmca-31a",
        initiation=recipe.opening,
        complainant="US",
        respondent="MX",
        facility=_facility(i % facilities),
        claim=rrm.Claim(
            basis="annex_23a_legislation",
            sector_category="manufacturing",
            legal_provisions=("LFT art. 357",),
        ),
        external_ref=f"{recipe.name}-{i:06d}",
        actor=officer,
        role=role,
        petitioners=petitioners,
        officers=(
            rrm.Officer(
                officer_id=officer,
                role=officer_role,
                name=officer.title(),
                email=f"{officer}@b8.example",
            ),
        ),
    )


# -- building -----------------------------------------------------------------------


@dataclass
class Built:
    """What build and clone made (the population's figures are of the whole)."""

    templates: int
    cases: int
    entries: int
    seconds: float  # the engine's part
    clone_seconds: float
    commands: int
    ticks: int
    days: int
    lengths: dict[str, float]
    events: dict[str, int]
    by_tick: dict[str, int]
    officers: int
    confidential: int


def _do(engine: rrm.CaseEngine, case_id: str, step: Step, actor: str) -> None:
    who: dict[str, Any] = {"case_id": case_id, "actor": actor, "role": step.role}
    reason = f"B8 {step.kind} {step.key or step.event}".strip()
    if step.kind == "fire":
        engine.fire(rrm.FireEvent(event=step.event, payload=step.payload, **who))
    elif step.kind == "extend":
        deadline = engine.get(case_id).deadline(step.key)
        assert deadline is not None  # the recipe opened it
        new = deadline.due_date + timedelta(days=step.days)
        engine.extend(
            rrm.ExtendDeadline(key=step.key, new_date=new, reason=reason, **who)
        )
    elif step.kind == "pause":
        engine.pause(rrm.PauseDeadline(key=step.key, reason=reason, **who))
    elif step.kind == "resume":
        engine.resume(rrm.ResumeDeadline(key=step.key, reason=reason, **who))
    elif step.kind == "assign":
        engine.assign(
            rrm.AssignOfficers(
                assign=step.officers, remove=step.remove, reason=reason, **who
            )
        )
    else:
        raise ValueError(step.kind)


@dataclass
class _Engined:
    seconds: float
    commands: int
    ticks: int
    days: int


def build(url: str, cases: int, open_days: int, *, log: bool = False) -> _Engined:
    """Fill a fresh database through the engine, one simulated day at a time."""
    t0 = time.perf_counter()
    clock = FakeClock(START)
    sql = make_engine(url)
    facilities = max(1, cases // FACILITY_SHARE)
    per_day = -(-cases // open_days)
    schedule: dict[int, list[tuple[str, str, Step]]] = defaultdict(list)
    commands = ticks = opened = day = 0
    try:
        engine = rrm.bootstrap(sql, clock=clock, upgrade=True)
        while opened < cases or schedule:
            clock.set(START + timedelta(days=day))
            engine.tick()
            ticks += 1
            for i in range(opened, min(opened + per_day, cases)):
                clock.advance(STEP)
                recipe = recipe_of(i)
                cmd = opening(i, recipe, facilities)
                case = engine.open_case(cmd)
                commands += 1
                d0 = case.opened_at.date()
                for step in recipe.steps(d0):
                    schedule[day + step.day].append((case.case_id, cmd.actor, step))
            opened = min(opened + per_day, cases)
            for case_id, actor, step in schedule.pop(day, []):
                clock.advance(STEP)
                by = "sam" if step.role == "supervisor" else actor
                try:
                    _do(engine, case_id, step, by)
                except rrm.RRMError as exc:
                    ref = engine.get(case_id, intact=False).external_ref
                    msg = f"B8 recipe step {step} on {ref} (day {day}) failed: {exc}"
                    raise RuntimeError(msg) from exc
                commands += 1
            if log and day % 50 == 0:
                print(
                    f"  B8 day {day}: {opened:,} opened, {commands:,} commands, "
                    f"{time.perf_counter() - t0:.0f} s",
                    file=sys.stderr,
                    flush=True,
                )
            day += 1
        clock.set(START + timedelta(days=day))
        engine.tick()
        ticks += 1
    finally:
        sql.dispose()
    return _Engined(time.perf_counter() - t0, commands, ticks, day)


# -- cloning ------------------------------------------------------------------------

# Tables holding a case's rows, in foreign-key order. Alerts are not cloned:
# verification does not read them.
_CASE_TABLES = (CASE, PETITIONER, CASE_OFFICER, CASE_EVENT, DEADLINE, DETERMINATION)
_ORDER = {CASE_EVENT.name: "seq", DEADLINE.name: "deadline_id"}


def _clone_id(case_id: str, copy: int) -> str:
    return hashlib.sha256(f"b8:{case_id}:{copy}".encode()).hexdigest()[:32]


def _clone_ref(ref: str, copy: int, templates: int) -> str:
    name, number = ref.rsplit("-", 1)
    return f"{name}-{int(number) + copy * templates:06d}"


def _clone_facility(facility_id: str, copy: int, facilities: int) -> str:
    return f"B8F{int(facility_id[3:]) + copy * facilities:06d}"


def _hash(row: dict[str, Any], prev_hash: str) -> str:
    """The chain hash of an entry row, as verify recomputes it."""
    e = entry_from_row(row)
    return entry_hash(
        prev_hash=prev_hash,
        case_id=e.case_id,
        seq=e.seq,
        event=e.event,
        from_state=e.from_state,
        to_state=e.to_state,
        actor=e.actor,
        role=e.role,
        reason=e.reason,
        payload=e.payload,
        occurred_at=e.occurred_at,
        recorded_at=e.recorded_at,
        idempotency_key=e.idempotency_key,
        via=e.via,
        subject=e.subject,
    )


Sealed = dict[tuple[str, str], tuple[Any, Any]]


def _resealing(template: rrm.Case, made: rrm.Case) -> Sealed:
    """Per sealed (group, path) whose value the clone changes: old and new value."""
    changed: Sealed = {}
    for group in GROUPS:
        old, new = subject_values(template, group), subject_values(made, group)
        if old.keys() != new.keys():
            msg = f"B8 clone: the {group} paths differ between template and clone"
            raise RuntimeError(msg)
        for path, value in old.items():
            if new[path] != value:
                changed[group, path] = (value, new[path])
    return changed


def _resealed(subject: dict[str, Any], changed: Sealed, where: str) -> dict[str, Any]:
    """*subject* with the digest of every changed path redone with its salt.

    The template's value must reproduce the stored digest first.
    """
    salt = subject["salt"]
    out = dict(subject)
    for (group, path), (old, new) in changed.items():
        digests = subject.get(group)
        if not isinstance(digests, dict) or path not in digests:
            continue
        if _digest(salt, path, old) != digests[path]:
            msg = f"B8 clone: {where}: the seal of {group} {path} is not reproduced"
            raise RuntimeError(msg)
        out[group] = {**out[group], path: _digest(salt, path, new)}
    return out


@dataclass
class _Template:
    rows: dict[str, list[dict[str, Any]]]
    stored: rrm.Case | None = None  # as engine.get reads it

    @property
    def case(self) -> dict[str, Any]:
        return self.rows[CASE.name][0]


def _templates(conn: sa.Connection) -> dict[str, _Template]:
    found: dict[str, _Template] = {}
    for table in _CASE_TABLES:
        order = [table.c.case_id]
        if table.name in _ORDER:
            order.append(table.c[_ORDER[table.name]])
        for r in conn.execute(sa.select(table).order_by(*order)).mappings():
            t = found.setdefault(r["case_id"], _Template(defaultdict(list)))
            t.rows[table.name].append(dict(r))
    return found


def _check_template(t: _Template) -> None:
    """Refuse to clone what the clone would get wrong.

    The template's own chain must be reproduced from its rows, its deadline ids
    must be ``case_id:key:opened_seq``, and no other column may hold its case
    id, reference or facility id (the clone changes only those). Seals are
    checked path by path as they are redone (``_resealed``).
    """
    case = t.case
    tid, ref, fid = case["case_id"], case["external_ref"], case["facility_id"]
    prev = GENESIS_HASH
    for e in t.rows[CASE_EVENT.name]:
        if e["prev_hash"] != prev or _hash(e, prev) != e["hash"]:
            msg = f"B8 clone: entry {e['seq']} of {ref}: hash not reproduced"
            raise RuntimeError(msg)
        prev = e["hash"]
    for d in t.rows[DEADLINE.name]:
        if d["deadline_id"] != f"{tid}:{d['key']}:{d['opened_seq']}":
            msg = f"B8 clone: deadline id {d['deadline_id']} of {ref}"
            raise RuntimeError(msg)
    keys = {"case_id", "external_ref", "facility_id", "deadline_id", "hash"}
    keys.add("prev_hash")
    for name, rows in t.rows.items():
        for r in rows:
            text = json.dumps(
                {k: v for k, v in r.items() if k not in keys}, default=str
            )
            if tid in text or ref in text or fid in text:
                msg = f"B8 clone: a column of {name} of {ref} holds an id: {text}"
                raise RuntimeError(msg)


def _clone_case(
    t: _Template, copy: int, templates: int, facilities: int
) -> dict[str, list[dict[str, Any]]]:
    assert t.stored is not None
    tid = t.case["case_id"]
    cid = _clone_id(tid, copy)
    ref = _clone_ref(t.case["external_ref"], copy, templates)
    fid = _clone_facility(t.case["facility_id"], copy, facilities)
    made = dataclasses.replace(
        t.stored,
        case_id=cid,
        external_ref=ref,
        facility=dataclasses.replace(t.stored.facility, facility_id=fid),
    )
    changed = _resealing(t.stored, made)
    out: dict[str, list[dict[str, Any]]] = {}
    for table in _CASE_TABLES:
        out[table.name] = [{**r, "case_id": cid} for r in t.rows[table.name]]
    out[CASE.name][0].update(external_ref=ref, facility_id=fid)
    for d in out[DEADLINE.name]:
        d["deadline_id"] = f"{cid}:{d['key']}:{d['opened_seq']}"
    for d in out[DETERMINATION.name]:
        d["facility_id"] = fid
    prev = GENESIS_HASH
    for e in out[CASE_EVENT.name]:
        if e["subject"]:
            where = f"entry {e['seq']} of {t.case['external_ref']}"
            e["subject"] = _resealed(e["subject"], changed, where)
        e["prev_hash"] = prev
        e["hash"] = prev = _hash(e, prev)
    return out


def clone(url: str, templates: int, copies: int) -> float:
    """Add copies - 1 clones of every case in the database; return the seconds.

    Clone *k* of template *i* gets a new case id, the reference of case
    ``i + k * templates`` (same recipe prefix), the facility ``j + k * F`` for
    the template's facility *j* (F facilities per copy, details unchanged), new
    deadline ids; its entries keep every value and instant of the template's
    (salts included) but are re-sealed (reference, facility id) and re-hashed
    under the new case id, exactly as the engine would have.
    """
    t0 = time.perf_counter()
    facilities = max(1, templates // FACILITY_SHARE)
    sql = make_engine(url)
    try:
        with sql.connect() as conn:
            found = _templates(conn)
            fac = [dict(r) for r in conn.execute(sa.select(FACILITY)).mappings()]
        engine = rrm.bootstrap(sql)
        for tid, t in found.items():
            t.stored = engine.get(tid, intact=False)
        if len(found) != templates or len(fac) != facilities:
            msg = f"B8 clone: {len(found)} templates on {len(fac)} facilities"
            raise RuntimeError(msg)
        for t in found.values():
            _check_template(t)
        items = sorted(found.values(), key=lambda t: t.case["external_ref"])
        for copy in range(1, copies):
            with sql.begin() as conn:
                conn.execute(
                    sa.insert(FACILITY),
                    [
                        {
                            **f,
                            "facility_id": _clone_facility(
                                f["facility_id"], copy, facilities
                            ),
                        }
                        for f in fac
                    ],
                )
            for lo in range(0, len(items), CLONE_CHUNK):
                rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
                for t in items[lo : lo + CLONE_CHUNK]:
                    for name, made in _clone_case(
                        t, copy, templates, facilities
                    ).items():
                        rows[name] += made
                with sql.begin() as conn:
                    for table in _CASE_TABLES:
                        if rows[table.name]:
                            conn.execute(sa.insert(table), rows[table.name])
        if url.startswith("postgresql"):
            with sql.begin() as conn:
                names = [FACILITY.name, *(t.name for t in _CASE_TABLES)]
                conn.execute(sa.text(f"ANALYZE {', '.join(names)}"))
    finally:
        sql.dispose()
    return time.perf_counter() - t0


def _population(url: str) -> dict[str, Any]:
    sql = make_engine(url)
    try:
        with sql.connect() as conn:
            lengths = [
                n
                for (n,) in conn.execute(
                    sa.select(sa.func.count())
                    .select_from(CASE_EVENT)
                    .group_by(CASE_EVENT.c.case_id)
                )
            ]
            count = sa.select(CASE_EVENT.c.event, sa.func.count())
            events: dict[str, int] = dict(
                conn.execute(count.group_by(CASE_EVENT.c.event)).all()
            )
            by_tick: dict[str, int] = dict(
                conn.execute(
                    count.where(CASE_EVENT.c.role == "system").group_by(
                        CASE_EVENT.c.event
                    )
                ).all()
            )
            officers = conn.execute(
                sa.select(sa.func.count()).select_from(CASE_OFFICER)
            ).scalar_one()
            confidential = conn.execute(
                sa.select(sa.func.count())
                .select_from(PETITIONER)
                .where(PETITIONER.c.confidential.is_(True))
            ).scalar_one()
            cases = conn.execute(
                sa.select(sa.func.count()).select_from(CASE)
            ).scalar_one()
    finally:
        sql.dispose()
    if cases != len(lengths):
        msg = f"{cases} cases but {len(lengths)} histories"
        raise RuntimeError(msg)
    lengths.sort()
    return {
        "cases": cases,
        "entries": sum(lengths),
        "lengths": {
            "min": lengths[0],
            "median": statistics.median(lengths),
            "mean": sum(lengths) / len(lengths),
            "max": lengths[-1],
            "share_3_8": sum(3 <= n <= 8 for n in lengths) / len(lengths),
            "share_20": sum(n >= 20 for n in lengths) / len(lengths),
        },
        "events": events,
        "by_tick": by_tick,
        "officers": int(officers),
        "confidential": int(confidential),
    }


def populate(
    url: str, cases: int, templates: int, open_days: int, *, log: bool
) -> Built:
    """Templates through the engine, then clones up to *cases*."""
    if cases % templates:
        msg = f"{cases} cases are not a multiple of {templates} templates"
        raise ValueError(msg)
    engined = build(url, templates, open_days, log=log)
    cloned = clone(url, templates, cases // templates) if cases > templates else 0.0
    stats = _population(url)
    return Built(
        templates=templates,
        seconds=engined.seconds,
        clone_seconds=cloned,
        commands=engined.commands,
        ticks=engined.ticks,
        days=engined.days,
        **stats,
    )


# -- verifying (a child process) ----------------------------------------------------


def _rss_now_mb() -> float:
    """Current resident set size of this process, in MiB (Linux)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def verify_child(url: str, out: Path) -> None:
    """Run verify_all once over *url*; write the figures to *out* as JSON."""
    quiet()
    sql = make_engine(url)
    engine = rrm.bootstrap(sql)
    base_rss = _rss_now_mb()
    times: list[float] = []
    bad: list[dict[str, Any]] = []
    entries = unchecked = 0
    slowest = ("", 0, 0.0)
    start = last = time.perf_counter()
    for report in engine.verify_all():
        now = time.perf_counter()
        spent = now - last
        last = now
        times.append(spent)
        entries += report.entries
        if spent > slowest[2]:
            slowest = (report.case_id, report.entries, spent)
        if not report.rows_checked:
            unchecked += 1
        if not report.ok or not report.rows_checked:
            bad.append(
                {
                    "case_id": report.case_id,
                    "entries": report.entries,
                    "rows_checked": report.rows_checked,
                    "problems": list(report.problems),
                }
            )
    total = time.perf_counter() - start
    sql.dispose()
    times.sort()
    p95 = times[max(0, -(-95 * len(times) // 100) - 1)] if times else 0.0
    out.write_text(
        json.dumps(
            {
                "cases": len(times),
                "entries": entries,
                "seconds": total,
                "median": statistics.median(times) if times else 0.0,
                "p95": p95,
                "max": times[-1] if times else 0.0,
                "slowest": slowest,
                "unchecked": unchecked,
                "bad": bad[:20],
                "bad_count": len(bad),
                "base_rss_mb": base_rss,
                "peak_rss_mb": peak_rss_mb(),
            }
        )
    )


@dataclass
class _Ran:
    seconds: float
    status: int
    peak_rss: float  # MiB
    cpu: float  # user + system seconds


def _child(args: list[str], stdout: Any) -> _Ran:
    """Run *args*; return its wall seconds, exit status, peak RSS and CPU time."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(args, stdout=stdout, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0 and err:
        sys.stderr.write(err.decode(errors="replace")[-3000:])
    cpu = usage.ru_utime + usage.ru_stime
    return _Ran(seconds, proc.returncode, usage.ru_maxrss / 1024, cpu)


@dataclass
class Verified:
    cases: int
    entries: int
    seconds: float
    median: float
    p95: float
    max: float
    slowest: tuple[str, int, float]
    rss_growth: float
    peak_rss: float
    cpu: float
    load: tuple[float, float]


def verify(url: str, folder: Path, refs: dict[str, str]) -> Verified:
    out = folder / "verify.json"
    args = [sys.executable, __file__, "--verify", url, "--out", str(out)]
    before = os.getloadavg()[0]
    ran = _child(args, subprocess.DEVNULL)
    load = (before, os.getloadavg()[0])
    _same_code("the verify process")
    if ran.status != 0:
        msg = f"the B8 verify child exited with {ran.status}"
        raise RuntimeError(msg)
    got = json.loads(out.read_text())
    if got["bad_count"]:
        lines = [
            f"{refs.get(b['case_id'], b['case_id'])} ({b['entries']} entries, rows "
            f"checked {b['rows_checked']}): {' | '.join(b['problems'])}"
            for b in got["bad"]
        ]
        msg = (
            f"verify_all reported {got['bad_count']} case(s) of {got['cases']} not "
            "ok (a verifier or engine bug; recipe = reference prefix):\n  "
            + "\n  ".join(lines)
        )
        raise RuntimeError(msg)
    return Verified(
        cases=got["cases"],
        entries=got["entries"],
        seconds=got["seconds"],
        median=got["median"],
        p95=got["p95"],
        max=got["max"],
        slowest=tuple(got["slowest"]),
        rss_growth=got["peak_rss_mb"] - got["base_rss_mb"],
        peak_rss=got["peak_rss_mb"],
        cpu=ran.cpu,
        load=load,
    )


def audit_cli(url: str, folder: Path, cases: int) -> _Ran:
    """Time ``rrm audit verify --json`` once over *url*."""
    out = folder / "audit.json"
    with out.open("wb") as f:
        ran = _child([str(RRM), "audit", "verify", "--json", "--db", url], f)
    _same_code("rrm audit verify")
    if ran.status != 0:
        msg = f"rrm audit verify exited with {ran.status}: {out.read_text()[:2000]}"
        raise RuntimeError(msg)
    rows = json.loads(out.read_text())
    ok = sum(1 for r in rows if r["ok"] and r.get("rows_checked"))
    if len(rows) != cases or ok != cases:
        msg = f"rrm audit verify: {len(rows)} rows, {ok} ok and checked, of {cases}"
        raise RuntimeError(msg)
    return ran


def _refs(url: str) -> dict[str, str]:
    sql = make_engine(url)
    try:
        with sql.connect() as conn:
            query = sa.select(CASE.c.case_id, CASE.c.external_ref)
            return {r[0]: r[1] for r in conn.execute(query).all()}
    finally:
        sql.dispose()


# -- entry --------------------------------------------------------------------------


def _population_note(b: Built) -> str:
    lengths, ev = b.lengths, b.events
    ticked = ", ".join(f"{e} {c:,}" for e, c in sorted(b.by_tick.items()))
    made = (
        f"{b.templates:,} template cases built through the engine API in "
        f"{b.seconds:.0f} s ({b.commands:,} commands + {b.ticks} ticks over "
        f"{b.days} simulated days, {b.commands / b.seconds:.0f} commands/s, so "
        f"about {b.seconds * b.cases / b.templates:,.0f} s for all {b.cases:,} "
        "that way)"
    )
    if b.cases > b.templates:
        made += (
            f", cloned x{b.cases // b.templates} at the SQL level in "
            f"{b.clone_seconds:.0f} s (new ids, references, facilities and "
            "deadline ids; the digests of changed sealed values redone, every chain "
            "re-hashed)"
        )
    return (
        f"{b.cases:,} cases, {b.entries:,} history entries (per case min "
        f"{lengths['min']}, median {lengths['median']:g}, mean "
        f"{lengths['mean']:.1f}, max {lengths['max']}; {lengths['share_3_8']:.0%} "
        f"with 3-8, {lengths['share_20']:.0%} with 20+), "
        f"{sum(b.by_tick.values()):,} entries recorded by tick ({ticked}), "
        f"{ev.get('deadline_extended', 0):,} extensions, "
        f"{ev.get('deadline_paused', 0):,} pauses, "
        f"{ev.get('officers_assigned', 0):,} officer assignments, "
        f"{b.officers:,} officer rows, {b.confidential:,} confidential "
        f"petitioners; {made}"
    )


def rows_for(kind: str, built: Built, v: Verified, cli: _Ran | None) -> list[Row]:
    n = v.cases
    projected = v.seconds * FULL / n
    total_note = (
        f"one verify_all pass in a fresh process, all {n:,} reports ok with rows "
        f"checked; that process used {v.cpu:.0f} s of CPU (user + system; "
        f"os.cpu_count()={os.cpu_count()}, shared with the database server and any "
        f"other load: load average before / after {v.load[0]:.1f} / "
        f"{v.load[1]:.1f}); {_population_note(built)}"
    )
    if n != FULL:
        total_note += (
            f"; linear extrapolation to {FULL:,} cases: {projected:.0f} s = "
            f"{projected / HOUR:.2f} h"
        )
    rows = [
        Row(
            f"B8 verify_all total, {kind}, {n:,} cases",
            v.seconds,
            "s",
            reference=HOUR,
            reference_unit="s (1 hour)",
            target=f"{FULL:,} cases well under 1 h",
            met=projected < HOUR,
            note=total_note,
        ),
        Row(
            f"B8 verify_all throughput, {kind}",
            n / v.seconds,
            "cases/s",
            note=f"{v.entries / v.seconds:,.0f} history entries/s",
        ),
        Row(
            f"B8 verify cost per case, {kind}, median",
            v.median * 1000,
            "ms",
            reference=v.p95 * 1000,
            reference_unit="ms p95",
            note="time between two reports of verify_all (a page read lands on the "
            f"first case of its page); max {v.max * 1000:.1f} ms "
            f"({v.slowest[1]} entries)",
        ),
        Row(
            f"B8 verify cost per history entry, {kind}",
            v.seconds / v.entries * 1000,
            "ms/entry",
            note=f"total time / total entries ({v.entries:,})",
        ),
        Row(
            f"B8 verify_all peak RSS growth, {kind}",
            v.rss_growth,
            "MiB",
            note=f"peak RSS {v.peak_rss:.0f} MiB of the verifying process, minus its "
            "RSS after bootstrap",
        ),
    ]
    if cli is not None:
        rows.append(
            Row(
                f"B8 rrm audit verify --json, {kind}, {n:,} cases",
                cli.seconds,
                "s",
                reference=v.seconds,
                reference_unit="s verify_all",
                note="subprocess wall time (start-up and JSON output included), "
                f"every row ok; {cli.cpu:.0f} s of CPU, peak RSS "
                f"{cli.peak_rss:.0f} MiB",
            )
        )
    return rows


def run(
    *, quick: bool = False, postgres: bool = False, cases: int = 0, templates: int = 0
) -> list[Row]:
    quiet()
    cases = cases or (QUICK_CASES if quick else CASES)
    templates = min(cases, templates or (QUICK_TEMPLATES if quick else TEMPLATES))
    open_days = QUICK_OPEN_DAYS if quick else OPEN_DAYS
    rows: list[Row] = []
    for kind in ["sqlite"] + (["postgres"] if postgres else []):
        with (
            tempfile.TemporaryDirectory() as tmp,
            database(kind, Path(tmp), name="b8") as url,
        ):
            built = populate(url, cases, templates, open_days, log=not quick)
            print(
                f"[B8 {kind}: {built.cases:,} cases ({built.templates:,} through the "
                f"engine in {built.seconds:.0f} s, clones in "
                f"{built.clone_seconds:.0f} s)]",
                file=sys.stderr,
                flush=True,
            )
            v = verify(url, Path(tmp), _refs(url))
            if v.cases != cases:
                msg = f"verify_all returned {v.cases} reports for {cases} cases"
                raise RuntimeError(msg)
            cli = audit_cli(url, Path(tmp), cases) if kind == "sqlite" else None
            rows += rows_for(kind, built, v, cli)
    return rows


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    p.add_argument("--postgres", action="store_true")
    p.add_argument("--cases", type=int, default=0, help="population size")
    p.add_argument("--templates", type=int, default=0, help="built by the engine")
    p.add_argument("--verify", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.verify:
        verify_child(a.verify, Path(a.out))
    else:
        for row in run(
            quick=a.quick, postgres=a.postgres, cases=a.cases, templates=a.templates
        ):
            print(row)
