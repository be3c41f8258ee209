"""Convert between table rows and RRM's frozen domain values.

Rows come in as SQLAlchemy row mappings and go out as plain dictionaries ready for
Core ``insert``/``update`` statements; domain objects never touch a session.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final, TypeAlias

from rrm.adapters.sql.tables import CASE, FACILITY
from rrm.domain.alerts import Alert, AlertKind, AlertStatus
from rrm.domain.case import (
    Case,
    Deadline,
    DeadlineStatus,
    Facility,
    HistoryEntry,
    Officer,
    Party,
    Petitioner,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    import sqlalchemy as sa

    from rrm.service.ports import Determination

__all__ = [
    "CASE_COLUMNS",
    "alert_from_row",
    "alert_to_row",
    "case_from_row",
    "case_to_row",
    "deadline_from_row",
    "deadline_to_row",
    "determination_to_row",
    "entry_from_row",
    "entry_to_row",
    "facility_from_row",
    "facility_to_row",
    "officer_from_row",
    "officer_rows",
    "petitioner_from_row",
    "petitioner_rows",
]

# SQLAlchemy row mappings, or the dictionaries of rrm.adapters.sql.fast.
Row: TypeAlias = Mapping[Any, Any]

# A case row joined with its facility; facility columns carry a ``facility_``
# prefix so they do not collide with the case's own columns.
CASE_COLUMNS: tuple[sa.ColumnElement[Any], ...] = (
    *CASE.c,
    FACILITY.c.name.label("facility_name"),
    FACILITY.c.owner.label("facility_owner"),
    FACILITY.c.country.label("facility_country"),
    FACILITY.c.city.label("facility_city"),
    FACILITY.c.region.label("facility_region"),
    FACILITY.c.sector.label("facility_sector"),
)


def facility_to_row(facility: Facility) -> dict[str, Any]:
    """Return the ``rrm_facility`` row for *facility*."""
    return {
        "facility_id": facility.facility_id,
        "name": facility.name,
        "owner": facility.owner,
        "country": facility.country.value,
        "city": facility.city,
        "region": facility.region,
        "sector": facility.sector,
    }


def facility_from_row(row: Row, prefix: str = "") -> Facility:
    """Return the facility stored in *row* (columns optionally prefixed)."""
    return Facility(
        facility_id=row["facility_id"],
        name=row[f"{prefix}name"],
        owner=row[f"{prefix}owner"],
        country=Party(row[f"{prefix}country"]),
        city=row[f"{prefix}city"],
        region=row[f"{prefix}region"],
        sector=row[f"{prefix}sector"],
    )


def case_to_row(case: Case) -> dict[str, Any]:
    """Return the ``rrm_case`` row for *case* (children are stored separately)."""
    return {
        "case_id": case.case_id,
        "external_ref": case.external_ref,
        "workflow_id": case.workflow_id,
        "workflow_version": case.workflow_version,
        "state": case.state,
        "version": case.version,
        "complainant": case.complainant.value,
        "respondent": case.respondent.value,
        "initiation": case.initiation,
        "facility_id": case.facility.facility_id,
        "attributes": dict(case.attributes),
        "opened_at": case.opened_at,
        "updated_at": case.updated_at,
        "last_event_at": case.last_event_at,
    }


def case_from_row(
    row: Row,
    *,
    petitioners: Sequence[Petitioner],
    officers: Sequence[Officer],
    deadlines: Sequence[Deadline],
) -> Case:
    """Return the case stored in a row selected with :data:`CASE_COLUMNS`."""
    return Case(
        case_id=row["case_id"],
        external_ref=row["external_ref"],
        workflow_id=row["workflow_id"],
        workflow_version=row["workflow_version"],
        state=row["state"],
        version=row["version"],
        complainant=Party(row["complainant"]),
        respondent=Party(row["respondent"]),
        initiation=row["initiation"],
        facility=facility_from_row(row, prefix="facility_"),
        petitioners=tuple(petitioners),
        officers=tuple(officers),
        attributes=row["attributes"],
        opened_at=row["opened_at"],
        updated_at=row["updated_at"],
        last_event_at=row["last_event_at"],
        deadlines=tuple(deadlines),
    )


def petitioner_rows(case: Case) -> list[dict[str, Any]]:
    """Return the ``rrm_petitioner`` rows of *case*, numbered in filing order."""
    return [
        {
            "case_id": case.case_id,
            "position": position,
            "name": p.name,
            "confidential": p.confidential,
            "contact": p.contact,
        }
        for position, p in enumerate(case.petitioners)
    ]


def petitioner_from_row(row: Row) -> Petitioner:
    """Return the petitioner stored in *row*."""
    return Petitioner(
        name=row["name"], confidential=bool(row["confidential"]), contact=row["contact"]
    )


def officer_rows(case_id: str, officers: Sequence[Officer]) -> list[dict[str, Any]]:
    """Return the ``rrm_case_officer`` rows assigning *officers* to a case."""
    return [
        {
            "case_id": case_id,
            "officer_id": o.officer_id,
            "role": o.role,
            "name": o.name,
            "email": o.email,
            "language": o.language,
            "timezone": o.timezone,
        }
        for o in officers
    ]


def officer_from_row(row: Row) -> Officer:
    """Return the officer assignment stored in *row*."""
    return Officer(
        officer_id=row["officer_id"],
        role=row["role"],
        name=row["name"],
        email=row["email"],
        language=row["language"],
        timezone=row["timezone"],
    )


def entry_to_row(entry: HistoryEntry) -> dict[str, Any]:
    """Return the ``rrm_case_event`` row for a history entry."""
    return {
        "case_id": entry.case_id,
        "seq": entry.seq,
        "event": entry.event,
        "from_state": entry.from_state,
        "to_state": entry.to_state,
        "actor": entry.actor,
        "role": entry.role,
        "reason": entry.reason,
        "payload": dict(entry.payload),
        "occurred_at": entry.occurred_at,
        "recorded_at": entry.recorded_at,
        "idempotency_key": entry.idempotency_key,
        "prev_hash": entry.prev_hash,
        "hash": entry.hash,
        "via": entry.via,
        "subject": None if entry.subject is None else dict(entry.subject),
    }


def entry_from_row(row: Row) -> HistoryEntry:
    """Return the history entry stored in *row*."""
    return HistoryEntry(
        case_id=row["case_id"],
        seq=row["seq"],
        event=row["event"],
        from_state=row["from_state"],
        to_state=row["to_state"],
        actor=row["actor"],
        role=row["role"],
        reason=row["reason"],
        payload=row["payload"],
        occurred_at=row["occurred_at"],
        recorded_at=row["recorded_at"],
        idempotency_key=row["idempotency_key"],
        prev_hash=row["prev_hash"],
        hash=row["hash"],
        via=row["via"] or "",
        subject=row["subject"],
    )


def deadline_to_row(deadline: Deadline) -> dict[str, Any]:
    """Return the ``rrm_deadline`` row for *deadline*."""
    return {
        "deadline_id": deadline.deadline_id,
        "case_id": deadline.case_id,
        "key": deadline.key,
        "label": deadline.label,
        "status": deadline.status.value,
        "due_date": deadline.due_date,
        "due_at": deadline.due_at,
        "anchor_event": deadline.anchor_event,
        "anchor_at": deadline.anchor_at,
        "counting": deadline.counting,
        "days": deadline.days,
        "calendar_id": deadline.calendar_id,
        "timezone": deadline.timezone,
        "actor": deadline.actor,
        "citation": deadline.citation,
        "evidence": deadline.evidence,
        "explanation": deadline.explanation,
        "opened_seq": deadline.opened_seq,
        "opened_at": deadline.opened_at,
        "closed_seq": deadline.closed_seq,
        "closed_at": deadline.closed_at,
        "paused_at": deadline.paused_at,
        "extensions": deadline.extensions,
        "lapsed_at": deadline.lapsed_at,
        "alerts_through": deadline.alerts_through,
        "next_action_at": deadline.next_action_at,
    }


def deadline_from_row(row: Row) -> Deadline:
    """Return the deadline stored in *row*."""
    return Deadline(
        deadline_id=row["deadline_id"],
        case_id=row["case_id"],
        key=row["key"],
        label=row["label"],
        status=DeadlineStatus(row["status"]),
        due_date=row["due_date"],
        due_at=row["due_at"],
        anchor_event=row["anchor_event"],
        anchor_at=row["anchor_at"],
        counting=row["counting"],
        days=row["days"],
        calendar_id=row["calendar_id"],
        timezone=row["timezone"],
        actor=row["actor"],
        citation=row["citation"],
        evidence=row["evidence"],
        explanation=row["explanation"],
        opened_seq=row["opened_seq"],
        opened_at=row["opened_at"],
        closed_seq=row["closed_seq"],
        closed_at=row["closed_at"],
        paused_at=row["paused_at"],
        extensions=row["extensions"],
        lapsed_at=row["lapsed_at"],
        alerts_through=row["alerts_through"],
        next_action_at=row["next_action_at"],
    )


def determination_to_row(determination: Determination) -> dict[str, Any]:
    """Return the ``rrm_determination`` row for a determination."""
    return {
        "case_id": determination.case_id,
        "seq": determination.seq,
        "facility_id": determination.facility_id,
        "owner": determination.owner,
        "determined_at": determination.determined_at,
    }


_ALERT_FIELDS: Final = (
    "alert_id",
    "deadline_id",
    "case_id",
    "step",
    "recipient_id",
    "recipient_email",
    "recipient_role",
    "language",
    "timezone",
    "owed_at",
    "created_at",
    "late",
    "attempts",
    "next_attempt_at",
    "last_error",
    "sent_at",
    "claimed_until",
    "acknowledged_at",
    "acknowledged_by",
)


def alert_to_row(alert: Alert) -> dict[str, Any]:
    """Return the ``rrm_alert`` row for an outbox entry."""
    row = {name: getattr(alert, name) for name in _ALERT_FIELDS}
    row.update(kind=alert.kind.value, status=alert.status.value)
    return row


def alert_from_row(row: Row) -> Alert:
    """Return the outbox entry stored in *row*."""
    fields = {name: row[name] for name in _ALERT_FIELDS}
    fields["late"] = bool(fields["late"])
    return Alert(
        kind=AlertKind(row["kind"]), status=AlertStatus(row["status"]), **fields
    )
