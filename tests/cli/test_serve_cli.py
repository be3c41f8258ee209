"""``rrm token`` and ``rrm serve`` as an operator runs them."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TestToken:
    def test_create_prints_the_token_once_and_list_never_shows_it(
        self, run: Any, any_db: str
    ) -> None:
        """A created token is printed once; the listing shows its id, never the text."""
        made = run(
            "token", "create", "--principal", "ana", "--role", "ustr",
            "--agency", "USTR", "--expires", "90d", "--db", any_db, "--json",
        )  # fmt: skip
        assert made.code == 0, made.err
        token = made.json()
        assert token["token"].startswith(f"rrm_{token['token_id']}_")
        listed = run("token", "list", "--db", any_db, "--json")
        assert [t["token_id"] for t in listed.json()] == [token["token_id"]]
        assert token["token"] not in listed.out
        assert listed.json()[0]["roles"] == ["ustr"]
        assert listed.json()[0]["expires_at"] is not None

    def test_revoke_twice_is_refused_the_second_time(
        self, run: Any, any_db: str
    ) -> None:
        """Revoking a token works once; a second revoke names the token and exits 1."""
        made = run(
            "token", "create", "--principal", "ana", "--role", "ustr",
            "--db", any_db, "--json",
        )  # fmt: skip
        token_id = made.json()["token_id"]
        assert run("token", "revoke", token_id, "--db", any_db).code == 0
        again = run("token", "revoke", token_id, "--db", any_db)
        assert again.code == 1
        assert token_id in again.err
        assert "Traceback" not in again.err

    @pytest.mark.parametrize(
        ("args", "field"),
        [
            (["--role", "USTR Officer"], "roles"),
            (["--role", "ustr", "--expires", "soon"], "expires"),
            (["--role", "ustr", "--agency", "bad agency"], "agencies"),
        ],
    )
    def test_bad_input_is_one_line_and_writes_nothing(
        self, run: Any, any_db: str, args: list[str], field: str
    ) -> None:
        """A malformed role, agency or expiry is refused in one line, nothing stored."""
        bad = run("token", "create", "--principal", "ana", *args, "--db", any_db)
        assert bad.code == 1
        assert field in bad.err
        assert run("token", "list", "--db", any_db, "--json").json() == []


def _serve(db: str, port: int, cwd: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "rrm", "serve", "--db", db, "--port", str(port), *extra],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_ready(port: int, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    pytest.fail("rrm serve did not become ready")


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.terminate()
    out, _ = proc.communicate(timeout=30)
    return out


class TestServe:
    def test_first_start_prints_one_admin_token_that_works(
        self, tmp_path: Path, cli_env: None
    ) -> None:
        """A first start creates the database and prints a working admin token once."""
        db = f"sqlite:///{tmp_path / 'new.sqlite'}"
        port = _free_port()
        proc = _serve(db, port, tmp_path)
        try:
            _wait_ready(port, proc)
        finally:
            out = _stop(proc)
        token = out.strip().splitlines()[-1]
        assert token.startswith("rrm_")
        proc = _serve(db, port, tmp_path)
        try:
            _wait_ready(port, proc)
            answer = httpx.get(
                f"http://127.0.0.1:{port}/api/v1/cases",
                headers={"Authorization": f"Bearer {token}"},
            )
            refused = httpx.get(f"http://127.0.0.1:{port}/api/v1/cases")
        finally:
            second = _stop(proc)
        assert answer.status_code == 200
        assert answer.json() == {"items": [], "next_cursor": None}
        assert refused.status_code == 401
        assert "rrm_" not in second

    @pytest.mark.postgres
    def test_two_server_processes_share_one_postgres(
        self, tmp_path: Path, cli_env: None, database_url_for: Any
    ) -> None:
        """With --workers 2 on PostgreSQL, both processes answer from one database."""
        with database_url_for("postgres", tmp_path) as db:
            port = _free_port()
            proc = _serve(db, port, tmp_path, "--workers", "2")
            try:
                _wait_ready(port, proc)
                token = _token_from(proc)
                with httpx.Client(
                    base_url=f"http://127.0.0.1:{port}",
                    headers={"Authorization": f"Bearer {token}"},
                ) as client:
                    codes = {client.get("/api/v1/cases").status_code for _ in range(40)}
            finally:
                _stop(proc)
        assert codes == {200}


def _token_from(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("rrm_"):
            return line.strip()
    pytest.fail("no token printed")


class TestServeConfig:
    def test_serve_settings_come_from_rrm_toml(
        self, tmp_path: Path, cli_env: None
    ) -> None:
        """The [serve] and [oidc] tables of rrm.toml reach rrm serve's options."""
        from rrm.cli import app
        from rrm.cli.config import default_map, load_settings

        toml = tmp_path / "rrm.toml"
        toml.write_text(
            "[serve]\nport = 8123\nworkers = 2\ngrants = ['ustr:USTR:US']\n"
            "[oidc]\nissuer = 'https://idp.example'\n"
            "role_map = ['rrm-ustr=ustr']\n"
        )
        import typer.main

        root = typer.main.get_command(app)
        serve = default_map(root, load_settings(toml))["serve"]
        assert serve == {
            "port": 8123,
            "workers": 2,
            "grant": ["ustr:USTR:US"],
            "oidc_issuer": "https://idp.example",
            "oidc_role_map": ["rrm-ustr=ustr"],
        }

    def test_a_grants_list_of_numbers_is_refused(
        self, tmp_path: Path, run: Any
    ) -> None:
        """A [serve] grants list that is not text is refused in one line."""
        toml = tmp_path / "bad.toml"
        toml.write_text("[serve]\ngrants = [1, 2]\n")
        bad = run("--config", str(toml), "token", "list")
        assert bad.code == 1
        assert "serve.grants must be a list of text" in bad.err

    def test_half_an_identity_provider_is_refused_before_listening(
        self, tmp_path: Path, run: Any
    ) -> None:
        """An issuer without audience and JWKS is refused at start, in one line."""
        db = f"sqlite:///{tmp_path / 'x.sqlite'}"
        bad = run("serve", "--db", db, "--oidc-issuer", "https://idp.example")
        assert bad.code == 1
        assert "--oidc-audience" in bad.err
        assert not (tmp_path / "x.sqlite").exists()


def _console_sign_in(base: str, token: str) -> httpx.Client:
    """Sign a new client in to the console with an API token, as the form does."""
    client = httpx.Client(base_url=base, trust_env=False, timeout=30)
    page = client.get("/sign-in")
    csrf = page.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    done = client.post(
        "/sign-in",
        data={"csrf_token": csrf, "token": token},
        headers={"Origin": base},
        follow_redirects=False,
    )
    assert done.status_code == 303, done.text
    return client


def _tokens_from(proc: subprocess.Popen[str], count: int) -> list[str]:
    assert proc.stdout is not None
    found: list[str] = []
    for line in proc.stdout:
        if line.startswith("rrm_"):
            found.append(line.strip())
            if len(found) == count:
                return found
    pytest.fail(f"{count} tokens were not printed")


class TestConsoleFromTheCommandLine:
    def test_demo_serve_opens_the_console_on_the_demo(
        self, tmp_path: Path, cli_env: None
    ) -> None:
        """`rrm demo --serve` prints its tokens; the console shows the demo's work."""
        port = _free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "rrm", "demo", str(tmp_path / "demo"), "--serve",
             "--port", str(port)],
            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        try:
            supervisor, officer = _tokens_from(proc, 2)
            _wait_ready(port, proc)
            with closing(_console_sign_in(base, supervisor)) as client:
                work = client.get("/work")
                cases = client.get("/cases")
            with closing(_console_sign_in(base, officer)) as client:
                mine = client.get("/work")
        finally:
            _stop(proc)
        assert work.status_code == 200
        assert "DEMO-RUNNING-1" in work.text  # due within 5 business days
        assert "DEMO-RUNNING-2" in work.text  # its answer lapsed and moved it
        assert all(
            ref in cases.text
            for ref in ("DEMO-REMEDIATION", "DEMO-LAPSE", "DEMO-RUNNING-1")
        )
        assert mine.status_code == 200
        assert "DEMO-RUNNING-1" in mine.text

    @pytest.mark.postgres
    def test_console_sessions_hold_across_server_processes(
        self, tmp_path: Path, cli_env: None, database_url_for: Any
    ) -> None:
        """With --workers 2, a session opened by one process is honoured by both."""
        with database_url_for("postgres", tmp_path) as db:
            port = _free_port()
            proc = _serve(db, port, tmp_path, "--workers", "2")
            try:
                token = _token_from(proc)
                _wait_ready(port, proc)
                with closing(
                    _console_sign_in(f"http://127.0.0.1:{port}", token)
                ) as client:
                    codes = {client.get("/work").status_code for _ in range(40)}
            finally:
                _stop(proc)
        assert codes == {200}
