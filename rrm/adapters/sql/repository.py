"""The SQL case repository: cases, history and deadlines on SQLite or PostgreSQL.

Writes use SQLAlchemy Core statements on the unit of work's connection rather than
ORM object graphs: a transition is a handful of single-row statements, and Core
keeps their cost close to the driver's. Reads load a page of cases with one query
per child table, never one per case.
"""

from __future__ import annotations

import dataclasses
import json
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, TypeVar, final

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session

from rrm.adapters.sql import mapping
from rrm.adapters.sql.cache import CachedChildren
from rrm.adapters.sql.fast import Prepared
from rrm.adapters.sql.tables import (
    CASE,
    CASE_EVENT,
    CASE_OFFICER,
    DAMAGE,
    DEADLINE,
    DETERMINATION,
    FACILITY,
    PETITIONER,
)
from rrm.domain.case import GENESIS_HASH, DeadlineStatus
from rrm.errors import (
    CaseAlreadyExists,
    ConcurrencyConflict,
    DatabaseBusy,
    InvalidInput,
    RRMError,
    StaleCopy,
    StorageError,
)
from rrm.service.ports import Damage, Determination, FacilityRecord, StateCount

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from rrm.adapters.sql.cache import CaseCache
    from rrm.domain.case import Case, Deadline, Facility, HistoryEntry, Officer
    from rrm.service.ports import CaseChange, CaseQuery, DeadlineQuery


__all__ = ["SqlCaseRepository"]

T = TypeVar("T")

# Ids per ``IN (...)`` list; well below SQLite's and PostgreSQL's parameter limits.
_BATCH: Final = 500

# A case row with its facility and the hash of its newest history entry (which a
# change needs to chain its own entry), by primary key.
_LAST_ENTRY: Final = CASE_EVENT.alias("last_entry")
_CASES_FROM: Final = CASE.join(
    FACILITY, CASE.c.facility_id == FACILITY.c.facility_id
).outerjoin(
    _LAST_ENTRY,
    sa.and_(
        _LAST_ENTRY.c.case_id == CASE.c.case_id, _LAST_ENTRY.c.seq == CASE.c.version
    ),
)
_LOAD_COLUMNS: Final = (*mapping.CASE_COLUMNS, _LAST_ENTRY.c.hash.label("last_hash"))

# Statements are built once: composing a statement costs SQLAlchemy more than
# executing it. The ``b_`` parameter names keep WHERE parameters apart from the
# SET columns that share their names.
_CASE_BY_ID: Final = (
    sa.select(*_LOAD_COLUMNS)
    .select_from(_CASES_FROM)
    .where(CASE.c.case_id == sa.bindparam("b_case_id"))
)
_CASES_BY_IDS: Final = (
    sa.select(*_LOAD_COLUMNS)
    .select_from(_CASES_FROM)
    .where(CASE.c.case_id.in_(sa.bindparam("b_ids", expanding=True)))
)
_CASE_BY_ID_LOCKED: Final = _CASE_BY_ID.with_for_update(of=CASE)
# The reads of every fire, prepared like its writes (rrm.adapters.sql.fast).
_FETCH_CASE: Final = Prepared(_CASE_BY_ID, ("b_case_id",))
_FETCH_CASE_LOCKED: Final = Prepared(_CASE_BY_ID_LOCKED, ("b_case_id",))
_CASE_BY_REF: Final = (
    sa.select(*_LOAD_COLUMNS)
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
_FETCH_ENTRY_BY_KEY: Final = Prepared(_ENTRY_BY_KEY, ("b_case_id", "b_key"))
_FACILITY_BY_ID: Final = sa.select(FACILITY).where(
    FACILITY.c.facility_id == sa.bindparam("b_facility_id")
)


@dataclass(frozen=True, slots=True)
class _ChildQueries:
    """Rows of a child table for one case, and for a batch of cases."""

    one: Prepared
    many: sa.Select[Any]

    @classmethod
    def of(cls, table: sa.Table, *order: str) -> _ChildQueries:
        ordered = sa.select(table).order_by(
            table.c.case_id, *(table.c[name] for name in order)
        )
        return cls(
            one=Prepared(
                ordered.where(table.c.case_id == sa.bindparam("b_case_id")),
                ("b_case_id",),
            ),
            many=ordered.where(
                table.c.case_id.in_(sa.bindparam("b_ids", expanding=True))
            ),
        )


_PETITIONERS: Final = _ChildQueries.of(PETITIONER, "position")
_OFFICERS: Final = _ChildQueries.of(CASE_OFFICER, "role", "officer_id")
_DEADLINES: Final = _ChildQueries.of(DEADLINE, "opened_seq", "key")
# The writes of every fire run as prepared statements (see rrm.adapters.sql.fast).
# An update writes only the columns a change can move; the rest (identity,
# workflow, facility; a deadline's rule) are fixed when the row is inserted, and
# leaving them out spares the database index maintenance on every fire.
CASE_MUTABLE: Final = ("state", "version", "attributes", "updated_at", "last_event_at")
DEADLINE_MUTABLE: Final = (
    "status",
    "due_date",
    "due_at",
    "anchor_at",
    "explanation",
    "closed_seq",
    "closed_at",
    "paused_at",
    "extensions",
    "lapsed_at",
    "alerts_through",
    "next_action_at",
)
_UPDATE_CASE: Final = Prepared(
    sa.update(CASE).where(
        CASE.c.case_id == sa.bindparam("b_case_id"),
        CASE.c.version == sa.bindparam("b_expected"),
    ),
    (*CASE_MUTABLE, "b_case_id", "b_expected"),
)
_UPDATE_CASE_COPY: Final = Prepared(
    sa.update(CASE).where(
        CASE.c.case_id == sa.bindparam("b_case_id"),
        CASE.c.version == sa.bindparam("b_expected"),
        CASE.c.schedule_seq == sa.bindparam("b_seq"),
    ),
    (*CASE_MUTABLE, "b_case_id", "b_expected", "b_seq"),
)
_INSERT_DEADLINE: Final = Prepared(sa.insert(DEADLINE), DEADLINE.c.keys())
_UPDATE_DEADLINE: Final = Prepared(
    sa.update(DEADLINE).where(DEADLINE.c.deadline_id == sa.bindparam("b_deadline_id")),
    (*DEADLINE_MUTABLE, "b_deadline_id"),
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
        cache: Children of cases written earlier, reused while the case row's
            version and schedule stamp match (see :mod:`rrm.adapters.sql.cache`).
            The owner of the transaction publishes :meth:`staged` to it after
            a commit, and calls :meth:`forget` after a partial rollback.

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.2.0 The *cache* argument.
    """

    def __init__(
        self, connection: sa.Connection | Session, *, cache: CaseCache | None = None
    ) -> None:
        if isinstance(connection, Session):
            connection = connection.connection()
        self._conn = connection
        self._insert = _dialect_insert(connection.dialect.name)
        self._append_entry = _APPEND_ENTRY[connection.dialect.name]
        self._cache = cache
        self._pg = connection.dialect.name == "postgresql"
        # Per case read or written in this transaction: its stored children, its
        # schedule stamp, and the hash of its latest entry when known.
        self._seen: dict[str, CachedChildren] = {}
        self._staged: dict[str, CachedChildren] = {}
        # Cases served from the cache unread (get(cached=True)) in this transaction.
        self._unverified: set[str] = set()

    def staged(self) -> dict[str, CachedChildren]:
        """Return (and forget) the children this transaction wrote, to publish."""
        staged, self._staged = self._staged, {}
        return staged

    def forget(self) -> None:
        """Drop what this transaction learnt; a savepoint it relied on rolled back."""
        self._seen.clear()
        self._staged.clear()
        self._unverified.clear()

    # -- reads ------------------------------------------------------------------

    def get(
        self,
        case_id: str,
        *,
        lock: bool = False,
        cached: bool = False,
        stored: bool = False,
    ) -> Case | None:
        """Return the case with its petitioners, officers and deadlines, or ``None``.

        With *lock* on PostgreSQL the case row is locked (``FOR UPDATE``) until
        the transaction ends; SQLite's write transaction holds the database.
        With *cached*, this process's copy of the case is returned unread if it
        has one; the change built on it is then written only if the case is
        still at that version and stamp (else :class:`rrm.errors.StaleCopy`).
        With *stored*, every row is read, none taken from a cache (a child row
        edited behind the engine's back leaves the version as it was).
        """
        if stored:
            with _storage_errors(f"load case {case_id}"):
                rows = _FETCH_CASE.fetch(self._conn, {"b_case_id": case_id})
                return self._with_children(rows)[0] if rows else None
        if cached and self._cache is not None:
            copy = self._cache.latest(case_id)
            if copy is not None and copy.case is not None:
                self._seen[case_id] = copy
                self._unverified.add(case_id)
                return dataclasses.replace(
                    copy.case, attributes=json.loads(copy.attributes_json)
                )
        fetch = _FETCH_CASE_LOCKED if lock and self._pg else _FETCH_CASE
        with _storage_errors(f"load case {case_id}"):
            rows = fetch.fetch(self._conn, {"b_case_id": case_id})
            if not rows:
                return None
            found = rows[0]
            self._unverified.discard(case_id)  # read now: decided on the stored case
            case = self._cached(found)
            if case is None:
                case = self._with_children([found])[0]
                self._remember(case, found)
        return case

    def get_many(self, case_ids: Sequence[str]) -> dict[str, Case]:
        """Return the cases that exist among *case_ids*, loaded in a few queries.

        Meant for cases this transaction has locked (the sweep's claimed cases);
        on PostgreSQL other reads are consistent only in a read-only unit of work.
        """
        found: dict[str, Case] = {}
        with _storage_errors("load cases"):
            for start in range(0, len(case_ids), _BATCH):
                ids = case_ids[start : start + _BATCH]
                rows = self._conn.execute(_CASES_BY_IDS, {"b_ids": ids}).mappings()
                cold = []
                for row in rows:
                    cached = self._cached(row)
                    if cached is None:
                        cold.append(row)
                    else:
                        found[row["case_id"]] = cached
                for row, case in zip(cold, self._with_children(cold), strict=True):
                    self._remember(case, row)
                    found[case.case_id] = case
        return found

    def _cached(self, row: mapping.Row) -> Case | None:
        """Return the case of *row* with cached children, if they are current.

        Children this transaction read or wrote come first, then the shared cache.
        """
        case_id, version, seq = row["case_id"], row["version"], row["schedule_seq"]
        cached = self._seen.get(case_id)
        if cached is None or (cached.version, cached.schedule_seq) != (version, seq):
            if self._cache is None:
                return None
            cached = self._cache.get(case_id, version=version, schedule_seq=seq)
            if cached is None:
                return None
        self._seen[case_id] = cached
        return mapping.case_from_row(
            row,
            petitioners=cached.petitioners,
            officers=cached.officers,
            deadlines=cached.deadlines,
        )

    def _remember(self, case: Case, row: mapping.Row) -> None:
        self._seen[case.case_id] = CachedChildren(
            version=case.version,
            schedule_seq=row["schedule_seq"],
            last_hash=row["last_hash"],
            petitioners=case.petitioners,
            officers=case.officers,
            deadlines=case.deadlines,
        )

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
        known = self._seen.get(case_id)
        if known is not None and known.last_hash is not None:
            return known.last_hash
        with _storage_errors(f"load the history of case {case_id}"):
            result = self._conn.execute(_LAST_HASH, {"b_case_id": case_id})
            found = result.scalar_one_or_none()
        return GENESIS_HASH if found is None else str(found)

    def entry_by_idempotency_key(self, case_id: str, key: str) -> HistoryEntry | None:
        """Return the entry recorded under an idempotency key, or ``None``."""
        params = {"b_case_id": case_id, "b_key": key}
        with _storage_errors(f"look up a repeated command on case {case_id}"):
            rows = _FETCH_ENTRY_BY_KEY.fetch(self._conn, params)
        return mapping.entry_from_row(rows[0]) if rows else None

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

    def openings(self, facility_id: str) -> list[HistoryEntry]:
        """Return the first history entry of every case on a facility."""
        stmt = (
            sa.select(CASE_EVENT)
            .join(CASE, CASE.c.case_id == CASE_EVENT.c.case_id)
            .where(CASE.c.facility_id == facility_id, CASE_EVENT.c.seq == 1)
            .order_by(CASE_EVENT.c.case_id)
        )
        with _storage_errors(f"load the openings on facility {facility_id}"):
            rows = self._conn.execute(stmt).mappings().all()
        return [mapping.entry_from_row(r) for r in rows]

    def damage(self, case_ids: Sequence[str] | None = None) -> dict[str, Damage]:
        """Return the registered damage of these cases (``None``: of all), by id."""
        stmt = sa.select(DAMAGE)
        if case_ids is not None:
            if not case_ids:
                return {}
            stmt = stmt.where(DAMAGE.c.case_id.in_(list(case_ids)))
        with _storage_errors("load the damage register"):
            rows = self._conn.execute(stmt).mappings().all()
        return {
            r["case_id"]: Damage(
                case_id=r["case_id"],
                found_at=_utc(r["found_at"]),
                field=r["field"],
                problems=tuple(str(p) for p in r["problems"] or ()),
                fingerprint=r["fingerprint"],
            )
            for r in rows
        }

    def record_damage(self, damage: Damage) -> bool:
        """Register a damaged case; True when new or its problems changed."""
        row = {
            "case_id": damage.case_id,
            "found_at": damage.found_at,
            "field": damage.field,
            "problems": list(damage.problems),
            "fingerprint": damage.fingerprint,
        }
        stmt = self._insert(DAMAGE).values(row)
        # Only when the damage changed: no row returned means "known already"
        # (RETURNING, not the row count, which psycopg reports as -1 here).
        upsert = stmt.on_conflict_do_update(
            index_elements=[DAMAGE.c.case_id],
            set_={k: stmt.excluded[k] for k in row if k != "case_id"},
            where=DAMAGE.c.fingerprint != stmt.excluded.fingerprint,
        ).returning(DAMAGE.c.case_id)
        with _storage_errors(f"register the damage of case {damage.case_id}"):
            return self._conn.execute(upsert).first() is not None

    def clear_damage(self, case_id: str) -> bool:
        """Remove a case from the damage register; True if it was there."""
        stmt = sa.delete(DAMAGE).where(DAMAGE.c.case_id == case_id)
        with _storage_errors(f"clear the damage of case {case_id}"):
            return bool(self._conn.execute(stmt).rowcount)

    def determinations(self, case_id: str) -> list[Determination]:
        """Return the case's own DoR determinations, by ``seq``."""
        stmt = (
            sa.select(DETERMINATION)
            .where(DETERMINATION.c.case_id == case_id)
            .order_by(DETERMINATION.c.seq)
        )
        with _storage_errors(f"load the determinations of case {case_id}"):
            rows = self._conn.execute(stmt).mappings().all()
        return [
            Determination(
                case_id=r["case_id"],
                facility_id=r["facility_id"],
                owner=r["owner"],
                determined_at=_utc(r["determined_at"]),
                seq=r["seq"],
            )
            for r in rows
        ]

    def state_counts(self) -> list[StateCount]:
        """Return how many cases each workflow version holds in each state."""
        stmt = (
            sa.select(
                CASE.c.workflow_id,
                CASE.c.workflow_version,
                CASE.c.state,
                sa.func.count().label("n"),
            )
            .group_by(CASE.c.workflow_id, CASE.c.workflow_version, CASE.c.state)
            .order_by(CASE.c.workflow_id, CASE.c.workflow_version, CASE.c.state)
        )
        with _storage_errors("count cases by state"):
            rows = self._conn.execute(stmt).all()
        return [
            StateCount(
                workflow_id=str(r[0]),
                workflow_version=int(r[1]),
                state=str(r[2]),
                cases=int(r[3]),
            )
            for r in rows
        ]

    def facilities(self, facility_id: str | None = None) -> list[FacilityRecord]:
        """Return registered facilities (or one) with their counts, by id."""
        cases = (
            sa.select(sa.func.count())
            .select_from(CASE)
            .where(CASE.c.facility_id == FACILITY.c.facility_id)
            .scalar_subquery()
        )
        mine = (
            sa.select(sa.func.count())
            .select_from(DETERMINATION)
            .where(DETERMINATION.c.facility_id == FACILITY.c.facility_id)
            .scalar_subquery()
        )
        owners = (
            sa.select(sa.func.count())
            .select_from(DETERMINATION)
            .where(DETERMINATION.c.owner == FACILITY.c.owner)
            .scalar_subquery()
        )
        stmt = sa.select(
            FACILITY,
            cases.label("n_cases"),
            mine.label("n_determinations"),
            owners.label("n_owner_determinations"),
        ).order_by(FACILITY.c.facility_id)
        if facility_id is not None:
            stmt = stmt.where(FACILITY.c.facility_id == facility_id)
        with _storage_errors("list facilities"):
            rows = self._conn.execute(stmt).mappings().all()
        return [
            FacilityRecord(
                facility=mapping.facility_from_row(row),
                cases=int(row["n_cases"]),
                determinations=int(row["n_determinations"]),
                owner_determinations=int(row["n_owner_determinations"]),
            )
            for row in rows
        ]

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
        if query.text is not None:
            # LIKE's wildcards in the text are matched literally.
            escaped = (
                query.text.lower()
                .replace("\\", "\\\\")
                .replace("%", "\\%")
                .replace("_", "\\_")
            )
            pattern = f"%{escaped}%"
            # The facilities first (a small table), then the cases by their own
            # columns: a filter on the joined facility made PostgreSQL scan and
            # sort every case instead of walking the opening-time index (B7).
            facilities = sa.select(FACILITY.c.facility_id).where(
                sa.func.lower(FACILITY.c.name).like(pattern, escape="\\")
            )
            stmt = stmt.where(
                sa.or_(
                    sa.func.lower(CASE.c.external_ref).like(pattern, escape="\\"),
                    CASE.c.facility_id.in_(facilities),
                )
            )
        if query.case_ids is not None:
            stmt = stmt.where(CASE.c.case_id.in_(sorted(query.case_ids)))
        column = CASE.c.external_ref if query.order == "reference" else CASE.c.opened_at
        if query.after is not None:
            key, last = query.after
            if query.order == "newest":
                later = sa.or_(
                    column < key, sa.and_(column == key, CASE.c.case_id < last)
                )
            else:
                later = sa.or_(
                    column > key, sa.and_(column == key, CASE.c.case_id > last)
                )
            stmt = stmt.where(later)
        if query.order == "newest":
            stmt = stmt.order_by(column.desc(), CASE.c.case_id.desc())
        else:
            stmt = stmt.order_by(column, CASE.c.case_id)
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

    def lapsed_deadlines(
        self, *, since: datetime, officer_id: str | None = None, limit: int = 100
    ) -> list[Deadline]:
        """Return deadlines that lapsed at or after *since*, latest lapse first."""
        stmt = sa.select(DEADLINE).where(DEADLINE.c.lapsed_at >= since)
        if officer_id is not None:
            stmt = stmt.where(DEADLINE.c.case_id.in_(_cases_of_officer(officer_id)))
        stmt = stmt.order_by(DEADLINE.c.lapsed_at.desc(), DEADLINE.c.deadline_id)
        with _storage_errors("list lapsed deadlines"):
            rows = self._conn.execute(stmt.limit(limit)).mappings()
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
        self._stage(change)

    def _stage(self, change: CaseChange) -> None:
        """Remember the case's stored children as they are now, for the cache.

        They are derived from what was written (the children before the change,
        updated by the change's deadlines and officers), not from ``change.case``,
        so the cache holds what a load would return.
        """
        case = change.case
        if change.expected_version == 0:
            before = CachedChildren(
                version=0,
                schedule_seq=0,
                last_hash=None,
                petitioners=case.petitioners,
                officers=case.officers,
                deadlines=(),
            )
        else:
            found = self._seen.get(case.case_id)
            if found is None or found.version != change.expected_version:
                return  # not read in this transaction: the stored children unknown
            before = found
        deadlines = {d.deadline_id: d for d in before.deadlines}
        deadlines.update((d.deadline_id, _as_stored(d)) for d in change.deadlines)
        officers = before.officers if change.officers is None else change.officers
        stored_officers = tuple(sorted(officers, key=lambda o: (o.role, o.officer_id)))
        stored_deadlines = tuple(
            sorted(deadlines.values(), key=lambda d: (d.opened_seq, d.key))
        )
        whole = None
        if self._cache is not None:
            # The whole case as a load would return it, for fires decided on the
            # copy (its attributes are kept as JSON: the caller holds change.case).
            whole = dataclasses.replace(
                case,
                petitioners=before.petitioners,
                officers=stored_officers,
                deadlines=stored_deadlines,
                opened_at=_utc(case.opened_at),
                updated_at=_utc(case.updated_at),
                last_event_at=_utc(case.last_event_at),
            )
        now = CachedChildren(
            version=case.version,
            schedule_seq=before.schedule_seq,
            last_hash=change.entry.hash,
            petitioners=before.petitioners,
            # In the order a load returns them.
            officers=stored_officers,
            deadlines=stored_deadlines,
            case=whole,
            attributes_json="" if whole is None else json.dumps(case.attributes),
        )
        self._seen[case.case_id] = now
        if self._cache is not None:
            self._staged[case.case_id] = now

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
        case = change.case
        params = {
            "state": case.state,
            "version": case.version,
            "attributes": dict(case.attributes),
            "updated_at": case.updated_at,
            "last_event_at": case.last_event_at,
            "b_case_id": case_id,
            "b_expected": change.expected_version,
        }
        if case_id in self._unverified:
            # Decided on this process's copy: written only if the stored case is
            # still that copy (same version and stamp), else decided again.
            self._unverified.discard(case_id)
            params["b_seq"] = self._seen[case_id].schedule_seq
            if _UPDATE_CASE_COPY.run(self._conn, params) == 0:
                if self._cache is not None:
                    self._cache.discard(case_id)
                self._seen.pop(case_id, None)
                actual = self._version(case_id)
                raise StaleCopy(case_id, change.expected_version, actual)
        elif _UPDATE_CASE.run(self._conn, params) == 0:
            actual = self._version(case_id)
            raise ConcurrencyConflict(case_id, change.expected_version, actual)
        if change.officers is not None:
            self._conn.execute(_DELETE_OFFICERS, {"b_case_id": case_id})
            self._insert_officers(case_id, change.officers)
        if change.repin:
            # A migration to another version of the workflow (rare): the pin is
            # otherwise fixed when the case is inserted.
            self._conn.execute(
                sa.update(CASE)
                .where(CASE.c.case_id == case_id)
                .values(workflow_version=case.workflow_version)
            )

    def _append(self, entry: HistoryEntry, expected: int) -> None:
        # The (case_id, seq) key is the last line of defence against a second
        # writer of the same version.
        row = mapping.entry_to_row(entry)
        if self._append_entry.run(self._conn, row) == 0:
            actual = self._version(entry.case_id)
            raise ConcurrencyConflict(entry.case_id, expected, actual)

    def _write_deadlines(self, change: CaseChange) -> None:
        seq = change.entry.seq
        opened = [d for d in change.deadlines if d.opened_seq == seq]
        changed = [d for d in change.deadlines if d.opened_seq != seq]
        if opened:
            rows = [mapping.deadline_to_row(d) for d in opened]
            _INSERT_DEADLINE.run_many(self._conn, rows)
        if changed:
            self._update_deadlines(change.case.case_id, changed)

    def _update_deadlines(self, case_id: str, deadlines: Sequence[Deadline]) -> None:
        params = []
        for deadline in deadlines:
            row = mapping.deadline_to_row(deadline)
            del row["deadline_id"], row["case_id"]
            params.append({**row, "b_deadline_id": deadline.deadline_id})
        if _UPDATE_DEADLINE.run_many(self._conn, params) != len(params):
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
        # Only when a detail differs, so that the row count says whether the
        # registry changed.
        changed = sa.or_(*(FACILITY.c[k] != stmt.excluded[k] for k in details))
        upsert = stmt.on_conflict_do_update(
            index_elements=[FACILITY.c.facility_id], set_=details, where=changed
        )
        if self._conn.execute(_counted(upsert)).rowcount:
            # Cached copies of the facility's cases show its old details.
            self._conn.execute(
                sa.update(CASE)
                .where(CASE.c.facility_id == facility.facility_id)
                .values(schedule_seq=CASE.c.schedule_seq + 1)
            )

    # -- helpers ----------------------------------------------------------------

    def _version(self, case_id: str) -> int:
        stmt = sa.select(CASE.c.version).where(CASE.c.case_id == case_id)
        return int(self._conn.execute(stmt).scalar_one_or_none() or 0)

    def _load(
        self, stmt: sa.Select[Any], params: dict[str, Any] | None = None
    ) -> list[Case]:
        return self._with_children(self._conn.execute(stmt, params).mappings().all())

    def _with_children(self, rows: Sequence[mapping.Row]) -> list[Case]:
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
        grouped: dict[str, list[T]] = defaultdict(list)
        if len(case_ids) == 1:
            rows = queries.one.fetch(self._conn, {"b_case_id": case_ids[0]})
            grouped[case_ids[0]] = [convert(row) for row in rows]
            return grouped
        for start in range(0, len(case_ids), _BATCH):
            params = {"b_ids": case_ids[start : start + _BATCH]}
            for row in self._conn.execute(queries.many, params).mappings():
                grouped[row["case_id"]].append(convert(row))
        return grouped


_INSTANTS: Final = (
    "due_at",
    "anchor_at",
    "opened_at",
    "closed_at",
    "paused_at",
    "lapsed_at",
    "alerts_through",
    "next_action_at",
)


def _utc(instant: datetime) -> datetime:
    return instant if instant.tzinfo is UTC else instant.astimezone(UTC)


def _as_stored(deadline: Deadline) -> Deadline:
    """Return the deadline as a load would: every instant in UTC."""
    shifted = {
        name: value.astimezone(UTC)
        for name in _INSTANTS
        if (value := getattr(deadline, name)) is not None and value.tzinfo is not UTC
    }
    return dataclasses.replace(deadline, **shifted) if shifted else deadline


def _select_cases() -> sa.Select[Any]:
    return sa.select(*_LOAD_COLUMNS).select_from(_CASES_FROM)


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
    name: Prepared(
        insert(CASE_EVENT).on_conflict_do_nothing(
            index_elements=[CASE_EVENT.c.case_id, CASE_EVENT.c.seq]
        ),
        CASE_EVENT.c.keys(),
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
        if is_busy(exc):
            raise DatabaseBusy(
                f"Could not {action}: the database is busy with another writer; "
                "nothing was written, try again in a moment.",
                hint=BUSY_HINT,
            ) from None
        raise StorageError(
            f"Could not {action}: {_reason(exc)} ({type(exc).__name__})."
        ) from None


BUSY_HINT: Final = (
    "another process holds a lock on the data; wait a moment and repeat the action"
)
# SQLite's primary result codes for a lock held by another connection.
_SQLITE_BUSY: Final = frozenset({5, 6})  # SQLITE_BUSY, SQLITE_LOCKED
# PostgreSQL: lock_not_available (lock_timeout), query_canceled (statement
# timeout), deadlock_detected, serialization_failure.
_PG_BUSY: Final = frozenset({"55P03", "57014", "40P01", "40001"})


def is_busy(exc: SQLAlchemyError) -> bool:
    """True when a driver error means another transaction held a lock too long."""
    orig = getattr(exc, "orig", None)
    code = getattr(orig, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF in _SQLITE_BUSY
    state = getattr(orig, "sqlstate", None)
    if isinstance(state, str):
        return state in _PG_BUSY
    return isinstance(exc, OperationalError) and "locked" in str(orig)


def _reason(exc: SQLAlchemyError) -> str:
    orig = getattr(exc, "orig", None)
    # Only the first line: PostgreSQL's DETAIL lines quote the offending values.
    detail = str(orig or exc).strip().splitlines()[0] if str(orig or exc) else ""
    return f"the database reported {detail or type(exc).__name__}"
