"""``rrm case ...``: open cases, record events, and read them back.

Every command parses its options into one of the engine's commands, calls the
engine, and shows the result; the engine validates everything and writes nothing
when it refuses.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import Progress

from rrm.cli.common import (
    DEFAULT_DB,
    ActorOption,
    AtOption,
    DbOption,
    JsonOption,
    PayloadOption,
    ReasonOption,
    RoleOption,
    SetOption,
    console,
    engine_for,
    parse_at,
    parse_date,
    parse_officer,
    parse_payload,
    print_json,
    read_json,
)
from rrm.cli.render import cases_table, history_table, print_case, print_outcomes
from rrm.domain.case import Facility, Petitioner
from rrm.domain.commands import (
    AssignOfficers,
    Claim,
    ExtendDeadline,
    FireEvent,
    OpenCase,
    PauseDeadline,
    ResumeDeadline,
)
from rrm.errors import (
    CaseAlreadyExists,
    InvalidInput,
    RoleNotAllowed,
    TransitionNotAllowed,
)
from rrm.service import transfer
from rrm.views import case_json, entry_json, timeline_svg

if TYPE_CHECKING:
    from rrm.domain.case import Case
    from rrm.service.engine import CaseEngine

__all__ = ["WITHDRAWAL_EVENTS", "app"]

app = typer.Typer(no_args_is_help=True, help="Open, advance and read cases.")

# The events that end a case by withdrawal, in the order they are tried: the
# complainant's withdrawal of a request, or the submitter's in the front end.
WITHDRAWAL_EVENTS = ("request_withdrawn", "petition_withdrawn", "claim_withdrawn")

RefArgument = Annotated[str, typer.Argument(help="Case id or external reference.")]


def _show(engine: CaseEngine, case: Case, *, as_json: bool) -> None:
    spec = engine.workflows.get(case.workflow_id, case.workflow_version)
    data = case_json(case, spec, engine.clock.now())
    if as_json:
        print_json(data)
    else:
        print_case(console, data)


def _require(**values: str | None) -> None:
    missing = [name for name, value in values.items() if not value]
    if missing:
        names = ", ".join("--" + n.replace("_", "-") for n in missing)
        raise typer.BadParameter(f"missing {names} (or give --file)")


@app.command("open")
def open_(
    *,
    db: DbOption = DEFAULT_DB,
    file: Annotated[
        Path | None,
        typer.Option(
            "--file",
            help="A case as JSON (the case part of `rrm case export`); options "
            "given as well override its fields.",
            show_default=False,
        ),
    ] = None,
    workflow: Annotated[str | None, typer.Option(help="e.g. usmca-31a")] = None,
    initiation: Annotated[
        str | None, typer.Option(help="petition, self_initiated, request, ...")
    ] = None,
    complainant: Annotated[str | None, typer.Option(help="US, MX or CA")] = None,
    respondent: Annotated[str | None, typer.Option(help="US, MX or CA")] = None,
    facility_id: Annotated[str | None, typer.Option()] = None,
    facility_name: Annotated[str | None, typer.Option()] = None,
    owner: Annotated[str | None, typer.Option(help="The facility's owner.")] = None,
    city: Annotated[str, typer.Option()] = "",
    region: Annotated[str, typer.Option()] = "",
    sector: Annotated[str, typer.Option()] = "",
    basis: Annotated[
        str | None,
        typer.Option(
            help="annex_23a_legislation, enforced_nlrb_order or canadian_legislation"
        ),
    ] = None,
    sector_category: Annotated[
        str | None, typer.Option(help="manufacturing, services or mining")
    ] = None,
    nlrb_order: Annotated[str, typer.Option()] = "",
    petitioner: Annotated[
        list[str] | None, typer.Option(help="A petitioner's name; repeatable.")
    ] = None,
    confidential_petitioner: Annotated[
        list[str] | None,
        typer.Option(help="A petitioner whose name is never shown; repeatable."),
    ] = None,
    officer: Annotated[
        list[str] | None,
        typer.Option(help="id:role[:email[:lang[:tz]]]; repeatable."),
    ] = None,
    ref: Annotated[
        str | None, typer.Option(help="The agency's reference for the case.")
    ] = None,
    actor: ActorOption = "",
    role: RoleOption = "",
    reason: ReasonOption = "",
    at: AtOption = None,
    payload: PayloadOption = None,
    as_json: JsonOption = False,
) -> None:
    """Open a case from a petition, a self-initiation or a request for review."""
    if file is None:
        _require(
            workflow=workflow,
            initiation=initiation,
            complainant=complainant,
            respondent=respondent,
            facility_id=facility_id,
            facility_name=facility_name,
            owner=owner,
            basis=basis,
            sector_category=sector_category,
            ref=ref,
            actor=actor,
            role=role,
        )
        cmd = OpenCase(
            workflow=str(workflow),
            initiation=str(initiation),
            complainant=str(complainant).upper(),
            respondent=str(respondent).upper(),
            facility=Facility(
                facility_id=str(facility_id),
                name=str(facility_name),
                owner=str(owner),
                country=str(respondent).upper(),  # type: ignore[arg-type]  # checked by the engine
                city=city,
                region=region,
                sector=sector,
            ),
            claim=Claim(
                basis=str(basis),
                sector_category=str(sector_category),
                nlrb_order=nlrb_order,
            ),
            petitioners=_petitioners(petitioner, confidential_petitioner),
            officers=tuple(parse_officer(o) for o in officer or ()),
            external_ref=str(ref),
            actor=actor,
            role=role,
            reason=reason,
            payload=parse_payload(payload, None),
            at=parse_at(at),
        )
        with engine_for(db) as engine:
            _show(engine, engine.open_case(cmd), as_json=as_json)
        return
    with engine_for(db) as engine:
        document = _opening_document(
            engine, file, ref=ref, at=at, actor=actor, role=role, reason=reason,
            payload=payload,
        )  # fmt: skip
        report = transfer.import_cases(engine, [document], sources=[str(file)])
        (done,) = report.cases
        if done.outcome != "imported":
            raise CaseAlreadyExists(done.external_ref, done.case_id)
        _show(engine, engine.get(done.case_id), as_json=as_json)


def _petitioners(
    named: list[str] | None, confidential: list[str] | None
) -> tuple[Petitioner, ...]:
    return (
        *(Petitioner(name=n) for n in named or ()),
        *(Petitioner(name=n, confidential=True) for n in confidential or ()),
    )


# The case fields of the import format; an export's case also has derived ones.
_CASE_FIELDS = frozenset(
    {"workflow", "workflow_version", "initiation", "complainant", "respondent",
     "facility", "claim", "petitioners", "officers", "external_ref"}
)  # fmt: skip


def _opening_document(
    engine: CaseEngine,
    file: Path,
    *,
    ref: str | None,
    at: str | None,
    actor: str,
    role: str,
    reason: str,
    payload: str | None,
) -> dict[str, Any]:
    """Return an ``rrm-history/1`` document opening the case *file* describes.

    *file* holds a case as the import format writes it (or a whole exported
    document, whose case part is used); the opening event is the workflow's event
    for the case's initiation, recorded by *actor* in *role*.
    """
    data = read_json(file, "--file")
    case = data.get("case", data) if isinstance(data, dict) else data
    if not isinstance(case, dict):
        raise InvalidInput("--file", "must hold a case as a JSON object")
    case = {k: v for k, v in case.items() if k in _CASE_FIELDS}
    if ref:
        case["external_ref"] = ref
    _require(actor=actor, role=role)
    version = case.get("workflow_version")
    spec = engine.workflows.get(
        str(case.get("workflow", "")), version if type(version) is int else None
    )
    opening = spec.openings.get(str(case.get("initiation", "")))
    if opening is None:
        raise InvalidInput(
            "--file",
            f"case.initiation must be one of {', '.join(spec.openings)}",
        )
    when = parse_at(at) or engine.clock.now()
    event = {
        "at": when.isoformat(),
        "event": opening.event,
        "role": role,
        "actor": actor,
        "reason": reason,
        "payload": parse_payload(payload, None),
    }
    return {"format": transfer.HISTORY_FORMAT, "case": case, "events": [event]}


@app.command("fire")
def fire(
    ref: RefArgument,
    event: Annotated[
        str, typer.Argument(help="The workflow event, e.g. accept_review.")
    ],
    *,
    db: DbOption = DEFAULT_DB,
    role: Annotated[str, typer.Option("--role", envvar="RRM_ROLE")],
    actor: Annotated[str, typer.Option("--actor", envvar="RRM_ACTOR")],
    reason: ReasonOption = "",
    payload: PayloadOption = None,
    sets: SetOption = None,
    at: AtOption = None,
    key: Annotated[
        str | None,
        typer.Option(
            "--key", help="Idempotency key: a repeat with it changes nothing."
        ),
    ] = None,
    expect: Annotated[
        int | None,
        typer.Option(
            "--expect", help="Refuse unless the case is at this version.", min=1
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Record an event on a case."""
    details = parse_payload(payload, sets)
    when = parse_at(at)
    with engine_for(db) as engine:
        case = engine.get(ref)
        fired = engine.fire(
            FireEvent(
                case_id=case.case_id,
                event=event,
                actor=actor,
                role=role,
                reason=reason,
                payload=details,
                idempotency_key=key,
                expected_version=expect,
                at=when,
            )
        )
        _show(engine, fired, as_json=as_json)


@app.command("show")
def show(
    ref: RefArgument,
    *,
    db: DbOption = DEFAULT_DB,
    as_json: JsonOption = False,
    timeline: Annotated[
        bool, typer.Option("--timeline", help="Also print the case's timeline.")
    ] = False,
    svg: Annotated[
        Path | None,
        typer.Option("--svg", help="Write the timeline as SVG to FILE."),
    ] = None,
) -> None:
    """Show a case: parties, state, officers, open deadlines, possible events."""
    if as_json and timeline:
        raise typer.BadParameter("--timeline prints a table; leave out --json")
    with engine_for(db) as engine:
        # One case shown: its rows are re-derived from its history first.
        case = engine.get(ref, verified=True)
        _show(engine, case, as_json=as_json)
        if timeline or svg is not None:
            from rrm.cli import pictures  # noqa: PLC0415 - loaded only when drawing

            history = engine.history(case.case_id)
            now = engine.clock.now()
            if timeline:
                console.print(pictures.timeline_table(case, history, now=now))
            if svg is not None:
                _write(svg, timeline_svg(case, history, now=now))
                if not as_json:
                    console.print(f"timeline written to {svg}", highlight=False)


def _write(path: Path, text: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(str(path), f"cannot write: {exc.strerror}") from None


@app.command("list")
def list_(
    *,
    db: DbOption = DEFAULT_DB,
    state: Annotated[str | None, typer.Option(help="Only cases in this state.")] = None,
    workflow: Annotated[str | None, typer.Option(help="Only this workflow.")] = None,
    facility: Annotated[str | None, typer.Option(help="Only this facility id.")] = None,
    officer: Annotated[
        str | None, typer.Option(help="Only cases this officer is assigned to.")
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1)] = None,
    as_json: JsonOption = False,
) -> None:
    """List cases, newest first."""
    with engine_for(db) as engine:
        now = engine.clock.now()
        cases = [
            case_json(c, engine.workflows.get(c.workflow_id, c.workflow_version), now)
            for c in engine.find(
                state=state,
                workflow=workflow,
                facility_id=facility,
                officer_id=officer,
                limit=limit,
            )
        ]
    if as_json:
        print_json(cases)
    else:
        console.print(cases_table(cases))


@app.command("outcomes")
def outcomes(
    *,
    db: DbOption = DEFAULT_DB,
    workflow: Annotated[str | None, typer.Option(help="Only this workflow.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Count cases by outcome (remediated, out of scope, ...) and by state."""
    with engine_for(db) as engine:
        counts = engine.outcomes(workflow)
    if as_json:
        print_json([dataclasses.asdict(c) for c in counts])
    else:
        print_outcomes(console, counts)


@app.command("history")
def history(
    ref: RefArgument, *, db: DbOption = DEFAULT_DB, as_json: JsonOption = False
) -> None:
    """Show a case's audited history, oldest first."""
    with engine_for(db) as engine:
        case = engine.get(ref, verified=True)
        entries = [entry_json(e) for e in engine.history(case.case_id)]
    if as_json:
        print_json(entries)
    else:
        console.print(history_table(entries))


@app.command("assign")
def assign(
    ref: RefArgument,
    *,
    db: DbOption = DEFAULT_DB,
    officer: Annotated[
        list[str] | None,
        typer.Option(help="id:role[:email[:lang[:tz]]] to assign; repeatable."),
    ] = None,
    remove: Annotated[
        list[str] | None, typer.Option(help="An officer id to unassign; repeatable.")
    ] = None,
    actor: Annotated[str, typer.Option("--actor", envvar="RRM_ACTOR")],
    role: Annotated[str, typer.Option("--role", envvar="RRM_ROLE")],
    reason: ReasonOption = "",
    as_json: JsonOption = False,
) -> None:
    """Assign officers to a case, or remove them."""
    officers = tuple(parse_officer(o) for o in officer or ())
    with engine_for(db) as engine:
        case = engine.get(ref)
        changed = engine.assign(
            AssignOfficers(
                case_id=case.case_id,
                actor=actor,
                role=role,
                assign=officers,
                remove=tuple(remove or ()),
                reason=reason,
            )
        )
        _show(engine, changed, as_json=as_json)


@app.command("extend")
def extend(
    ref: RefArgument,
    key: Annotated[str, typer.Argument(help="The deadline key.")],
    *,
    db: DbOption = DEFAULT_DB,
    to: Annotated[str, typer.Option("--to", help="The agreed new due date.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (required).")],
    actor: Annotated[str, typer.Option("--actor", envvar="RRM_ACTOR")],
    role: Annotated[str, typer.Option("--role", envvar="RRM_ROLE")],
    at: AtOption = None,
    as_json: JsonOption = False,
) -> None:
    """Extend an open deadline by agreement; dependent deadlines move too."""
    new_date = parse_date(to, "--to")
    when = parse_at(at)
    with engine_for(db) as engine:
        case = engine.get(ref)
        changed = engine.extend(
            ExtendDeadline(
                case_id=case.case_id,
                key=key,
                new_date=new_date,
                actor=actor,
                role=role,
                reason=reason,
                at=when,
            )
        )
        _show(engine, changed, as_json=as_json)


@app.command("toll")
def toll(
    ref: RefArgument,
    key: Annotated[str, typer.Argument(help="The deadline key.")],
    *,
    db: DbOption = DEFAULT_DB,
    pause: Annotated[bool, typer.Option("--pause", help="Stop the clock.")] = False,
    resume: Annotated[
        bool, typer.Option("--resume", help="Restart it; it moves later.")
    ] = False,
    reason: Annotated[str, typer.Option("--reason", help="Why (required).")],
    actor: Annotated[str, typer.Option("--actor", envvar="RRM_ACTOR")],
    role: Annotated[str, typer.Option("--role", envvar="RRM_ROLE")],
    at: AtOption = None,
    as_json: JsonOption = False,
) -> None:
    """Pause (toll) an open deadline, or resume a paused one."""
    if pause == resume:
        raise typer.BadParameter(
            "give exactly one of --pause and --resume", param_hint="--pause/--resume"
        )
    when = parse_at(at)
    with engine_for(db) as engine:
        case = engine.get(ref)
        kind = PauseDeadline if pause else ResumeDeadline
        cmd = kind(
            case_id=case.case_id,
            key=key,
            actor=actor,
            role=role,
            reason=reason,
            at=when,
        )
        changed = (
            engine.pause(cmd) if isinstance(cmd, PauseDeadline) else engine.resume(cmd)
        )
        _show(engine, changed, as_json=as_json)


@app.command("withdraw")
def withdraw(
    ref: RefArgument,
    *,
    db: DbOption = DEFAULT_DB,
    reason: Annotated[str, typer.Option("--reason", help="Why (required).")],
    actor: Annotated[str, typer.Option("--actor", envvar="RRM_ACTOR")],
    role: Annotated[
        str | None,
        typer.Option(
            "--role",
            envvar="RRM_ROLE",
            help="Default: the one role that may withdraw in the current state.",
            show_default=False,
        ),
    ] = None,
    payload: PayloadOption = None,
    sets: SetOption = None,
    at: AtOption = None,
    key: Annotated[str | None, typer.Option("--key")] = None,
    as_json: JsonOption = False,
) -> None:
    """End a case by withdrawal (of the request, the petition or the claim).

    Picks the workflow's withdrawal event allowed in the case's current state.
    """
    if not reason.strip():
        raise InvalidInput("--reason", "say why the case is withdrawn")
    details = parse_payload(payload, sets)
    when = parse_at(at)
    with engine_for(db) as engine:
        case = engine.get(ref)
        spec = engine.workflows.get(case.workflow_id, case.workflow_version)
        possible = {t.event: t for t in spec.transitions_from(case.state)}
        chosen = next((possible[e] for e in WITHDRAWAL_EVENTS if e in possible), None)
        if chosen is None or spec.states[case.state].terminal:
            closed = spec.states[case.state].terminal
            raise TransitionNotAllowed(
                case.case_id,
                case.state,
                "/".join(WITHDRAWAL_EVENTS),
                tuple(spec.facts) if closed else tuple(possible),
                closed=closed,
            )
        if role is None:
            if len(chosen.roles) != 1:
                raise RoleNotAllowed(
                    case.case_id, chosen.event, "(none given)", chosen.roles
                )
            role = chosen.roles[0]
        changed = engine.fire(
            FireEvent(
                case_id=case.case_id,
                event=chosen.event,
                actor=actor,
                role=role,
                reason=reason,
                payload=details,
                idempotency_key=key,
                at=when,
            )
        )
        _show(engine, changed, as_json=as_json)


@app.command("export")
def export(
    ref: RefArgument,
    *,
    db: DbOption = DEFAULT_DB,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Write to FILE instead of the screen."),
    ] = None,
) -> None:
    """Export a case with its full history as JSON (the agency's own record).

    The export is the migration format: it holds every petitioner's name,
    confidential ones included. Keep it as you keep the case file.
    """
    with engine_for(db) as engine:
        text = json.dumps(
            transfer.export_case(engine, ref), indent=2, ensure_ascii=False
        )
    if out is None:
        print(text)
    else:
        _write(out, text + "\n")
        console.print(f"case {ref} exported to {out}", highlight=False)


@app.command("import")
def import_(
    files: Annotated[list[Path], typer.Argument(help="Exported case files (JSON).")],
    *,
    db: DbOption = DEFAULT_DB,
    as_json: JsonOption = False,
) -> None:
    """Import exported cases, history and deadlines included (chains are checked)."""
    documents: list[Any] = []
    with Progress(console=console, transient=True, disable=len(files) < 2) as bar:  # noqa: PLR2004 - one file needs no bar
        reading = bar.add_task("reading", total=len(files))
        for f in files:
            documents.append(read_json(f, str(f)))
            bar.advance(reading)
        bar.add_task(f"replaying {len(files)} case(s)", total=None)
        with engine_for(db) as engine:
            report = transfer.import_cases(
                engine, documents, sources=[str(f) for f in files]
            )
    results = [
        {
            "ref": c.external_ref,
            "case_id": c.case_id,
            "outcome": c.outcome,
            "events_replayed": c.events_replayed,
            "events_skipped": c.events_skipped,
            "source": c.source,
        }
        for c in report.cases
    ]
    if as_json:
        print_json(results)
        return
    for r in results:
        console.print(
            f"{r['source']}: {r['ref']} {r['outcome']} ({r['case_id']}), "
            f"{r['events_replayed']} events replayed",
            highlight=False,
        )
