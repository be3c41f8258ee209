"""How the CLI shows cases, deadlines, history, alerts and workflows to officers.

Rich tables drawn from the JSON values of :mod:`rrm.views` (the same ones ``--json``
prints), so what an officer reads and what a script reads never differ. Neither ever
shows the name or contact of a confidential petitioner.

Dates are shown as ISO dates with the deadline's own time zone; a deadline is due
by the end of its due date there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.table import Table
from rich.text import Text

from rrm.views import CONFIDENTIAL

if TYPE_CHECKING:
    from collections.abc import Sequence

    from rich.console import Console

    from rrm.service.engine import OutcomeCount

__all__ = [
    "alerts_table",
    "cases_table",
    "deadlines_table",
    "history_table",
    "print_case",
    "print_workflow",
]

_NOMINAL = "NOMINAL"


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
    """Open deadlines, earliest first, as :func:`rrm.views.deadline_json` gives them."""
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
    """Show a case (as :func:`~rrm.views.case_json` gives it) to an officer."""
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
    if data["follows"]:
        console.print(
            Text("follows: ", style="bold")
            + Text(
                f"{data['follows']['external_ref']} (an earlier case on this facility)"
            )
        )
    if data["deadlines"]:
        console.print(deadlines_table(data["deadlines"]))
    _print_gaps(console, data)
    _print_facts(console, data["facts"])
    if data["possible_events"]:
        events = Table("event", "to state", "roles", "label", title="Possible now")
        for e in data["possible_events"]:
            events.add_row(e["event"], e["to_state"], ", ".join(e["roles"]), e["label"])
        console.print(events)
    elif data["terminal"]:
        console.print(f"[bold]closed:[/bold] {data['outcome'] or data['state']}")


def _print_facts(console: Console, facts: list[dict[str, Any]]) -> None:
    if not facts:
        return
    table = Table("on", "fact", "details", title="Dated facts")
    for f in facts:
        details = "; ".join(f"{k}: {v}" for k, v in f["details"].items())
        table.add_row(f["on_text"], f["label"], details)
    console.print(table)


def _print_gaps(console: Console, data: dict[str, Any]) -> None:
    """What the record does not say: steps an import lacks, an unknown end date."""
    if data["unknown_steps"]:
        gaps = Table(
            "due", "step", "by",
            title="Steps missing from the imported record (no lapse action taken)",
        )  # fmt: skip
        for u in data["unknown_steps"]:
            gaps.add_row(u["due_date"], u["label"], u["actor"])
        console.print(gaps)
        console.print(
            "Record each step with its real date, or the lapse action the "
            "procedure allows."
        )
    if data["remediation_due_unknown"]:
        console.print(
            "[bold]course of remediation:[/bold] end date unknown (never "
            "published); no completion clock runs until it is recorded "
            "(remediation_due_recorded)."
        )


def print_outcomes(console: Console, counts: Sequence[OutcomeCount]) -> None:
    """Cases counted by outcome (open ones as 'open'), then by workflow and state."""
    by_outcome: dict[str, int] = {}
    for c in counts:
        key = c.outcome if c.outcome is not None else "open"
        by_outcome[key] = by_outcome.get(key, 0) + c.cases
    summary = Table("outcome", "cases", title="Cases by outcome")
    for name, n in sorted(by_outcome.items(), key=lambda kv: (-kv[1], kv[0])):
        summary.add_row(name, str(n))
    summary.add_row("total", str(sum(by_outcome.values())), style="bold")
    console.print(summary)
    detail = Table("workflow", "state", "outcome", "cases", "meaning", title="By state")
    for c in counts:
        detail.add_row(
            f"{c.workflow_id} v{c.workflow_version}",
            c.state,
            c.outcome or "open",
            str(c.cases),
            c.label,
        )
    console.print(detail)


def cases_table(cases: list[dict[str, Any]]) -> Table:
    """A list of cases (as :func:`~rrm.views.case_json` gives them)."""
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
        precision = e.get("date_precision")
        table.add_row(
            str(e["seq"]),
            e["occurred_at"]
            if precision is None or precision["field"] != "occurred_at"
            else f"{e['occurred_at']} [{precision['text']}]",
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
    """Show a workflow definition (as :func:`~rrm.views.workflow_json` gives it)."""
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
