"""Fixtures for the storage contract: a migrated database per backend and samples.

Every test here runs on SQLite and, with ``--rrm-postgres``, on PostgreSQL, through
the root ``backend``/``db_url`` fixtures.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

import pytest

from rrm.adapters.sql import migrate
from rrm.adapters.sql.engine import make_engine
from rrm.adapters.sql.uow import SqlUnitOfWorkFactory
from rrm.domain.case import (
    GENESIS_HASH,
    Case,
    Deadline,
    DeadlineStatus,
    Facility,
    HistoryEntry,
    JSONValue,
    Officer,
    Party,
    Petitioner,
    entry_hash,
)
from rrm.service.ports import CaseChange, Determination

if TYPE_CHECKING:
    from collections.abc import Iterator

    import sqlalchemy as sa

# Microseconds everywhere: the history hash covers isoformat(), so storage must
# round-trip them exactly.
T0 = datetime(2025, 1, 6, 15, 0, 0, 123456, tzinfo=UTC)


@pytest.fixture(name="sql_engine")
def _sql_engine(db_url: str) -> Iterator[sa.Engine]:
    engine = make_engine(db_url)
    migrate.upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture(name="uow_factory")
def _uow_factory(sql_engine: sa.Engine) -> SqlUnitOfWorkFactory:
    return SqlUnitOfWorkFactory(sql_engine)


@pytest.fixture(name="build")
def _build() -> Samples:
    return Samples()


class Samples:
    """Builds consistent cases, history entries, deadlines and changes."""

    def facility(self, facility_id: str = "fac-1", owner: str = "Acme") -> Facility:
        return Facility(
            facility_id=facility_id,
            name=f"Plant {facility_id}",
            owner=owner,
            country=Party.MX,
            city="Silao",
            region="Guanajuato",
            sector="automotive",
        )

    def case(
        self,
        case_id: str = "case-1",
        *,
        external_ref: str | None = None,
        state: str = "request_pending",
        workflow_id: str = "usmca-31a-facility",
        facility: Facility | None = None,
        officers: tuple[Officer, ...] = (),
        opened_at: datetime = T0,
    ) -> Case:
        return Case(
            case_id=case_id,
            external_ref=external_ref or f"REF-{case_id}",
            workflow_id=workflow_id,
            workflow_version=1,
            state=state,
            version=1,
            complainant=Party.US,
            respondent=Party.MX,
            initiation="petition",
            facility=facility or self.facility(),
            petitioners=(
                Petitioner(name="Union local 7", contact="union@example.org"),
                Petitioner(name="A worker", confidential=True, contact="+52 55 0000"),
            ),
            officers=officers,
            attributes={"sector": "auto", "workers": 6000, "flags": [True, None]},
            opened_at=opened_at,
            updated_at=opened_at,
            last_event_at=opened_at,
        )

    def officer(self, officer_id: str = "off-1", role: str = "ustr") -> Officer:
        return Officer(
            officer_id=officer_id,
            role=role,
            name=f"Officer {officer_id}",
            email=f"{officer_id}@example.gov",
            language="es",
        )

    def entry(
        self,
        case: Case,
        *,
        event: str = "file_request",
        from_state: str | None = None,
        prev_hash: str = GENESIS_HASH,
        idempotency_key: str | None = None,
        payload: dict[str, JSONValue] | None = None,
        at: datetime | None = None,
    ) -> HistoryEntry:
        """Return the entry that brings *case* to its current version."""
        fields = {
            "case_id": case.case_id,
            "seq": case.version,
            "event": event,
            "from_state": from_state,
            "to_state": case.state,
            "actor": "US",
            "role": "ustr",
            "reason": "filed by the complainant",
            "payload": payload if payload is not None else {"note": "ñ", "n": 1.5},
            "occurred_at": at or case.last_event_at,
            "recorded_at": (at or case.last_event_at) + timedelta(microseconds=7),
            "idempotency_key": idempotency_key,
            "prev_hash": prev_hash,
        }
        return HistoryEntry(**fields, hash=entry_hash(**fields))  # type: ignore[arg-type]

    def deadline(
        self,
        case: Case,
        key: str = "review_due",
        *,
        due_at: datetime | None = None,
        status: DeadlineStatus = DeadlineStatus.OPEN,
        opened_seq: int | None = None,
    ) -> Deadline:
        due = due_at or T0 + timedelta(days=45)
        return Deadline(
            deadline_id=f"{case.case_id}:{key}:{opened_seq or case.version}",
            case_id=case.case_id,
            key=key,
            label=f"Deadline {key}",
            status=status,
            due_date=date(due.year, due.month, due.day),
            due_at=due,
            anchor_event="file_request",
            anchor_at=case.last_event_at,
            counting="calendar",
            days=45,
            calendar_id="mx-federal",
            timezone="America/Mexico_City",
            actor="MX",
            citation="USMCA Annex 31-A, Art. <cite>",
            evidence="R",
            explanation="45 days from the request",
            opened_seq=opened_seq or case.version,
            opened_at=case.last_event_at,
        )

    def opening(
        self,
        case: Case,
        *,
        deadlines: tuple[Deadline, ...] = (),
        idempotency_key: str | None = None,
    ) -> CaseChange:
        """Return the change that opens *case* (version 1)."""
        case = replace(case, deadlines=deadlines)
        entry = self.entry(case, idempotency_key=idempotency_key)
        return CaseChange(
            case=case, expected_version=0, entry=entry, deadlines=deadlines
        )

    def step(
        self,
        case: Case,
        prev: HistoryEntry,
        *,
        to_state: str,
        event: str = "accept_review",
        deadlines: tuple[Deadline, ...] = (),
        officers: tuple[Officer, ...] | None = None,
        determination: bool = False,
        idempotency_key: str | None = None,
    ) -> CaseChange:
        """Return the change moving *case* one version on, after entry *prev*."""
        at = case.last_event_at + timedelta(hours=1, microseconds=1)
        new = replace(
            case,
            state=to_state,
            version=case.version + 1,
            updated_at=at,
            last_event_at=at,
            officers=case.officers if officers is None else officers,
        )
        entry = self.entry(
            new,
            event=event,
            from_state=case.state,
            prev_hash=prev.hash,
            idempotency_key=idempotency_key,
            at=at,
        )
        found = None
        if determination:
            found = Determination(
                case_id=case.case_id,
                facility_id=case.facility.facility_id,
                owner=case.facility.owner,
                determined_at=at,
                seq=new.version,
            )
        return CaseChange(
            case=new,
            expected_version=case.version,
            entry=entry,
            deadlines=deadlines,
            officers=officers,
            determination=found,
        )
