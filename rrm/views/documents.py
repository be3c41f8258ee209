"""Cases, deadlines, history, alerts, chain reports and workflows as JSON values.

The documents that both the ``rrm`` CLI (``--json``) and the HTTP API return, with
stable keys, built from engine values without any presentation library. They are
human-facing reads, so none of them ever shows the name or contact of a
confidential petitioner (``case export`` is the agency's own record and does not go
through here). Instants are ISO 8601 strings; a deadline also carries its local due
date and time zone, since it is due by the end of that day there.
"""

from __future__ import annotations

from datetime import UTC, date
from typing import TYPE_CHECKING, Any

from rrm.domain.deadlines import local_date
from rrm.domain.unknown import UNKNOWN_STEPS, unknown_steps

if TYPE_CHECKING:
    from datetime import datetime

    from rrm.domain.alerts import Alert
    from rrm.domain.case import Case, Deadline, HistoryEntry, Petitioner
    from rrm.service.engine import ChainReport
    from rrm.workflow.spec import WorkflowSpec

__all__ = [
    "CONFIDENTIAL",
    "PRECISION_WORDS",
    "alert_json",
    "case_json",
    "chain_json",
    "date_precision",
    "deadline_json",
    "entry_json",
    "petitioner_json",
    "possible_events",
    "workflow_json",
]

CONFIDENTIAL = "(confidential)"
"""What a reader sees in place of a confidential petitioner's name."""

PRECISION_WORDS = {
    "month": "month only",
    "approx": "approximate",
    "derived": "derived",
    "unknown": "date unknown",
}
"""How a recorded ``date_precision`` is said next to the date it qualifies."""

# Precisions that say the date is exact: nothing to show.
_EXACT = frozenset({"", "day", "exact"})


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def petitioner_json(p: Petitioner) -> dict[str, Any]:
    """Return a petitioner as readers see it: a confidential one has no name or contact.

    Args:
        p: The petitioner as the case records it.
    """
    if p.confidential:
        return {"name": None, "contact": None, "confidential": True}
    return {"name": p.name, "contact": p.contact, "confidential": False}


def deadline_json(d: Deadline, now: datetime) -> dict[str, Any]:
    """Return a deadline with the days left until its local due date.

    Args:
        d: The deadline.
        now: The moment that decides ``days_left`` (negative once overdue) and
            ``overdue``.
    """
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


def _marks(case: Case) -> dict[str, Any]:
    marks = case.attributes.get(UNKNOWN_STEPS)
    return marks if isinstance(marks, dict) else {}


def _unknown_json(case: Case) -> list[dict[str, Any]]:
    """The steps an imported record lacks, still open, earliest first."""
    marks = _marks(case)
    return [
        {
            "key": d.key,
            "label": d.label,
            "actor": d.actor,
            "due_date": d.due_date.isoformat(),
            "timezone": d.timezone,
            "since": marks[d.key].get("since"),
        }
        for d in sorted(unknown_steps(case).values(), key=lambda d: d.due_at)
    ]


# Keys of a recorded fact that are not its details.
_FACT_KEYS = frozenset({"fact", "on", "recorded_at", "date_precision"})


def _facts_json(case: Case, spec: WorkflowSpec) -> list[dict[str, Any]]:
    """The dated facts recorded on the case (workflow v2), in date order."""
    facts = case.attributes.get("facts")
    out = []
    for f in facts if isinstance(facts, list) else []:
        if not isinstance(f, dict):
            continue
        name = str(f.get("fact", ""))
        template = spec.facts.get(name)
        on = str(f.get("on", ""))
        precision = str(f.get("date_precision") or "").strip().lower()
        shown = on[:7] if precision == "month" else on
        out.append(
            {
                "fact": name,
                "label": template.label if template is not None else name,
                "on": on,
                "on_text": shown
                if precision in _EXACT
                else f"{shown} ({PRECISION_WORDS.get(precision, precision)})",
                # For readers that say the precision in their own words.
                "precision": None if precision in _EXACT else precision,
                "date_shown": shown,
                "details": {
                    k: v for k, v in f.items() if k not in _FACT_KEYS and v is not None
                },
                "recorded_at": f.get("recorded_at"),
            }
        )
    return out


def _follows_json(case: Case) -> dict[str, Any] | None:
    follows = case.attributes.get("follows")
    return dict(follows) if isinstance(follows, dict) else None


def _due_unknown(case: Case) -> bool:
    plan = case.attributes.get("remediation_plan")
    return isinstance(plan, dict) and plan.get("due_unknown") is True


def possible_events(spec: WorkflowSpec, state: str) -> list[dict[str, Any]]:
    """Return the events the workflow allows in *state*, with who may record them.

    Args:
        spec: The case's workflow definition.
        state: A state of *spec*; a terminal one allows only the workflow's
            dated facts (workflow v2), which leave the state as it is.
    """
    terminal = spec.states[state].terminal
    return [
        {
            "event": t.event,
            "to_state": t.dest,
            "roles": list(t.roles),
            "label": t.label,
            "guards": list(t.guards),
        }
        for t in spec.transitions_from(state)
        if not terminal or spec.is_fact(t.event)
    ]


def case_json(case: Case, spec: WorkflowSpec, now: datetime) -> dict[str, Any]:
    """Return a case for readers: parties, facility, state, people, deadlines, events.

    Open deadlines come earliest first, each saying whether its step is one an
    imported record lacks (``step_unknown``); ``unknown_steps`` lists those steps,
    and ``remediation_due_unknown`` says the agreed course of remediation has no
    known end date. ``facts`` lists the dated facts recorded on the case (a vote,
    a publication, the actual resumption of liquidation), in date order, each with
    its workflow label and its date as precise as the record says (``on_text``);
    ``follows`` names the earlier case on the facility a second request follows.
    ``possible_events`` lists what may happen next (see :func:`possible_events`).

    Args:
        case: The case.
        spec: The workflow definition the case follows (its id and version).
        now: The moment the deadlines' days left are counted from.
    """
    state = spec.states[case.state]
    unknown = {d.deadline_id for d in unknown_steps(case).values()}
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
            {**deadline_json(d, now), "step_unknown": d.deadline_id in unknown}
            for d in sorted(case.open_deadlines.values(), key=lambda d: d.due_at)
        ],
        "unknown_steps": _unknown_json(case),
        "remediation_due_unknown": _due_unknown(case),
        "facts": _facts_json(case, spec),
        "follows": _follows_json(case),
        "possible_events": possible_events(spec, case.state),
    }


def _is_day(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def date_precision(e: HistoryEntry) -> dict[str, str] | None:
    """Return how precise a history entry's date is, when the record says less.

    An imported or backdated event may carry ``date_precision`` in its payload
    (``month``, ``approx``, ``derived``, ``unknown``). It qualifies the fact's own
    date (``on``) when the event has one, else the instant the event occurred.

    Returns:
        ``None`` for an exact date; else ``precision``, ``field`` (``on`` or
        ``occurred_at``), ``date`` (``YYYY-MM`` for a month, else the day) and
        ``text``, e.g. ``2021-08 (month only)``.
    """
    value = e.payload.get("date_precision")
    if not isinstance(value, str) or value.strip().lower() in _EXACT:
        return None
    precision = value.strip().lower()
    on = e.payload.get("on")
    fact = isinstance(on, str) and _is_day(on)
    day = str(on) if fact else e.occurred_at.astimezone(UTC).date().isoformat()
    shown = day[:7] if precision == "month" else day
    words = PRECISION_WORDS.get(precision, f"precision: {precision}")
    return {
        "precision": precision,
        "field": "on" if fact else "occurred_at",
        "date": shown,
        "text": f"{shown} ({words})",
    }


def entry_json(e: HistoryEntry) -> dict[str, Any]:
    """Return one history entry, hash chain included.

    ``via`` is the credential that proved the actor (``token:<id>`` or
    ``oidc:<issuer>``), empty when the entry came from the CLI or the Python API.
    ``date_precision`` says how precise the recorded date is when the record
    says it is not exact (see :func:`date_precision`), else ``None``.

    Args:
        e: The history entry.
    """
    return {
        "seq": e.seq,
        "event": e.event,
        "from_state": e.from_state,
        "to_state": e.to_state,
        "actor": e.actor,
        "role": e.role,
        "via": e.via,
        "reason": e.reason,
        "payload": dict(e.payload),
        "occurred_at": e.occurred_at.isoformat(),
        "date_precision": date_precision(e),
        "recorded_at": e.recorded_at.isoformat(),
        "idempotency_key": e.idempotency_key,
        "prev_hash": e.prev_hash,
        "hash": e.hash,
        "subject": None if e.subject is None else dict(e.subject),
    }


def alert_json(a: Alert) -> dict[str, Any]:
    """Return one outbox entry (an alert owed, sent, failed or acknowledged).

    Args:
        a: The alert.
    """
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
    """Return the result of checking one case's history chain, with its problems.

    Args:
        report: What the engine found.
        ref: The case's external reference, shown beside its id.
    """
    return {
        "case_id": report.case_id,
        "ref": ref,
        "entries": report.entries,
        "ok": report.ok,
        "first_broken_seq": report.first_broken_seq,
        # What is wrong, in words: a discontinuity, a row the history contradicts.
        "problems": list(report.problems),
        # Whether the stored rows were re-derived from the history (an intact
        # chain is needed), and each stored field that differs, both values.
        "rows_checked": report.rows_checked,
        "differences": [
            {
                "table": d.table,
                "field": d.field,
                "stored": d.stored,
                "derived": d.derived,
                "message": d.message,
            }
            for d in report.differences
        ],
    }


def workflow_json(spec: WorkflowSpec) -> dict[str, Any]:
    """Return a workflow: states, openings, transitions, deadlines and parameters.

    Args:
        spec: The loaded workflow definition.
    """
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
        "facts": [
            {
                "event": f.event,
                "roles": list(f.roles),
                "label": f.label,
                "citation": f.citation,
                "evidence": f.evidence.value,
                "payload": [
                    {"name": p.name, "type": p.type, "required": p.required}
                    for p in f.payload
                ],
            }
            for f in spec.facts.values()
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
                "anchor_from": d.anchor_from,
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
