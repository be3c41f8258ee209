"""``rrm case ...``: open, fire, show, list, history, assign, extend, toll, withdraw."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REF = "USTR-2025-001"


class TestOpen:
    def test_opens_a_case_from_options_and_prints_it(self, any_db, run, open_args):
        """On each backend the case opens; the print names its state and label."""
        result = run(*open_args(any_db))

        assert result.code == 0, result.err
        assert REF in result.out
        assert "review_requested" in result.out
        assert "Request for review sent" in result.out
        assert "respondent_answer" in result.out

    def test_prints_json_with_stable_keys(self, sqlite_db, run, open_args):
        """--json gives the case as one object: state, version, deadlines, events."""
        data = run(*open_args(sqlite_db), "--json").json()

        assert data["ref"] == REF
        assert data["state"] == "review_requested"
        assert data["version"] == 1
        assert data["facility"]["country"] == "MX"
        assert {d["key"] for d in data["deadlines"]} == {
            "respondent_answer",
            "respondent_review",
        }
        assert "respondent_agrees" in {e["event"] for e in data["possible_events"]}
        assert [o["officer_id"] for o in data["officers"]] == ["ana", "sam"]

    def test_opens_from_a_case_file(self, sqlite_db, run, tmp_path, open_args):
        """--file takes the case part of the import format; --actor/--role/--at too."""
        exported = tmp_path / "case.json"
        source = f"sqlite:///{tmp_path / 'source.sqlite'}"
        assert run("init", "--db", source).code == 0
        assert run(*open_args(source)).code == 0
        assert (
            run("case", "export", REF, "--db", source, "--out", str(exported)).code == 0
        )
        import json

        case_part = json.loads(exported.read_text())["case"]
        only_case = tmp_path / "only-case.json"
        case_part["external_ref"] = "FROM-FILE"
        only_case.write_text(json.dumps(case_part))

        result = run(
            "case", "open", "--db", sqlite_db, "--file", str(only_case),
            "--actor", "officer:ana", "--role", "ustr", "--json",
        )  # fmt: skip

        assert result.code == 0, result.err
        data = result.json()
        assert data["ref"] == "FROM-FILE"
        assert data["state"] == "review_requested"
        assert data["facility"]["name"] == "Planta Norte"

    def test_missing_options_are_a_usage_error(self, sqlite_db, run):
        """Without --file, the case's fields are needed: exit 2 naming them."""
        result = run("case", "open", "--db", sqlite_db, "--workflow", "usmca-31a")

        assert result.code == 2
        assert "--initiation" in result.err

    def test_a_bad_officer_spec_is_a_user_error(
        self, sqlite_db, run, open_args, user_error
    ):
        """--officer must be id:role[:email[:lang[:tz]]]."""
        error = user_error(run(*open_args(sqlite_db), "--officer", "nobody"))

        assert "--officer" in error

    def test_a_second_case_with_the_same_ref_is_refused(
        self, opened, run, open_args, user_error
    ):
        """The reference is unique: one line naming the existing case."""
        error = user_error(run(*open_args(opened)))

        assert REF in error

    def test_shows_nominal_deadlines_as_nominal(self, sqlite_db, run):
        """A deadline resting on recalled text carries the NOMINAL mark."""
        result = run(
            "case", "open", "--db", sqlite_db, "--workflow", "usmca-31b",
            "--initiation", "request", "--complainant", "CA", "--respondent", "MX",
            "--facility-id", "MX-9", "--facility-name", "Mina", "--owner", "Minera",
            "--basis", "annex_23a_legislation", "--sector-category", "mining",
            "--ref", "ESDC-1", "--actor", "officer:claire", "--role", "complainant",
        )  # fmt: skip

        assert result.code == 0, result.err
        assert "NOMINAL" in result.out


class TestFire:
    def test_records_an_event(self, any_db, run, open_args):
        """On each backend the event moves the case; --json shows the new state."""
        assert run(*open_args(any_db)).code == 0

        result = run(
            "case", "fire", REF, "respondent_agrees", "--db", any_db,
            "--role", "respondent", "--actor", "mx:note-17", "--json",
        )  # fmt: skip

        assert result.code == 0, result.err
        data = result.json()
        assert data["state"] == "respondent_reviewing"
        assert data["version"] == 2

    def test_set_gives_payload_fields(self, opened, run):
        """--set key=value fills the payload the workflow's check needs."""
        assert run(
            "case", "fire", REF, "suspend_liquidation", "--db", opened,
            "--role", "ustr", "--actor", "officer:ana",
        ).code == 0  # fmt: skip

        result = run(
            "case", "fire", REF, "case_closed", "--db", opened, "--role", "ustr",
            "--actor", "officer:ana", "--set", "basis=USTR notice", "--json",
        )  # fmt: skip

        assert result.code == 0, result.err
        assert result.json()["state"] == "closed"

    def test_a_repeated_idempotency_key_changes_nothing(self, opened, run):
        """The same --key twice records the event once."""
        args = (
            "case", "fire", REF, "respondent_agrees", "--db", opened,
            "--role", "respondent", "--actor", "mx", "--key", "note-17", "--json",
        )  # fmt: skip
        first = run(*args).json()
        second = run(*args).json()

        assert first["version"] == second["version"] == 2

    @pytest.mark.parametrize(
        ("args", "words"),
        [
            (["NO-SUCH-CASE", "respondent_agrees", "--role", "ustr"], "NO-SUCH-CASE"),
            ([REF, "panel_requested", "--role", "ustr"], "not possible"),
            ([REF, "respondent_agrees", "--role", "panel"], "allowed roles"),
            ([REF, "respondent_agrees", "--role", "ustr", "--payload", "{bad"], "--payload"),
            ([REF, "respondent_agrees", "--role", "ustr", "--payload", "[1]"], "--payload"),
            ([REF, "respondent_agrees", "--role", "ustr", "--set", "novalue"], "--set"),
            ([REF, "respondent_agrees", "--role", "ustr", "--at", "2025-01-06T10:00"], "time zone"),
            ([REF, "respondent_agrees", "--role", "ustr", "--at", "yesterday"], "--at"),
            ([REF, "respondent_agrees", "--role", "ustr", "--expect", "7"], "version 7"),
            ([REF, "case_closed", "--role", "ustr"], "condition"),
        ],
        ids=["unknown-case", "illegal-event", "bad-role", "malformed-payload",
             "payload-not-object", "bad-set", "naive-at", "bad-at", "stale-version",
             "guard"],
    )  # fmt: skip
    def test_user_errors_are_one_line(self, opened, run, user_error, args, words):
        """Each mistake exits 1 with one line naming it, and writes nothing."""
        assert run(
            "case", "fire", REF, "suspend_liquidation", "--db", opened,
            "--role", "ustr", "--actor", "officer:ana",
        ).code == 0  # fmt: skip

        error = user_error(
            run("case", "fire", *args, "--actor", "officer:ana", "--db", opened)
        )

        assert words in error
        assert run("case", "show", REF, "--db", opened, "--json").json()["version"] == 2

    def test_missing_role_is_a_usage_error(self, opened, run):
        """--role is required: exit 2."""
        result = run("case", "fire", REF, "respondent_agrees", "--db", opened)

        assert result.code == 2


class TestShow:
    def test_shows_parties_state_people_deadlines_and_events(self, opened, run):
        """The officer's view of a case, in one screen."""
        result = run("case", "show", REF, "--db", opened)

        assert result.code == 0, result.err
        for words in (
            "US → MX", "Planta Norte", "review_requested", "Request for review sent",
            "ana@ustr.example", "supervisor", "(confidential)", "respondent_answer",
            "10 calendar days after the request for review", "respondent_agrees",
            "America/Mexico_City",
        ):  # fmt: skip
            assert words in result.out, words

    def test_shows_what_the_record_lacks_its_facts_and_their_precision(
        self, sqlite_db, run, tmp_path, open_args
    ):
        """An imported case shows its unknown steps, dated facts (month only) and link."""
        facility = {
            "facility_id": "MX-S1", "name": "Planta S", "owner": "G", "country": "MX"
        }  # fmt: skip
        doc = {
            "format": "rrm-history/1",
            "case": {
                "external_ref": "SIL-1", "workflow": "usmca-31a",
                "initiation": "request", "complainant": "US", "respondent": "MX",
                "facility": facility,
                "claim": {
                    "basis": "annex_23a_legislation", "sector_category": "manufacturing"
                },
            },
            "events": [
                {"at": "2025-01-06T17:00:00+00:00", "event": "request_for_review",
                 "role": "ustr"},
                {"at": "2025-01-08T17:00:00+00:00", "event": "legitimation_vote",
                 "role": "ustr", "payload": {
                     "on": "2024-11-01", "result": "rejected", "date_precision": "month"
                 }},
            ],
        }  # fmt: skip
        path = tmp_path / "silent.json"
        path.write_text(json.dumps(doc))
        assert run("case", "import", str(path), "--db", sqlite_db).code == 0

        result = run("case", "show", "SIL-1", "--db", sqlite_db)

        assert result.code == 0, result.err
        for words in (
            "Steps missing from the imported record",
            "Mexico answers whether it will conduct the review",
            "Dated facts", "2024-11 (month only)",
            "A legitimation vote on the collective bargaining agreement was held",
            "result: rejected",
        ):  # fmt: skip
            assert words in result.out, words
        data = run("case", "show", "SIL-1", "--db", sqlite_db, "--json").json()
        assert [u["key"] for u in data["unknown_steps"]] == [
            "respondent_answer",
            "respondent_review",
        ]
        assert data["facts"][0]["on_text"] == "2024-11 (month only)"
        second = run(
            *open_args(
                sqlite_db, "SIL-2",
                **{"--facility-id": "MX-S1", "--facility-name": "Planta S",
                   "--owner": "G", "--payload": json.dumps({"follows": "SIL-1"})},
            )
        )  # fmt: skip
        assert second.code == 0, second.err
        shown = run("case", "show", "SIL-2", "--db", sqlite_db)
        assert "follows: SIL-1" in shown.out

    def test_prints_the_timeline_and_writes_an_svg(self, opened, run, tmp_path):
        """--timeline prints the case's timeline; --svg FILE writes it as SVG."""
        svg = tmp_path / "timeline.svg"

        result = run(
            "case", "show", REF, "--db", opened, "--timeline", "--svg", str(svg)
        )

        assert result.code == 0, result.err
        assert "request_for_review" in result.out
        assert svg.read_text().startswith("<svg")

    def test_unknown_case(self, sqlite_db, run, user_error):
        """An unknown reference is one line with a hint."""
        error = user_error(run("case", "show", "NOPE", "--db", sqlite_db))

        assert "NOPE" in error

    def test_a_database_never_initialised_names_the_fix(
        self, tmp_path, run, user_error
    ):
        """A database below the schema RRM needs says to upgrade it."""
        error = user_error(
            run("case", "show", REF, "--db", f"sqlite:///{tmp_path / 'new.sqlite'}")
        )

        assert "rrm db upgrade" in error


class TestList:
    def test_lists_and_filters(self, any_db, run, open_args):
        """Filters by state, workflow, facility and officer; --json is a list."""
        assert run(*open_args(any_db, "A-1")).code == 0
        assert run(*open_args(any_db, "A-2")).code == 0
        assert run(
            "case", "fire", "A-2", "respondent_agrees", "--db", any_db,
            "--role", "respondent", "--actor", "mx",
        ).code == 0  # fmt: skip

        every = run("case", "list", "--db", any_db, "--json").json()
        reviewing = run(
            "case", "list", "--db", any_db, "--state", "respondent_reviewing", "--json"
        ).json()
        by_facility = run(
            "case", "list", "--db", any_db, "--facility", "MX-A-1", "--json"
        ).json()
        by_officer = run(
            "case", "list", "--db", any_db, "--officer", "nobody", "--json"
        ).json()
        human = run("case", "list", "--db", any_db, "--workflow", "usmca-31a")

        assert {c["ref"] for c in every} == {"A-1", "A-2"}
        assert [c["ref"] for c in reviewing] == ["A-2"]
        assert [c["ref"] for c in by_facility] == ["A-1"]
        assert by_officer == []
        assert human.code == 0
        assert "A-1" in human.out
        assert "A-2" in human.out


class TestHistory:
    def test_shows_the_audited_history(self, any_db, run, open_args):
        """Oldest first, with hashes in --json."""
        assert run(*open_args(any_db)).code == 0
        assert run(
            "case", "fire", REF, "respondent_agrees", "--db", any_db,
            "--role", "respondent", "--actor", "mx", "--reason", "note 17",
        ).code == 0  # fmt: skip

        entries = run("case", "history", REF, "--db", any_db, "--json").json()
        human = run("case", "history", REF, "--db", any_db)

        assert [e["event"] for e in entries] == [
            "request_for_review",
            "respondent_agrees",
        ]
        assert entries[1]["prev_hash"] == entries[0]["hash"]
        assert "note 17" in human.out

    def test_unknown_case(self, sqlite_db, run, user_error):
        assert "NOPE" in user_error(run("case", "history", "NOPE", "--db", sqlite_db))


class TestDeadlineChanges:
    def test_extend_moves_the_due_date(self, opened, run):
        """--to gives the agreed date; the history records the reason."""
        data = run(
            "case", "extend", REF, "respondent_review", "--db", opened,
            "--to", "2099-01-15", "--reason", "agreed by letter",
            "--actor", "officer:ana", "--role", "ustr", "--json",
        ).json()  # fmt: skip

        review = next(d for d in data["deadlines"] if d["key"] == "respondent_review")
        assert review["due_date"] == "2099-01-15"
        assert review["extensions"] == 1

    def test_extend_refuses_a_bad_date(self, opened, run, user_error):
        error = user_error(
            run(
                "case", "extend", REF, "respondent_review", "--db", opened,
                "--to", "15/01/2099", "--reason", "x", "--actor", "a", "--role", "ustr",
            )
        )  # fmt: skip

        assert "--to" in error

    def test_extend_an_unknown_deadline(self, opened, run, user_error):
        error = user_error(
            run(
                "case", "extend", REF, "nope", "--db", opened, "--to", "2099-01-15",
                "--reason", "x", "--actor", "a", "--role", "ustr",
            )
        )  # fmt: skip

        assert "nope" in error

    def test_toll_pauses_and_resumes(self, opened, run):
        """--pause stops the clock, --resume restarts it."""
        base = ("--db", opened, "--reason", "closure", "--actor", "a", "--role", "ustr")
        paused = run(
            "case", "toll", REF, "respondent_review", "--pause", *base, "--json"
        )
        resumed = run(
            "case", "toll", REF, "respondent_review", "--resume", *base, "--json"
        )

        assert paused.code == 0, paused.err
        review = next(
            d for d in paused.json()["deadlines"] if d["key"] == "respondent_review"
        )
        assert review["paused"] is True
        assert resumed.code == 0, resumed.err
        events = run("case", "history", REF, "--db", opened, "--json").json()
        assert [e["event"] for e in events][-2:] == [
            "deadline_paused",
            "deadline_resumed",
        ]

    @pytest.mark.parametrize("flags", [[], ["--pause", "--resume"]])
    def test_toll_needs_exactly_one_direction(self, opened, run, flags):
        result = run(
            "case", "toll", REF, "respondent_review", *flags, "--db", opened,
            "--reason", "x", "--actor", "a", "--role", "ustr",
        )  # fmt: skip

        assert result.code == 2


class TestAssign:
    def test_assigns_and_removes_officers(self, opened, run):
        data = run(
            "case", "assign", REF, "--db", opened,
            "--officer", "luis:ustr:luis@ustr.example:es", "--remove", "sam",
            "--actor", "officer:ana", "--role", "ustr", "--json",
        ).json()  # fmt: skip

        assert {(o["officer_id"], o["language"]) for o in data["officers"]} == {
            ("ana", "en"),
            ("luis", "es"),
        }

    def test_an_unknown_role_is_a_user_error(self, opened, run, user_error):
        error = user_error(
            run(
                "case", "assign", REF, "--db", opened, "--officer", "x:astronaut",
                "--actor", "a", "--role", "ustr",
            )
        )  # fmt: skip

        assert "astronaut" in error


class TestWithdraw:
    def test_withdraws_a_request(self, opened, run):
        """In the review stage the request is withdrawn, by the one role allowed."""
        data = run(
            "case", "withdraw", REF, "--db", opened, "--reason", "settled informally",
            "--actor", "officer:ana", "--json",
        ).json()  # fmt: skip

        assert data["state"] == "withdrawn"
        history = run("case", "history", REF, "--db", opened, "--json").json()
        assert history[-1]["event"] == "request_withdrawn"
        assert history[-1]["reason"] == "settled informally"

    def test_withdraws_a_petition_in_the_front_end(self, sqlite_db, run, open_args):
        """Before the ILC decides, it is the petition that is withdrawn."""
        args = open_args(
            sqlite_db, "DOL-1", **{"--initiation": "petition", "--role": "dol"}
        )
        assert run(*args).code == 0, run(*args).err

        result = run(
            "case", "withdraw", "DOL-1", "--db", sqlite_db, "--reason", "petitioner",
            "--actor", "officer:dol", "--role", "dol", "--json",
        )  # fmt: skip

        assert result.code == 0, result.err
        history = run("case", "history", "DOL-1", "--db", sqlite_db, "--json").json()
        assert history[-1]["event"] == "petition_withdrawn"

    def test_a_closed_case_cannot_be_withdrawn(self, opened, run, user_error):
        base = ("--db", opened, "--reason", "x", "--actor", "a")
        assert run("case", "withdraw", REF, *base).code == 0

        error = user_error(run("case", "withdraw", REF, *base))

        assert "withdrawn" in error


class TestConfidentialPetitioners:
    def test_reads_never_show_a_confidential_name(self, opened, run, secret):
        """show, list and history, human or JSON, never print the name."""
        for args in (
            ["case", "show", REF],
            ["case", "show", REF, "--json"],
            ["case", "show", REF, "--timeline"],
            ["case", "list"],
            ["case", "list", "--json"],
            ["case", "history", REF],
            ["case", "history", REF, "--json"],
        ):
            result = run(*args, "--db", opened)
            assert result.code == 0, (args, result.err)
            assert secret not in result.out + result.err, args
        shown = run("case", "show", REF, "--db", opened, "--json").json()
        assert {"name": None, "contact": None, "confidential": True} in shown[
            "petitioners"
        ]

    def test_the_export_keeps_them(self, opened, run, secret, tmp_path: Path):
        """The export is the agency's record (the migration format): names kept."""
        out = tmp_path / "export.json"

        printed = run("case", "export", REF, "--db", opened)
        written = run("case", "export", REF, "--db", opened, "--out", str(out))

        assert printed.code == 0, printed.err
        assert secret in printed.out
        assert written.code == 0
        assert secret in out.read_text()
