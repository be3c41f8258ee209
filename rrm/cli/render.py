"""How the CLI shows cases, deadlines, history, alerts and workflows.

Two views of the same values: JSON with stable keys for scripts, and Rich tables
for officers. Both are human-facing reads, so neither ever shows the name or contact
of a confidential petitioner (``case export`` is the agency's own record and does not
go through here).

Dates are shown as ISO dates with the deadline's own time zone; a deadline is due
by the end of its due date there.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from rich.table import Table
from rich.text import Text

from rrm.domain.deadlines import local_date

if TYPE_CHECKING:
    from rich.console import Console

    from rrm.domain.alerts import Alert
    from rrm.domain.case import Case, Deadline, HistoryEntry, Petitioner
    from rrm.service.engine import ChainReport
    from rrm.workflow.spec import WorkflowSpec

__all__ = [
    "CONFIDENTIAL",
    "alert_json",
    "alerts_table",
    "case_json",
    "cases_table",
    "chain_json",
    "deadline_json",
    "deadlines_table",
    "entry_json",
    "history_table",
    "petitioner_json",
    "print_case",
    "print_workflow",
    "workflow_json",
]

CONFIDENTIAL = "(confidential)"
_NOMINAL = "NOMINAL"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


# -- JSON ------------------------------------------------------------------------


def petitioner_json(p: Petitioner) -> dict[str, Any]:
    """A petitioner as shown to readers: a confidential one has no name or contact."""
    if p.confidential:
        return {"name": None, "contact": None, "confidential": True}
    return {"name": p.name, "contact": p.contact, "confidential": False}


def deadline_json(d: Deadline, now: datetime) -> dict[str, Any]:
    """A deadline with the days left until its due date (negative once overdue)."""
    return {
        "case_id": d.case_id,
        "key": d.key,
        "label": d.label,
        "status": d.status.value,
        "due_date": d.due_date.isoformat(),
        "due_at": d.due_at.isoformat(),
        "timezone": d.timezone,
        "days_left": (d.due_date - local_date(now, d.timezone)).days,
        "overdue": now >= d.due_at,
        "actor": d.actor,
        "counting": d.counting,
        "days": d.days,
        "calendar": d.calendar_id,
        "anchor_event": d.anchor_event,
        "explanation": d.explanation,
        "citation": d.citation,
        "evidence": d.evidence,
        "nominal": d.nominal,
        "extensions": d.extensions,
        "paused": d.paused_at is not None,
    }


def possible_events(spec: WorkflowSpec, state: str) -> list[dict[str, Any]]:
    """The events the workflow allows in *state*, with who may record them."""
    if spec.states[state].terminal:
        return []
    return [
        {
            "event": t.event,
            "to_state": t.dest,
            "roles": list(t.roles),
            "label": t.label,
            "guards": list(t.guards),
        }
        for t in spec.transitions_from(state)
    ]


def case_json(case: Case, spec: WorkflowSpec, now: datetime) -> dict[str, Any]:
    """A case for readers: parties, facility, state, people, deadlines, next events."""
    state = spec.states[case.state]
    return {
        "case_id": case.case_id,
        "ref": case.external_ref,
        "workflow": case.workflow_id,
        "workflow_version": case.workflow_version,
        "state": case.state,
        "state_label": state.label,
        "terminal": state.terminal,
        "outcome": state.outcome or None,
        "version": case.version,
        "complainant": case.complainant.value,
        "respondent": case.respondent.value,
        "initiation": case.initiation,
        "facility": {
            "facility_id": case.facility.facility_id,
            "name": case.facility.name,
            "owner": case.facility.owner,
            "country": case.facility.country.value,
            "city": case.facility.city,
            "region": case.facility.region,
            "sector": case.facility.sector,
        },
        "attributes": dict(case.attributes),
        "officers": [
            {
                "officer_id": o.officer_id,
                "role": o.role,
                "name": o.name,
                "email": o.email,
                "language": o.language,
                "timezone": o.timezone,
            }
            for o in case.officers
        ],
        "petitioners": [petitioner_json(p) for p in case.petitioners],
        "opened_at": case.opened_at.isoformat(),
        "updated_at": case.updated_at.isoformat(),
        "last_event_at": case.last_event_at.isoformat(),
        "deadlines": [
            deadline_json(d, now)
            for d in sorted(case.open_deadlines.values(), key=lambda d: d.due_at)
        ],
        "possible_events": possible_events(spec, case.state),
    }


def entry_json(e: HistoryEntry) -> dict[str, Any]:
    """One history entry, hash chain included."""
    return {
        "seq": e.seq,
        "event": e.event,
        "from_state": e.from_state,
        "to_state": e.to_state,
        "actor": e.actor,
        "role": e.role,
        "reason": e.reason,
        "payload": dict(e.payload),
        "occurred_at": e.occurred_at.isoformat(),
        "recorded_at": e.recorded_at.isoformat(),
        "idempotency_key": e.idempotency_key,
        "prev_hash": e.prev_hash,
        "hash": e.hash,
    }


def alert_json(a: Alert) -> dict[str, Any]:
    """One outbox entry."""
    return {
        "alert_id": a.alert_id,
        "case_id": a.case_id,
        "deadline_id": a.deadline_id,
        "step": a.step,
        "kind": a.kind.value,
        "status": a.status.value,
        "recipient_id": a.recipient_id,
        "recipient_email": a.recipient_email,
        "recipient_role": a.recipient_role,
        "owed_at": a.owed_at.isoformat(),
        "created_at": a.created_at.isoformat(),
        "late": a.late,
        "attempts": a.attempts,
        "next_attempt_at": _iso(a.next_attempt_at),
        "last_error": a.last_error,
        "sent_at": _iso(a.sent_at),
        "acknowledged_at": _iso(a.acknowledged_at),
        "acknowledged_by": a.acknowledged_by,
    }


def chain_json(report: ChainReport, ref: str) -> dict[str, Any]:
    """The result of checking one case's history chain."""
    return {
        "case_id": report.case_id,
        "ref": ref,
        "entries": report.entries,
        "ok": report.ok,
        "first_broken_seq": report.first_broken_seq,
    }


def workflow_json(spec: WorkflowSpec) -> dict[str, Any]:
    """A workflow definition: states, openings, transitions, deadlines, parameters."""
    return {
        "workflow": spec.workflow_id,
        "version": spec.version,
        "title": spec.title,
        "annex": spec.annex,
        "status": spec.status,
        "sha256": spec.sha256,
        "roles": dict(spec.roles),
        "calendars": {p.value: c for p, c in spec.calendars.items()},
        "directions": [
            {
                "complainant": d.complainant.value,
                "respondent": d.respondent.value,
                "openings": list(d.openings),
                "guards": list(d.guards),
            }
            for d in spec.directions
        ],
        "states": [
            {
                "name": s.name,
                "label": s.label,
                "terminal": s.terminal,
                "outcome": s.outcome or None,
            }
            for s in spec.states.values()
        ],
        "openings": [
            {
                "name": o.name,
                "event": o.event,
                "state": o.state,
                "roles": list(o.roles),
                "label": o.label,
                "citation": o.citation,
                "evidence": o.evidence.value,
                "guards": list(o.guards),
            }
            for o in spec.openings.values()
        ],
        "transitions": [
            {
                "event": t.event,
                "sources": list(t.sources),
                "dest": t.dest,
                "roles": list(t.roles),
                "label": t.label,
                "citation": t.citation,
                "evidence": t.evidence.value,
                "guards": list(t.guards),
                "payload": [
                    {"name": f.name, "type": f.type, "required": f.required}
                    for f in t.payload
                ],
            }
            for t in spec.transitions
        ],
        "deadlines": [
            {
                "key": d.key,
                "label": d.label,
                "actor": d.actor,
                "days": d.days,
                "unit": d.counting.value,
                "calendar": d.calendar,
                "anchor": d.anchor_label,
                "opened_by": list(d.opened_by),
                "met_by": list(d.met_by),
                "on_lapse": d.on_lapse,
                "citation": d.citation,
                "evidence": d.evidence.value,
                "nominal": d.nominal,
                "note": d.note,
            }
            for d in spec.deadlines.values()
        ],
        "parameters": {
            p.name: {
                "value": p.value,
                "citation": p.citation,
                "evidence": p.evidence.value,
            }
            for p in spec.parameters.values()
        },
    }


# -- Rich ------------------------------------------------------------------------


def _nominal(flag: bool) -> Text:
    return Text(_NOMINAL, style="bold yellow") if flag else Text("")


def _days_left(days: int, *, overdue: bool) -> Text:
    if overdue:
        return Text(f"{days}", style="bold red")
    if days <= 3:  # noqa: PLR2004 - the last days before a deadline stand out
        return Text(f"{days}", style="yellow")
    return Text(f"{days}", style="green")


def deadlines_table(
    deadlines: list[dict[str, Any]], *, refs: dict[str, str] | None = None
) -> Table:
    """Open deadlines (as :func:`deadline_json` gives them), earliest first."""
    table = Table(title="Open deadlines", title_justify="left")
    if refs is not None:
        table.add_column("case")
    for name in ("deadline", "due", "days left", "", "explanation"):
        table.add_column(name, overflow="fold")
    for d in deadlines:
        row: list[str | Text] = [] if refs is None else [refs.get(d["case_id"], "")]
        row += [
            d["key"] + (" (paused)" if d["paused"] else ""),
            f"{d['due_date']} {d['timezone']}",
            _days_left(d["days_left"], overdue=d["overdue"]),
            _nominal(d["nominal"]),
            d["explanation"],
        ]
        table.add_row(*row)
    return table


def print_case(console: Console, data: dict[str, Any]) -> None:
    """Show a case (as :func:`case_json` gives it) to an officer."""
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    facility = data["facility"]
    place = ", ".join(
        x for x in (facility["city"], facility["region"], facility["country"]) if x
    )
    state = Text(data["state"], style="bold red" if data["terminal"] else "bold cyan")
    state.append(f"  {data['state_label']}", style="default")
    for label, value in (
        ("case", f"{data['ref']}  ({data['case_id']})"),
        ("workflow", f"{data['workflow']} v{data['workflow_version']}"),
        ("parties", f"{data['complainant']} → {data['respondent']}"),
        ("initiation", data["initiation"]),
        ("facility", f"{facility['name']} [{facility['facility_id']}], {place}"),
        ("owner", facility["owner"]),
        ("sector", facility["sector"]),
        ("state", state),
        ("version", str(data["version"])),
        ("opened", data["opened_at"]),
        ("last event", data["last_event_at"]),
    ):
        head.add_row(label, value)
    console.print(head)
    if data["officers"]:
        officers = Table("officer", "role", "email", "lang", "zone", title="Officers")
        for o in data["officers"]:
            officers.add_row(
                o["officer_id"], o["role"], o["email"], o["language"], o["timezone"]
            )
        console.print(officers)
    if data["petitioners"]:
        names = [p["name"] or CONFIDENTIAL for p in data["petitioners"]]
        console.print(Text("petitioners: ", style="bold") + Text("; ".join(names)))
    if data["deadlines"]:
        console.print(deadlines_table(data["deadlines"]))
    if data["possible_events"]:
        events = Table("event", "to state", "roles", "label", title="Possible now")
        for e in data["possible_events"]:
            events.add_row(e["event"], e["to_state"], ", ".join(e["roles"]), e["label"])
        console.print(events)
    elif data["terminal"]:
        console.print(f"[bold]closed:[/bold] {data['outcome'] or data['state']}")


def cases_table(cases: list[dict[str, Any]]) -> Table:
    """A list of cases (as :func:`case_json` gives them)."""
    table = Table(
        "ref", "workflow", "parties", "facility", "state", "version", "next due"
    )
    for c in cases:
        due = c["deadlines"][0] if c["deadlines"] else None
        table.add_row(
            c["ref"],
            f"{c['workflow']} v{c['workflow_version']}",
            f"{c['complainant']}→{c['respondent']}",
            c["facility"]["name"],
            c["state"],
            str(c["version"]),
            f"{due['due_date']} {due['key']}" if due else "",
        )
    return table


def history_table(entries: list[dict[str, Any]]) -> Table:
    """A case's history, oldest first."""
    table = Table("seq", "occurred", "event", "from → to", "actor", "role", "reason")
    for e in entries:
        moved = f"{e['from_state'] or '∅'} → {e['to_state']}"
        table.add_row(
            str(e["seq"]),
            e["occurred_at"],
            e["event"],
            moved,
            e["actor"],
            e["role"],
            e["reason"],
        )
    return table


_STATUS_STYLE = {
    "pending": "yellow",
    "sending": "yellow",
    "sent": "green",
    "failed": "red",
    "dead": "bold red",
    "superseded": "dim",
}


def alerts_table(alerts: list[dict[str, Any]], refs: dict[str, str]) -> Table:
    """Outbox entries, oldest first."""
    table = Table("alert", "case", "kind", "status", "to", "owed", "attempts", "ack")
    for a in alerts:
        table.add_row(
            a["alert_id"],
            refs.get(a["case_id"], a["case_id"]),
            a["kind"],
            Text(a["status"], style=_STATUS_STYLE.get(a["status"], "")),
            f"{a['recipient_id']} <{a['recipient_email']}>",
            a["owed_at"],
            str(a["attempts"]),
            a["acknowledged_by"] or "",
        )
    return table


def print_workflow(console: Console, data: dict[str, Any]) -> None:
    """Show a workflow definition (as :func:`workflow_json` gives it)."""
    console.print(
        f"[bold]{data['workflow']} v{data['version']}[/bold] ({data['status']}): "
        f"{data['title']}"
    )
    states = Table("state", "label", "end", title="States")
    for s in data["states"]:
        states.add_row(s["name"], s["label"], s["outcome"] or "")
    console.print(states)
    openings = Table("opening", "event", "state", "roles", "citation", title="Openings")
    for o in data["openings"]:
        openings.add_row(
            o["name"],
            o["event"],
            o["state"],
            ", ".join(o["roles"]),
            f"{o['citation']} [{o['evidence']}]",
        )
    console.print(openings)
    transitions = Table("event", "from", "to", "roles", "citation", title="Transitions")
    for t in data["transitions"]:
        sources = t["sources"]
        transitions.add_row(
            t["event"],
            ", ".join(sources) if len(sources) <= 3 else f"{len(sources)} states",  # noqa: PLR2004
            t["dest"],
            ", ".join(t["roles"]),
            f"{t['citation']} [{t['evidence']}]",
        )
    console.print(transitions)
    deadlines = Table(
        "deadline", "days", "unit", "calendar", "evidence", "", "citation",
        title="Deadlines",
    )  # fmt: skip
    for d in data["deadlines"]:
        deadlines.add_row(
            d["key"],
            "agreed" if d["days"] is None else str(d["days"]),
            d["unit"],
            d["calendar"],
            d["evidence"],
            _nominal(d["nominal"]),
            d["citation"],
        )
    console.print(deadlines)
