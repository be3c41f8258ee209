"""The SQL case repository: cases, history and deadlines on SQLite or PostgreSQL.

Writes use SQLAlchemy Core statements on the unit of work's connection rather than
ORM object graphs: a transition is a handful of single-row statements, and Core
keeps their cost close to the driver's. Reads load a page of cases with one query
per child table, never one per case.
"""

from __future__ import annotations

from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, TypeVar, final

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session

from rrm.adapters.sql import mapping
from rrm.adapters.sql.tables import (
    CASE,
    CASE_EVENT,
    CASE_OFFICER,
    DEADLINE,
    DETERMINATION,
    FACILITY,
    PETITIONER,
)
from rrm.domain.case import GENESIS_HASH, DeadlineStatus
from rrm.errors import (
    CaseAlreadyExists,
    ConcurrencyConflict,
    InvalidInput,
    RRMError,
    StorageError,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from rrm.domain.case import Case, Deadline, Facility, HistoryEntry, Officer
    from rrm.service.ports import CaseChange, CaseQuery, DeadlineQuery

__all__ = ["SqlCaseRepository"]

T = TypeVar("T")

# Ids per ``IN (...)`` list; well below SQLite's and PostgreSQL's parameter limits.
_BATCH: Final = 500

_CASES_FROM: Final = CASE.join(FACILITY, CASE.c.facility_id == FACILITY.c.facility_id)

# Statements are built once: composing a statement costs SQLAlchemy more than
# executing it. The ``b_`` parameter names keep WHERE parameters apart from the
# SET columns that share their names.
_CASE_BY_ID: Final = (
    sa.select(*mapping.CASE_COLUMNS)
    .select_from(_CASES_FROM)
    .where(CASE.c.case_id == sa.bindparam("b_case_id"))
)
_CASE_BY_REF: Final = (
    sa.select(*mapping.CASE_COLUMNS)
    .select_from(_CASES_FROM)
    .where(CASE.c.external_ref == sa.bindparam("b_ref"))
)
_HISTORY: Final = (
    sa.select(CASE_EVENT)
    .where(CASE_EVENT.c.case_id == sa.bindparam("b_case_id"))
    .order_by(CASE_EVENT.c.seq)
)
_LAST_HASH: Final = (
    sa.select(CASE_EVENT.c.hash)
    .where(CASE_EVENT.c.case_id == sa.bindparam("b_case_id"))
    .order_by(CASE_EVENT.c.seq.desc())
    .limit(1)
)
_ENTRY_BY_KEY: Final = sa.select(CASE_EVENT).where(
    CASE_EVENT.c.case_id == sa.bindparam("b_case_id"),
    CASE_EVENT.c.idempotency_key == sa.bindparam("b_key"),
)
_FACILITY_BY_ID: Final = sa.select(FACILITY).where(
    FACILITY.c.facility_id == sa.bindparam("b_facility_id")
)


@dataclass(frozen=True, slots=True)
class _ChildQueries:
    """Rows of a child table for one case, and for a batch of cases."""

    one: sa.Select[Any]
    many: sa.Select[Any]

    @classmethod
    def of(cls, table: sa.Table, *order: str) -> _ChildQueries:
        ordered = sa.select(table).order_by(
            table.c.case_id, *(table.c[name] for name in order)
        )
        return cls(
            one=ordered.where(table.c.case_id == sa.bindparam("b_case_id")),
            many=ordered.where(
                table.c.case_id.in_(sa.bindparam("b_ids", expanding=True))
            ),
        )


_PETITIONERS: Final = _ChildQueries.of(PETITIONER, "position")
_OFFICERS: Final = _ChildQueries.of(CASE_OFFICER, "role", "officer_id")
_DEADLINES: Final = _ChildQueries.of(DEADLINE, "opened_seq", "key")
_UPDATE_CASE: Final = sa.update(CASE).where(
    CASE.c.case_id == sa.bindparam("b_case_id"),
    CASE.c.version == sa.bindparam("b_expected"),
)
_UPDATE_DEADLINE: Final = sa.update(DEADLINE).where(
    DEADLINE.c.deadline_id == sa.bindparam("b_deadline_id")
)
_DELETE_OFFICERS: Final = sa.delete(CASE_OFFICER).where(
    CASE_OFFICER.c.case_id == sa.bindparam("b_case_id")
)


@final
class SqlCaseRepository:
    """Loads and stores cases through one connection (or session) of a transaction.

    Args:
        connection: The connection of the caller's transaction, or an ORM session
            whose connection is used. The repository never commits.

    .. versionadded:: 0.1.0
    """

    def __init__(self, connection: sa.Connection | Session) -> None:
        if isinstance(connection, Session):
            connection = connection.connection()
        self._conn = connection
        self._insert = _dialect_insert(connection.dialect.name)
        self._append_entry = _APPEND_ENTRY[connection.dialect.name]

    # -- reads ------------------------------------------------------------------

    def get(self, case_id: str) -> Case | None:
        """Return the case with its petitioners, officers and deadlines, or ``None``."""
        with _storage_errors(f"load case {case_id}"):
            found = self._load(_CASE_BY_ID, {"b_case_id": case_id})
        return found[0] if found else None

    def get_by_ref(self, external_ref: str) -> Case | None:
        """Return the case with that external reference, or ``None``."""
        with _storage_errors(f"load the case with reference {external_ref}"):
            found = self._load(_CASE_BY_REF, {"b_ref": external_ref})
        return found[0] if found else None

    def history(self, case_id: str) -> list[HistoryEntry]:
        """Return the case's history entries in order of ``seq``."""
        with _storage_errors(f"load the history of case {case_id}"):
            rows = self._conn.execute(_HISTORY, {"b_case_id": case_id}).mappings()
            return [mapping.entry_from_row(row) for row in rows]

    def last_hash(self, case_id: str) -> str:
        """Return the hash of the case's latest history entry (genesis if none)."""
        with _storage_errors(f"load the history of case {case_id}"):
            result = self._conn.execute(_LAST_HASH, {"b_case_id": case_id})
            found = result.scalar_one_or_none()
        return GENESIS_HASH if found is None else str(found)

    def entry_by_idempotency_key(self, case_id: str, key: str) -> HistoryEntry | None:
        """Return the entry recorded under an idempotency key, or ``None``."""
        params = {"b_case_id": case_id, "b_key": key}
        with _storage_errors(f"look up a repeated command on case {case_id}"):
            row = self._conn.execute(_ENTRY_BY_KEY, params).mappings().first()
        return None if row is None else mapping.entry_from_row(row)

    def facility(self, facility_id: str) -> Facility | None:
        """Return a facility from the registry, or ``None``."""
        params = {"b_facility_id": facility_id}
        with _storage_errors(f"load facility {facility_id}"):
            row = self._conn.execute(_FACILITY_BY_ID, params).mappings().first()
        return None if row is None else mapping.facility_from_row(row)

    def prior_determinations(
        self, *, facility_id: str, owner: str, case_id: str
    ) -> int:
        """Count DoR determinations against the facility or its owner in other cases."""
        stmt = (
            sa.select(sa.func.count())
            .select_from(DETERMINATION)
            .where(
                sa.or_(
                    DETERMINATION.c.facility_id == facility_id,
                    DETERMINATION.c.owner == owner,
                ),
                DETERMINATION.c.case_id != case_id,
            )
        )
        with _storage_errors(f"count earlier determinations for case {case_id}"):
            return int(self._conn.execute(stmt).scalar_one())

    def find(self, query: CaseQuery) -> list[Case]:
        """Return cases matching the query, most recently opened first."""
        stmt = _select_cases()
        if query.state is not None:
            stmt = stmt.where(CASE.c.state == query.state)
        if query.workflow_id is not None:
            stmt = stmt.where(CASE.c.workflow_id == query.workflow_id)
        if query.facility_id is not None:
            stmt = stmt.where(CASE.c.facility_id == query.facility_id)
        if query.officer_id is not None:
            stmt = stmt.where(CASE.c.case_id.in_(_cases_of_officer(query.officer_id)))
        stmt = stmt.order_by(CASE.c.opened_at.desc(), CASE.c.case_id.desc())
        with _storage_errors("list cases"):
            return self._load(stmt.limit(query.limit))

    def open_deadlines(self, query: DeadlineQuery) -> list[Deadline]:
        """Return open (and, if asked, paused) deadlines, earliest due first."""
        statuses = [DeadlineStatus.OPEN.value]
        if query.include_paused:
            statuses.append(DeadlineStatus.PAUSED.value)
        stmt = sa.select(DEADLINE).where(DEADLINE.c.status.in_(statuses))
        if query.due_from is not None:
            stmt = stmt.where(DEADLINE.c.due_at >= query.due_from)
        if query.due_before is not None:
            stmt = stmt.where(DEADLINE.c.due_at < query.due_before)
        if query.case_id is not None:
            stmt = stmt.where(DEADLINE.c.case_id == query.case_id)
        if query.officer_id is not None:
            officer_cases = _cases_of_officer(query.officer_id)
            stmt = stmt.where(DEADLINE.c.case_id.in_(officer_cases))
        stmt = stmt.order_by(DEADLINE.c.due_at, DEADLINE.c.deadline_id)
        with _storage_errors("list open deadlines"):
            rows = self._conn.execute(stmt.limit(query.limit)).mappings()
            return [mapping.deadline_from_row(row) for row in rows]

    # -- writes -----------------------------------------------------------------

    def save_facility(self, facility: Facility) -> None:
        """Insert a facility into the registry or update its details."""
        with _storage_errors(f"save facility {facility.facility_id}"):
            self._upsert_facility(facility)

    def apply(self, change: CaseChange) -> None:
        """Write everything one fire (or case opening) changes.

        Raises:
            ConcurrencyConflict: If the case is no longer at
                ``change.expected_version``; the caller must roll back.
            CaseAlreadyExists: If a new case reuses an existing external reference.
            InvalidInput: If the change is inconsistent (versions, ids, naive
                datetimes).
            StorageError: If the database fails otherwise.
        """
        _check_change(change)
        case = change.case
        with _storage_errors(f"save case {case.case_id}"):
            if change.expected_version == 0:
                self._insert_case(change)
            else:
                self._update_case(change)
            self._append(change.entry, change.expected_version)
            self._write_deadlines(change)
            if change.determination is not None:
                row = mapping.determination_to_row(change.determination)
                self._conn.execute(sa.insert(DETERMINATION), row)

    def _insert_case(self, change: CaseChange) -> None:
        case = change.case
        self._upsert_facility(case.facility)
        # ON CONFLICT DO NOTHING rather than catching IntegrityError: on PostgreSQL
        # a failed statement poisons the transaction, and we still need to read
        # which case holds the reference.
        stmt = _counted(self._insert(CASE).on_conflict_do_nothing())
        if self._conn.execute(stmt, mapping.case_to_row(case)).rowcount == 0:
            self._raise_duplicate(case)
        if case.petitioners:
            self._conn.execute(sa.insert(PETITIONER), mapping.petitioner_rows(case))
        officers = case.officers if change.officers is None else change.officers
        self._insert_officers(case.case_id, officers)

    def _raise_duplicate(self, case: Case) -> None:
        ref_owner = self._conn.execute(
            sa.select(CASE.c.case_id).where(CASE.c.external_ref == case.external_ref)
        ).scalar_one_or_none()
        if ref_owner is not None:
            raise CaseAlreadyExists(case.external_ref, ref_owner)
        raise ConcurrencyConflict(case.case_id, 0, self._version(case.case_id))

    def _update_case(self, change: CaseChange) -> None:
        case_id = change.case.case_id
        values = mapping.case_to_row(change.case)
        del values["case_id"]
        params = {**values, "b_case_id": case_id, "b_expected": change.expected_version}
        if self._conn.execute(_UPDATE_CASE, params).rowcount == 0:
            actual = self._version(case_id)
            raise ConcurrencyConflict(case_id, change.expected_version, actual)
        if change.officers is not None:
            self._conn.execute(_DELETE_OFFICERS, {"b_case_id": case_id})
            self._insert_officers(case_id, change.officers)

    def _append(self, entry: HistoryEntry, expected: int) -> None:
        # The (case_id, seq) key is the last line of defence against a second
        # writer of the same version.
        row = mapping.entry_to_row(entry)
        if self._conn.execute(self._append_entry, row).rowcount == 0:
            actual = self._version(entry.case_id)
            raise ConcurrencyConflict(entry.case_id, expected, actual)

    def _write_deadlines(self, change: CaseChange) -> None:
        seq = change.entry.seq
        opened = [d for d in change.deadlines if d.opened_seq == seq]
        changed = [d for d in change.deadlines if d.opened_seq != seq]
        if opened:
            rows = [mapping.deadline_to_row(d) for d in opened]
            self._conn.execute(sa.insert(DEADLINE), rows)
        if changed:
            self._update_deadlines(change.case.case_id, changed)

    def _update_deadlines(self, case_id: str, deadlines: Sequence[Deadline]) -> None:
        params = []
        for deadline in deadlines:
            row = mapping.deadline_to_row(deadline)
            del row["deadline_id"], row["case_id"]
            params.append({**row, "b_deadline_id": deadline.deadline_id})
        result = self._conn.execute(_UPDATE_DEADLINE, params)
        if self._conn.dialect.supports_sane_multi_rowcount and result.rowcount != len(
            params
        ):
            msg = f"Could not save case {case_id}: a deadline it changes is not stored."
            raise StorageError(msg)

    def _insert_officers(self, case_id: str, officers: Sequence[Officer]) -> None:
        if officers:
            rows = mapping.officer_rows(case_id, officers)
            self._conn.execute(sa.insert(CASE_OFFICER), rows)

    def _upsert_facility(self, facility: Facility) -> None:
        row = mapping.facility_to_row(facility)
        stmt = self._insert(FACILITY).values(row)
        details = {k: v for k, v in row.items() if k != "facility_id"}
        upsert = stmt.on_conflict_do_update(
            index_elements=[FACILITY.c.facility_id], set_=details
        )
        self._conn.execute(upsert)

    # -- helpers ----------------------------------------------------------------

    def _version(self, case_id: str) -> int:
        stmt = sa.select(CASE.c.version).where(CASE.c.case_id == case_id)
        return int(self._conn.execute(stmt).scalar_one_or_none() or 0)

    def _load(
        self, stmt: sa.Select[Any], params: dict[str, Any] | None = None
    ) -> list[Case]:
        rows = self._conn.execute(stmt, params).mappings().all()
        ids = [row["case_id"] for row in rows]
        if not ids:
            return []
        petitioners = self._children(_PETITIONERS, ids, mapping.petitioner_from_row)
        officers = self._children(_OFFICERS, ids, mapping.officer_from_row)
        deadlines = self._children(_DEADLINES, ids, mapping.deadline_from_row)
        return [
            mapping.case_from_row(
                row,
                petitioners=petitioners.get(row["case_id"], ()),
                officers=officers.get(row["case_id"], ()),
                deadlines=deadlines.get(row["case_id"], ()),
            )
            for row in rows
        ]

    def _children(
        self,
        queries: _ChildQueries,
        case_ids: Sequence[str],
        convert: Callable[[mapping.Row], T],
    ) -> dict[str, list[T]]:
        """Return the rows of a child table for many cases, grouped by case."""
        batches: list[tuple[sa.Select[Any], dict[str, Any]]]
        if len(case_ids) == 1:
            batches = [(queries.one, {"b_case_id": case_ids[0]})]
        else:
            batches = [
                (queries.many, {"b_ids": case_ids[start : start + _BATCH]})
                for start in range(0, len(case_ids), _BATCH)
            ]
        grouped: dict[str, list[T]] = defaultdict(list)
        for stmt, params in batches:
            for row in self._conn.execute(stmt, params).mappings():
                grouped[row["case_id"]].append(convert(row))
        return grouped


def _select_cases() -> sa.Select[Any]:
    return sa.select(*mapping.CASE_COLUMNS).select_from(_CASES_FROM)


def _cases_of_officer(officer_id: str) -> sa.Select[Any]:
    return sa.select(CASE_OFFICER.c.case_id).where(
        CASE_OFFICER.c.officer_id == officer_id
    )


def _dialect_insert(
    dialect: str,
) -> Callable[[sa.Table], sqlite.Insert | postgresql.Insert]:
    if dialect == "sqlite":
        return sqlite.insert
    if dialect == "postgresql":
        return postgresql.insert
    msg = f"RRM stores cases on SQLite or PostgreSQL, not {dialect}."
    raise StorageError(msg)


def _counted(stmt: sqlite.Insert | postgresql.Insert) -> sa.Executable:
    # SQLAlchemy reports rowcount reliably only for UPDATE and DELETE unless asked;
    # an INSERT that ON CONFLICT did nothing is known only by its zero rowcount.
    return stmt.execution_options(preserve_rowcount=True)


# Built once per dialect: this statement runs on every transition, and building
# an ON CONFLICT clause costs more than executing it.
_APPEND_ENTRY: Final = {
    name: _counted(
        insert(CASE_EVENT).on_conflict_do_nothing(
            index_elements=[CASE_EVENT.c.case_id, CASE_EVENT.c.seq]
        )
    )
    for name, insert in (("sqlite", sqlite.insert), ("postgresql", postgresql.insert))
}


def _check_change(change: CaseChange) -> None:
    """Refuse a change whose parts disagree, before anything is written."""
    case, entry = change.case, change.entry
    if case.version != change.expected_version + 1 or entry.seq != case.version:
        reason = (
            f"case {case.case_id} would move from version {change.expected_version} "
            f"to {case.version} with history entry {entry.seq}; each change adds "
            "exactly one entry whose number is the new version"
        )
        raise InvalidInput("change", reason)
    strays = {entry.case_id, *(d.case_id for d in change.deadlines)} - {case.case_id}
    if strays:
        raise InvalidInput("change", "parts of the change belong to other cases")


@contextmanager
def _storage_errors(action: str) -> Iterator[None]:
    """Turn driver errors into StorageError with a message an officer can read."""
    try:
        yield
    except SQLAlchemyError as exc:
        # SQLAlchemy wraps errors raised while binding parameters (for example a
        # naive datetime refused by UTCDateTime); those are the caller's mistake.
        orig = getattr(exc, "orig", None)
        if isinstance(orig, RRMError):
            raise orig from None
        # No chained cause: a host engine may not hide statement parameters, and
        # those can carry personal data into a logged traceback.
        raise StorageError(
            f"Could not {action}: {_reason(exc)} ({type(exc).__name__})."
        ) from None


def _reason(exc: SQLAlchemyError) -> str:
    orig = getattr(exc, "orig", None)
    # Only the first line: PostgreSQL's DETAIL lines quote the offending values.
    detail = str(orig or exc).strip().splitlines()[0] if str(orig or exc) else ""
    if isinstance(exc, OperationalError) and "locked" in detail:
        return "the database is busy with another writer; try again in a moment"
    return f"the database reported {detail or type(exc).__name__}"
