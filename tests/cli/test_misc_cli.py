"""``rrm init``, ``audit verify``, ``workflows``, ``case export/import``, settings."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
import sqlalchemy as sa

from rrm.cli import app
from rrm.cli.config import default_map

REF = "USTR-2025-001"


class TestInit:
    def test_creates_then_upgrades_the_database(self, tmp_path, run):
        url = f"sqlite:///{tmp_path / 'new.sqlite'}"

        first = run("init", "--db", url)
        again = run("init", "--db", url)
        current = run("db", "current", "--db", url)

        assert first.code == again.code == current.code == 0
        assert "database ready" in first.out
        assert "needed" in current.out

    def test_defaults_to_rrm_sqlite_here(self, tmp_path, run):
        assert run("init").code == 0
        assert (tmp_path / "rrm.sqlite").exists()

    def test_a_bad_url_is_a_user_error(self, run, user_error):
        assert "db" in user_error(run("init", "--db", "nosuchdb://x")).lower()


class TestAudit:
    def test_intact_chains_pass(self, any_db, run, open_args):
        assert run(*open_args(any_db)).code == 0

        result = run("audit", "verify", "--db", any_db, "--json")
        human = run("audit", "verify", "--db", any_db, "--case", REF)

        assert result.code == 0
        assert result.json() == [
            {
                "case_id": result.json()[0]["case_id"],
                "ref": REF,
                "entries": 1,
                "ok": True,
                "first_broken_seq": None,
                "problems": [],
                "rows_checked": True,
                "differences": [],
                "anchor_mismatch_seq": None,
                "missing": False,
            }
        ]
        assert human.code == 0
        assert "intact" in human.out

    def test_names_the_first_tampered_entry(
        self, any_db, run, open_args, sql_engine_for
    ):
        """An UPDATE behind RRM's back breaks the chain at that entry: exit 1."""
        assert run(*open_args(any_db)).code == 0
        assert run(*open_args(any_db, "OTHER")).code == 0
        for event, role in (("respondent_agrees", "respondent"),
                            ("suspend_liquidation", "ustr")):  # fmt: skip
            fired = run(
                "case", "fire", REF, event, "--db", any_db, "--role", role,
                "--actor", "a",
            )  # fmt: skip
            assert fired.code == 0, fired.err
        with sql_engine_for(any_db).begin() as conn:
            conn.execute(
                sa.text(
                    "UPDATE rrm_case_event SET reason = 'rewritten' WHERE seq = 2 "
                    "AND case_id = (SELECT case_id FROM rrm_case WHERE external_ref = :r)"
                ),
                {"r": REF},
            )

        result = run("audit", "verify", "--db", any_db, "--json")
        human = run("audit", "verify", "--db", any_db)

        assert result.code == 1
        by_ref = {r["ref"]: r for r in result.json()}
        assert by_ref[REF]["first_broken_seq"] == 2
        assert by_ref["OTHER"]["ok"] is True
        assert human.code == 1
        assert "BROKEN at entry 2" in human.out

    def test_unknown_case(self, sqlite_db, run, user_error):
        user_error(run("audit", "verify", "--db", sqlite_db, "--case", "NOPE"))


class TestWorkflows:
    def test_show_lists_states_transitions_and_deadlines(self, run):
        human = run("workflows", "show", "usmca-31a")
        data = run("workflows", "show", "usmca-31a", "--version", "1", "--json").json()

        assert human.code == 0
        assert "respondent_reviewing" in human.out
        assert "NOMINAL" in human.out
        review = next(d for d in data["deadlines"] if d["key"] == "respondent_review")
        assert review["days"] == 45
        assert review["unit"] == "calendar"
        assert review["evidence"] == "S"
        assert review["nominal"] is False
        agrees = next(
            t for t in data["transitions"] if t["event"] == "respondent_agrees"
        )
        assert agrees["roles"] == ["respondent", "ustr"]
        assert agrees["citation"]

    def test_list_as_json(self, run):
        ids = {w["workflow"] for w in run("workflows", "list", "--json").json()}

        assert ids >= {"usmca-31a", "usmca-31a-mx", "usmca-31b"}

    def test_unknown_workflow(self, run, user_error):
        assert "nope" in user_error(run("workflows", "show", "nope"))
        user_error(run("workflows", "show", "usmca-31a", "--version", "99"))

    def test_diagram_as_mermaid(self, run, tmp_path):
        printed = run("workflows", "diagram", "usmca-31b")
        out = tmp_path / "d.mmd"
        written = run("workflows", "diagram", "usmca-31b", "--out", str(out))

        assert printed.code == written.code == 0
        assert "stateDiagram-v2" in printed.out
        assert "stateDiagram-v2" in out.read_text()

    @pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz not installed")
    def test_diagram_as_svg(self, run, tmp_path):
        out = tmp_path / "d.svg"

        result = run(
            "workflows", "diagram", "usmca-31a", "--format", "svg", "--out", str(out)
        )

        assert result.code == 0, result.err
        assert "<svg" in out.read_text()

    def test_png_needs_a_file(self, run, user_error):
        assert "--out" in user_error(
            run("workflows", "diagram", "usmca-31a", "--format", "png")
        )

    def test_an_unknown_format_is_a_usage_error(self, run):
        assert run("workflows", "diagram", "usmca-31a", "--format", "gif").code == 2


class TestTransfer:
    def test_export_then_import_elsewhere(self, opened, run, tmp_path, secret):
        """The exported file imports into another database with its history."""
        out = tmp_path / "case.json"
        assert run(
            "case", "fire", REF, "respondent_agrees", "--db", opened,
            "--role", "respondent", "--actor", "mx",
        ).code == 0  # fmt: skip
        assert run("case", "export", REF, "--db", opened, "--out", str(out)).code == 0
        target = f"sqlite:///{tmp_path / 'target.sqlite'}"
        assert run("init", "--db", target).code == 0

        result = run("case", "import", str(out), "--db", target, "--json")
        again = run("case", "import", str(out), "--db", target)

        assert result.code == 0, result.err
        assert [(r["ref"], r["outcome"]) for r in result.json()] == [(REF, "imported")]
        assert again.code == 0
        assert "unchanged" in again.out
        shown = run("case", "show", REF, "--db", target, "--json").json()
        assert shown["state"] == "respondent_reviewing"
        assert secret not in run("case", "show", REF, "--db", target).out

    def test_imports_many_files(self, sqlite_db, run, tmp_path, open_args):
        source = f"sqlite:///{tmp_path / 'source.sqlite'}"
        assert run("init", "--db", source).code == 0
        files = []
        for i in range(3):
            assert run(*open_args(source, f"R-{i}")).code == 0
            files.append(tmp_path / f"r{i}.json")
            assert run("case", "export", f"R-{i}", "--db", source,
                       "--out", str(files[-1])).code == 0  # fmt: skip

        result = run("case", "import", *map(str, files), "--db", sqlite_db)

        assert result.code == 0, result.err
        listed = run("case", "list", "--db", sqlite_db, "--json").json()
        assert {c["ref"] for c in listed} == {"R-0", "R-1", "R-2"}

    def test_a_malformed_file_is_a_user_error(
        self, sqlite_db, run, tmp_path, user_error
    ):
        bad = tmp_path / "bad.json"
        bad.write_text("{not json")
        wrong = tmp_path / "wrong.json"
        wrong.write_text(json.dumps({"format": "other"}))

        assert "bad.json" in user_error(
            run("case", "import", str(bad), "--db", sqlite_db)
        )
        user_error(run("case", "import", str(wrong), "--db", sqlite_db))
        user_error(
            run("case", "import", str(tmp_path / "missing.json"), "--db", sqlite_db)
        )

    def test_export_of_an_unknown_case(self, sqlite_db, run, user_error):
        user_error(run("case", "export", "NOPE", "--db", sqlite_db))


class TestSettings:
    """Option > RRM_* environment > config file > default."""

    @pytest.fixture(name="three")
    def _three(self, tmp_path, run, open_args):
        """Three databases, each holding one case named after it."""
        urls = {}
        for name in ("option", "env", "file"):
            urls[name] = f"sqlite:///{tmp_path / name}.sqlite"
            assert run("init", "--db", urls[name]).code == 0
            assert run(*open_args(urls[name], name.upper())).code == 0
        return urls

    def _refs(self, run, *args):
        result = run(*args, "case", "list", "--json")
        assert result.code == 0, result.err
        return [c["ref"] for c in result.json()]

    def _with_db(self, run, *args):
        result = run(*args)
        assert result.code == 0, result.err
        return [c["ref"] for c in result.json()]

    def test_precedence(self, three, run, tmp_path, monkeypatch):
        toml = tmp_path / "settings.toml"
        toml.write_text(f'db = "{three["file"]}"\n')
        monkeypatch.setenv("RRM_CONFIG", str(toml))

        from_file = self._refs(run)
        monkeypatch.setenv("RRM_DB", three["env"])
        from_env = self._refs(run)
        from_option = self._with_db(
            run, "case", "list", "--json", "--db", three["option"]
        )

        assert (from_file, from_env, from_option) == (["FILE"], ["ENV"], ["OPTION"])

    def test_config_option_and_default_file(self, three, run, tmp_path):
        named = tmp_path / "named.toml"
        named.write_text(f'db = "{three["option"]}"\n')
        (tmp_path / "rrm.toml").write_text(f'db = "{three["file"]}"\n')

        assert self._refs(run) == ["FILE"]  # ./rrm.toml, the working directory's
        assert self._refs(run, "--config", str(named)) == ["OPTION"]

    @pytest.mark.parametrize(
        ("text", "words"),
        [
            ('dbb = "x"', "dbb"),
            ("db = 3", "db must be str"),
            ("[smtp]\nport = 'x'", "smtp.port"),
            ("db = ", "TOML"),
        ],
    )
    def test_a_bad_file_is_a_user_error(self, run, tmp_path, user_error, text, words):
        toml = tmp_path / "bad.toml"
        toml.write_text(text)

        error = user_error(run("--config", str(toml), "case", "list"))

        assert words in error

    def test_a_missing_file_is_a_user_error(self, run, tmp_path, user_error):
        user_error(run("--config", str(tmp_path / "nope.toml"), "case", "list"))

    def test_mail_and_alert_settings_reach_the_worker(self):
        """The worker takes [smtp] and [alerts] and link_template from the file."""
        import typer

        settings = {
            "db": "sqlite:///x", "smtp_host": "mail.example", "smtp_port": 2525,
            "smtp_from": "rrm@example", "link_template": "https://x/{case_id}",
            "admin_address": "a@example", "digest_hour": 7,
        }  # fmt: skip
        mapped = default_map(typer.main.get_command(app), settings)

        assert mapped["worker"] == settings
        assert mapped["case"]["list"] == {"db": "sqlite:///x"}
        assert mapped["workflows"]["show"] == {}


def test_the_installed_command_runs(tmp_path):
    """Smoke test in a real process: python -m rrm, init then list, exit codes."""
    url = f"sqlite:///{tmp_path / 'smoke.sqlite'}"
    env = {"PATH": "/usr/bin:/bin", "COLUMNS": "120"}

    def rrm(*args):
        return subprocess.run(
            [sys.executable, "-m", "rrm", *args],
            capture_output=True, text=True, env=env, cwd=tmp_path, check=False,
        )  # fmt: skip

    init = rrm("init", "--db", url)
    listed = rrm("case", "list", "--db", url, "--json")
    missing = rrm("case", "show", "NOPE", "--db", url)
    usage = rrm("case", "nosuch")

    assert init.returncode == 0, init.stderr
    assert json.loads(listed.stdout) == []
    assert missing.returncode == 1
    assert missing.stderr.startswith("rrm: ")
    assert missing.stderr.count("\n") == 1
    assert usage.returncode == 2


def test_help_lists_every_command(run):
    result = run("--help")

    for name in ("init", "case", "deadlines", "alerts", "workflows", "db", "worker",
                 "audit", "demo"):  # fmt: skip
        assert name in result.out


def test_case_help_lists_its_commands(run):
    result = run("case", "--help")

    for name in ("open", "fire", "show", "list", "history", "assign", "extend",
                 "toll", "withdraw", "export", "import"):  # fmt: skip
        assert name in result.out


def test_demo_runs_offline(run, tmp_path):
    """`rrm demo FOLDER` hands the console to the demo and keeps its files."""
    result = run("demo", str(tmp_path / "demo"))

    assert result.code == 0, result.err
    assert (tmp_path / "demo" / "rrm.sqlite").exists()


def test_a_user_error_ends_with_its_hint(sqlite_db, run, user_error):
    """rrm: <message> (<hint>)."""
    error = user_error(run("case", "show", "NOPE", "--db", sqlite_db))

    assert error == (
        "rrm: No case 'NOPE' exists. (Check the case id or the external reference.)\n"
    )
