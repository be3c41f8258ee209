"""The SQL repository and unit of work keep the storage contract on each backend."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from rrm.adapters.sql.engine import make_engine
from rrm.adapters.sql.uow import SqlUnitOfWork, SqlUnitOfWorkFactory
from rrm.domain.case import GENESIS_HASH, Case, DeadlineStatus, verify_chain
from rrm.errors import (
    CaseAlreadyExists,
    ConcurrencyConflict,
    InvalidInput,
    StorageError,
)
from rrm.service.ports import CaseChange, CaseQuery, DeadlineQuery

# The instant every sample starts from (see tests/contract/conftest.py).
T0 = datetime(2025, 1, 6, 15, 0, 0, 123456, tzinfo=UTC)


def _open(uow_factory: SqlUnitOfWorkFactory, *changes: CaseChange) -> None:
    with uow_factory() as uow:
        for change in changes:
            uow.cases.apply(change)
        uow.commit()


def _get(uow_factory: SqlUnitOfWorkFactory, case_id: str) -> Case | None:
    with uow_factory() as uow:
        return uow.cases.get(case_id)


class TestRoundTrip:
    def test_case_round_trips_with_all_its_parts(self, uow_factory, build):
        """A stored case loads back equal, with all its children and attributes."""
        officers = (build.officer("off-2", "dol"), build.officer("off-1", "ustr"))
        case = build.case(officers=officers)
        deadlines = (build.deadline(case, "answer_due"), build.deadline(case))
        change = build.opening(case, deadlines=deadlines)
        _open(uow_factory, change)

        loaded = _get(uow_factory, "case-1")

        assert loaded == change.case

    def test_confidential_flag_survives(self, uow_factory, build):
        """Petitioners come back in filing order with their confidential flag."""
        _open(uow_factory, build.opening(build.case()))

        loaded = _get(uow_factory, "case-1")

        assert loaded is not None
        assert [p.confidential for p in loaded.petitioners] == [False, True]

    def test_timestamps_are_exact_and_aware_utc(self, uow_factory, build):
        """Time stamps load as aware UTC datetimes, exact to the microsecond."""
        _open(uow_factory, build.opening(build.case()))

        with uow_factory() as uow:
            case = uow.cases.get("case-1")
            (entry,) = uow.cases.history("case-1")

        assert case is not None
        assert case.opened_at == T0
        assert case.opened_at.tzinfo is UTC
        assert entry.recorded_at == T0 + timedelta(microseconds=7)
        assert entry.occurred_at.isoformat() == "2025-01-06T15:00:00.123456+00:00"

    def test_history_chain_verifies_after_loading(self, uow_factory, build):
        """Loaded history entries keep their order, payloads and a valid hash chain."""
        opening = build.opening(build.case())
        step = build.step(opening.case, opening.entry, to_state="review_underway")
        _open(uow_factory, opening, step)

        with uow_factory() as uow:
            history = uow.cases.history("case-1")

        assert history == [opening.entry, step.entry]
        assert verify_chain(history) is None

    def test_last_hash_follows_the_chain(self, uow_factory, build):
        """last_hash is the genesis hash before any entry, then the latest entry's."""
        opening = build.opening(build.case())
        step = build.step(opening.case, opening.entry, to_state="review_underway")

        with uow_factory() as uow:
            before = uow.cases.last_hash("case-1")
            uow.cases.apply(opening)
            uow.cases.apply(step)
            after = uow.cases.last_hash("case-1")

        assert (before, after) == (GENESIS_HASH, step.entry.hash)

    def test_other_offsets_are_stored_as_the_same_instant(self, uow_factory, build):
        """An aware time in another zone is stored as that instant, read as UTC."""
        local = T0.astimezone(timezone(timedelta(hours=-6)))
        _open(uow_factory, build.opening(build.case(opened_at=local)))

        loaded = _get(uow_factory, "case-1")

        assert loaded is not None
        assert loaded.opened_at == T0
        assert loaded.opened_at.utcoffset() == timedelta(0)

    def test_unknown_case_is_none(self, uow_factory):
        """Asking for a case that does not exist returns None."""
        with uow_factory() as uow:
            assert uow.cases.get("nope") is None
            assert uow.cases.get_by_ref("nope") is None

    def test_case_loads_by_external_reference(self, uow_factory, build):
        """A case can be loaded by its external reference."""
        change = build.opening(build.case(external_ref="RRM-MX-2025-01"))
        _open(uow_factory, change)

        with uow_factory() as uow:
            loaded = uow.cases.get_by_ref("RRM-MX-2025-01")

        assert loaded == change.case


class TestInvalidInput:
    def test_naive_datetime_is_refused(self, uow_factory, build):
        """A naive datetime is refused with InvalidInput and nothing is stored."""
        naive = datetime(2025, 1, 6, 15, 0)
        case = replace(build.case(), updated_at=naive)
        change = build.opening(build.case())
        change = replace(change, case=case)

        with uow_factory() as uow, pytest.raises(InvalidInput):
            uow.cases.apply(change)

        assert _get(uow_factory, "case-1") is None

    def test_inconsistent_versions_are_refused(self, uow_factory, build):
        """A change whose entry number is not the new version is refused."""
        change = build.opening(build.case())
        change = replace(change, case=replace(change.case, version=2))

        with uow_factory() as uow, pytest.raises(InvalidInput):
            uow.cases.apply(change)


class TestConcurrency:
    def test_stale_version_conflicts_and_writes_nothing(self, uow_factory, build):
        """A change against an old version raises ConcurrencyConflict, no writes."""
        opening = build.opening(build.case())
        first = build.step(opening.case, opening.entry, to_state="review_underway")
        _open(uow_factory, opening, first)
        stale = build.step(opening.case, opening.entry, to_state="closed")

        with uow_factory() as uow, pytest.raises(ConcurrencyConflict) as caught:
            uow.cases.apply(stale)

        assert (caught.value.expected_version, caught.value.actual_version) == (1, 2)
        loaded = _get(uow_factory, "case-1")
        assert loaded is not None
        assert (loaded.state, loaded.version) == ("review_underway", 2)

    def test_racing_units_of_work_let_exactly_one_win(self, uow_factory, build):
        """Two officers read version 1 and both apply: one commits, one conflicts."""
        opening = build.opening(build.case())
        _open(uow_factory, opening)
        changes = {
            state: build.step(opening.case, opening.entry, to_state=state)
            for state in ("review_underway", "declined")
        }
        barrier = threading.Barrier(len(changes))
        outcomes: dict[str, object] = {}

        def officer(state: str) -> None:
            with uow_factory() as uow:
                seen = uow.cases.get("case-1")
            assert seen is not None
            assert seen.version == 1
            barrier.wait(timeout=10)
            try:
                with uow_factory() as uow:
                    uow.cases.apply(changes[state])
                    uow.commit()
                outcomes[state] = "committed"
            except ConcurrencyConflict as exc:
                outcomes[state] = exc

        threads = [threading.Thread(target=officer, args=(s,)) for s in changes]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)

        assert sorted(map(type, outcomes.values()), key=str) == sorted(
            [str, ConcurrencyConflict], key=str
        )
        (winner,) = [s for s, o in outcomes.items() if o == "committed"]
        loser = next(o for o in outcomes.values() if isinstance(o, ConcurrencyConflict))
        assert (loser.expected_version, loser.actual_version) == (1, 2)
        with uow_factory() as uow:
            loaded = uow.cases.get("case-1")
            history = uow.cases.history("case-1")
        assert loaded is not None
        assert loaded.state == winner
        assert [e.to_state for e in history] == ["request_pending", winner]

    def test_opening_the_same_case_id_twice_conflicts(self, uow_factory, build):
        """Opening a case id that already exists raises ConcurrencyConflict."""
        _open(uow_factory, build.opening(build.case()))
        again = build.opening(build.case(external_ref="OTHER"))

        with uow_factory() as uow, pytest.raises(ConcurrencyConflict) as caught:
            uow.cases.apply(again)

        assert caught.value.actual_version == 1


class TestDuplicates:
    def test_reused_external_reference_raises_case_already_exists(
        self, uow_factory, build
    ):
        """A new case with an existing external reference names the existing case."""
        _open(uow_factory, build.opening(build.case(external_ref="RRM-1")))
        duplicate = build.opening(build.case("case-2", external_ref="RRM-1"))

        with uow_factory() as uow, pytest.raises(CaseAlreadyExists) as caught:
            uow.cases.apply(duplicate)

        assert (caught.value.external_ref, caught.value.case_id) == ("RRM-1", "case-1")
        assert _get(uow_factory, "case-2") is None


class TestIdempotency:
    def test_entry_is_found_by_its_idempotency_key(self, uow_factory, build):
        """The entry recorded under an idempotency key is returned for that key only."""
        opening = build.opening(build.case(), idempotency_key="cmd-1")
        _open(uow_factory, opening)

        with uow_factory() as uow:
            found = uow.cases.entry_by_idempotency_key("case-1", "cmd-1")
            missing = uow.cases.entry_by_idempotency_key("case-1", "cmd-2")

        assert found == opening.entry
        assert missing is None


class TestUnitOfWork:
    def test_uncommitted_work_leaves_nothing(self, uow_factory, build):
        """Leaving a unit of work without commit() discards its writes."""
        with uow_factory() as uow:
            uow.cases.apply(build.opening(build.case()))

        assert _get(uow_factory, "case-1") is None

    def test_rollback_discards_writes(self, uow_factory, build):
        """rollback() discards the writes made so far in the unit of work."""
        with uow_factory() as uow:
            uow.cases.apply(build.opening(build.case()))
            uow.rollback()
            assert uow.cases.get("case-1") is None

    def test_error_in_block_discards_writes(self, uow_factory, build):
        """An exception inside the block rolls the unit of work back."""

        def fail_midway() -> None:
            with uow_factory() as uow:
                uow.cases.apply(build.opening(build.case()))
                raise RuntimeError

        with pytest.raises(RuntimeError):
            fail_midway()

        assert _get(uow_factory, "case-1") is None

    def test_missing_tables_raise_storage_error(self, db_url: str):
        """A database without RRM's tables raises StorageError, not a driver error."""
        engine = make_engine(db_url)
        try:
            with SqlUnitOfWork(engine) as uow, pytest.raises(StorageError):
                uow.cases.get("case-1")
        finally:
            engine.dispose()


class TestChanges:
    def test_deadlines_are_inserted_then_updated(self, uow_factory, build):
        """A later change updates stored deadlines by id and inserts new ones."""
        case = build.case()
        review = build.deadline(case)
        opening = build.opening(case, deadlines=(review,))
        met = replace(review, status=DeadlineStatus.MET, closed_seq=2, closed_at=T0)
        step = build.step(opening.case, opening.entry, to_state="review_underway")
        report = build.deadline(step.case, "report_due", opened_seq=2)
        step = replace(step, deadlines=(met, report))
        _open(uow_factory, opening, step)

        loaded = _get(uow_factory, "case-1")

        assert loaded is not None
        assert loaded.deadlines == (met, report)

    def test_updating_an_unknown_deadline_raises_storage_error(
        self, uow_factory, build
    ):
        """A change that updates a deadline never stored raises StorageError."""
        opening = build.opening(build.case())
        _open(uow_factory, opening)
        ghost = build.deadline(opening.case)
        step = build.step(
            opening.case, opening.entry, to_state="review_underway", deadlines=(ghost,)
        )

        with uow_factory() as uow, pytest.raises(StorageError):
            uow.cases.apply(step)

    def test_officers_are_replaced_when_given(self, uow_factory, build):
        """A change carrying officers replaces the case's assignments."""
        opening = build.opening(build.case(officers=(build.officer("off-1"),)))
        new_team = (build.officer("off-2", "dol"), build.officer("off-3", "ustr"))
        step = build.step(
            opening.case, opening.entry, to_state="review_underway", officers=new_team
        )
        _open(uow_factory, opening, step)

        loaded = _get(uow_factory, "case-1")

        assert loaded is not None
        assert loaded.officers == new_team

    def test_facility_registry_upserts(self, uow_factory, build):
        """save_facility inserts a facility and later updates its details."""
        with uow_factory() as uow:
            uow.cases.save_facility(build.facility("fac-9"))
            uow.cases.save_facility(replace(build.facility("fac-9"), owner="NewCo"))
            uow.commit()

        with uow_factory() as uow:
            stored = uow.cases.facility("fac-9")
            missing = uow.cases.facility("fac-0")

        assert stored == replace(build.facility("fac-9"), owner="NewCo")
        assert missing is None


@pytest.fixture(name="many_cases")
def _many_cases(uow_factory, build) -> None:
    """Four cases across two workflows, two facilities, two states and officers."""
    acme, other = build.facility("fac-1", "Acme"), build.facility("fac-2", "Other")
    specs = [
        ("c1", "request_pending", "wf-a", acme, ("off-1",)),
        ("c2", "review_underway", "wf-a", acme, ("off-2",)),
        ("c3", "review_underway", "wf-b", other, ("off-1", "off-2")),
        ("c4", "request_pending", "wf-b", other, ()),
    ]
    changes = []
    for n, (case_id, state, workflow, facility, officer_ids) in enumerate(specs):
        case = build.case(
            case_id,
            state=state,
            workflow_id=workflow,
            facility=facility,
            officers=tuple(build.officer(o) for o in officer_ids),
            opened_at=T0 + timedelta(days=n),
        )
        due = (T0 + timedelta(days=10 - n), T0 + timedelta(days=20 + n))
        deadlines = (
            build.deadline(case, "answer_due", due_at=due[0]),
            build.deadline(case, "review_due", due_at=due[1]),
        )
        changes.append(build.opening(case, deadlines=deadlines))
    _open(uow_factory, *changes)


@pytest.mark.usefixtures("many_cases")
class TestFind:
    def _ids(self, uow_factory, **filters) -> list[str]:
        with uow_factory() as uow:
            return [c.case_id for c in uow.cases.find(CaseQuery(**filters))]

    def test_all_cases_newest_first(self, uow_factory):
        """Without filters every case is listed, most recently opened first."""
        assert self._ids(uow_factory) == ["c4", "c3", "c2", "c1"]

    def test_by_state(self, uow_factory):
        """Filtering by state lists only cases in that state."""
        assert self._ids(uow_factory, state="review_underway") == ["c3", "c2"]

    def test_by_workflow(self, uow_factory):
        """Filtering by workflow lists only cases of that workflow."""
        assert self._ids(uow_factory, workflow_id="wf-b") == ["c4", "c3"]

    def test_by_facility(self, uow_factory):
        """Filtering by facility lists only that facility's cases."""
        assert self._ids(uow_factory, facility_id="fac-1") == ["c2", "c1"]

    def test_by_officer(self, uow_factory):
        """Filtering by officer lists only cases the officer is assigned to."""
        assert self._ids(uow_factory, officer_id="off-1") == ["c3", "c1"]

    def test_limit(self, uow_factory):
        """A limit keeps only the newest cases."""
        assert self._ids(uow_factory, limit=2) == ["c4", "c3"]

    def test_found_cases_carry_their_parts(self, uow_factory):
        """Listed cases come with their officers, petitioners and deadlines."""
        with uow_factory() as uow:
            (case,) = uow.cases.find(
                CaseQuery(
                    officer_id="off-2", state="review_underway", workflow_id="wf-b"
                )
            )

        assert [o.officer_id for o in case.officers] == ["off-1", "off-2"]
        assert len(case.petitioners) == 2
        assert [d.key for d in case.deadlines] == ["answer_due", "review_due"]

    def test_listing_uses_one_query_per_table(self, uow_factory, sql_engine):
        """Listing a page of cases runs one query per table, not one per case."""
        statements: list[str] = []

        def record(conn, cursor, statement, *args) -> None:
            statements.append(statement)

        sa.event.listen(sql_engine, "before_cursor_execute", record)
        try:
            with uow_factory() as uow:
                found = uow.cases.find(CaseQuery())
        finally:
            sa.event.remove(sql_engine, "before_cursor_execute", record)

        assert len(found) == 4
        assert (
            len([s for s in statements if s.lstrip().upper().startswith("SELECT")]) == 4
        )


@pytest.mark.usefixtures("many_cases")
class TestOpenDeadlines:
    def _due(self, uow_factory, **filters) -> list[tuple[str, str]]:
        with uow_factory() as uow:
            found = uow.cases.open_deadlines(DeadlineQuery(**filters))
        return [(d.case_id, d.key) for d in found]

    def test_all_open_deadlines_earliest_first(self, uow_factory):
        """Every open deadline is listed, earliest due first."""
        assert self._due(uow_factory)[:4] == [
            ("c4", "answer_due"),
            ("c3", "answer_due"),
            ("c2", "answer_due"),
            ("c1", "answer_due"),
        ]
        assert len(self._due(uow_factory)) == 8

    def test_due_window(self, uow_factory):
        """due_from is inclusive and due_before exclusive."""
        window = {
            "due_from": T0 + timedelta(days=8),
            "due_before": T0 + timedelta(days=21),
        }
        assert self._due(uow_factory, **window) == [
            ("c3", "answer_due"),
            ("c2", "answer_due"),
            ("c1", "answer_due"),
            ("c1", "review_due"),
        ]

    def test_by_officer_and_limit(self, uow_factory):
        """Filtering by officer lists only deadlines of that officer's cases."""
        assert self._due(uow_factory, officer_id="off-2", limit=3) == [
            ("c3", "answer_due"),
            ("c2", "answer_due"),
            ("c2", "review_due"),
        ]

    def test_by_case(self, uow_factory):
        """Filtering by case lists only that case's deadlines."""
        assert self._due(uow_factory, case_id="c1") == [
            ("c1", "answer_due"),
            ("c1", "review_due"),
        ]

    def test_paused_only_when_asked_and_closed_never(self, uow_factory, build):
        """Paused deadlines are listed only on request; closed ones never are."""
        with uow_factory() as uow:
            case = uow.cases.get("c1")
            assert case is not None
            answer, review = case.deadlines
            step = build.step(
                case,
                uow.cases.history("c1")[-1],
                to_state="paused",
                deadlines=(
                    replace(answer, status=DeadlineStatus.PAUSED, paused_at=T0),
                    replace(review, status=DeadlineStatus.CANCELLED, closed_seq=2),
                ),
            )
            uow.cases.apply(step)
            uow.commit()

        assert self._due(uow_factory, case_id="c1") == []
        assert self._due(uow_factory, case_id="c1", include_paused=True) == [
            ("c1", "answer_due")
        ]


class TestDeterminations:
    @pytest.fixture(name="determined")
    def _determined(self, uow_factory, build) -> None:
        """Determinations: c1 at Acme fac-1, c2 at Acme fac-2, c3 at Other fac-3."""
        changes = []
        for case_id, facility in [
            ("c1", build.facility("fac-1", "Acme")),
            ("c2", build.facility("fac-2", "Acme")),
            ("c3", build.facility("fac-3", "Other")),
        ]:
            opening = build.opening(build.case(case_id, facility=facility))
            step = build.step(
                opening.case, opening.entry, to_state="determined", determination=True
            )
            changes += [opening, step]
        _open(uow_factory, *changes)

    def _count(self, uow_factory, **kwargs) -> int:
        with uow_factory() as uow:
            return uow.cases.prior_determinations(**kwargs)

    @pytest.mark.usefixtures("determined")
    def test_counts_same_facility_or_owner_in_other_cases(self, uow_factory):
        """Determinations against the same facility or owner in other cases count."""
        assert (
            self._count(uow_factory, facility_id="fac-1", owner="Acme", case_id="new")
            == 2
        )

    @pytest.mark.usefixtures("determined")
    def test_counts_by_facility_alone(self, uow_factory):
        """A determination at the same facility counts even under another owner."""
        assert (
            self._count(uow_factory, facility_id="fac-3", owner="Nobody", case_id="new")
            == 1
        )

    @pytest.mark.usefixtures("determined")
    def test_excludes_the_case_itself(self, uow_factory):
        """The case's own determination is not a prior one."""
        assert (
            self._count(uow_factory, facility_id="fac-1", owner="Acme", case_id="c1")
            == 1
        )

    def test_none_without_determinations(self, uow_factory):
        """With no determinations stored the count is zero."""
        assert (
            self._count(uow_factory, facility_id="fac-1", owner="Acme", case_id="c1")
            == 0
        )
