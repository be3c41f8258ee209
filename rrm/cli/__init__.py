"""The ``rrm`` command line (Typer + Rich); the only place that configures logging.

This first cut covers workflow definitions, the database schema and the deadline
worker; the case officer commands arrive with issue #4.
"""

import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from enum import StrEnum
from pathlib import Path
from types import FrameType
from typing import Annotated, Final

import structlog
import typer
from rich.console import Console
from rich.table import Table

from rrm.adapters.email import JinjaAlertRenderer, SmtpNotifier, SmtpSettings
from rrm.adapters.scheduler import SchedulerWorker
from rrm.adapters.sql import migrate
from rrm.adapters.sql.engine import make_engine
from rrm.errors import InvalidInput, RRMError
from rrm.wiring import bootstrap, upgrade_schema
from rrm.workflow.registry import check_released_lock, load_workflows

__all__ = ["app", "main"]

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
workflows_app = typer.Typer(no_args_is_help=True, help="Workflow definitions.")
db_app = typer.Typer(no_args_is_help=True, help="The database schema.")
app.add_typer(workflows_app, name="workflows")
app.add_typer(db_app, name="db")
console = Console()

DbOption = Annotated[
    str,
    typer.Option(
        "--db",
        envvar="RRM_DB",
        help="Database URL (default: the embedded SQLite file rrm.sqlite).",
    ),
]


def _configure_logging(argv: list[str]) -> None:
    if not structlog.is_configured():
        # A worker's log is its output; other commands log warnings only.
        verbose = bool(os.environ.get("RRM_VERBOSE")) or "worker" in argv[:1]
        structlog.configure(
            logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
            wrapper_class=structlog.make_filtering_bound_logger(
                logging.INFO if verbose else logging.WARNING
            ),
        )


@workflows_app.command("list")
def workflows_list(
    path: Annotated[Path | None, typer.Option(help="A folder of definitions.")] = None,
) -> None:
    """List the loaded workflows with their size and evidence."""
    table = Table(
        "workflow",
        "version",
        "status",
        "states",
        "transitions",
        "deadlines",
        "nominal deadlines",
        "title",
    )
    for spec in load_workflows(path).specs.values():
        nominal = sum(d.nominal for d in spec.deadlines.values())
        table.add_row(
            spec.workflow_id,
            str(spec.version),
            spec.status,
            str(len(spec.states)),
            str(len(spec.transitions)),
            str(len(spec.deadlines)),
            str(nominal),
            spec.title,
        )
    console.print(table)


@workflows_app.command("validate")
def workflows_validate(
    path: Annotated[
        Path | None, typer.Argument(help="A folder of definitions.")
    ] = None,
) -> None:
    """Validate every definition and check the lock of released versions."""
    loaded = load_workflows(path)
    problems = check_released_lock(path)
    for problem in problems:
        console.print(f"[red]{problem}[/red]")
    if problems:
        raise typer.Exit(1)
    console.print(f"[green]{len(loaded.specs)} definition(s) valid[/green]")


@db_app.command("upgrade")
def db_upgrade(db: DbOption = "sqlite:///rrm.sqlite") -> None:
    """Create or upgrade RRM's tables to the newest revision."""
    upgrade_schema(db)
    console.print("schema upgraded")


@db_app.command("current")
def db_current(db: DbOption = "sqlite:///rrm.sqlite") -> None:
    """Show the schema revision of the database and the one this RRM needs."""
    engine = make_engine(db)
    try:
        console.print(f"current: {migrate.current(engine) or 'none'}")
        console.print(f"needed:  {migrate.head()}")
    finally:
        engine.dispose()


class SmtpSecurity(StrEnum):
    """How the worker talks to the mail server."""

    STARTTLS = "starttls"
    SSL = "ssl"
    NONE = "none"


_DEFAULT_PORTS: Final = {"starttls": 587, "ssl": 465, "none": 25}


def _smtp_settings(
    *,
    host: str,
    port: int | None,
    security: SmtpSecurity,
    user: str,
    password: str,
    sender: str,
) -> SmtpSettings | None:
    if not host:
        return None
    if not sender:
        raise InvalidInput("--smtp-from", "is needed with --smtp-host")
    return SmtpSettings(
        host=host,
        sender_address=sender,
        port=_DEFAULT_PORTS[security.value] if port is None else port,
        security=security.value,
        username=user,
        password=password,
    )


@contextmanager
def _stop_on_signals(stop: Callable[[], None]) -> Iterator[None]:
    """Call *stop* on SIGTERM and SIGINT while the block runs (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(_signum: int, _frame: FrameType | None) -> None:
        stop()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


@app.command("worker")
def worker(
    *,
    db: DbOption = "sqlite:///rrm.sqlite",
    smtp_host: Annotated[
        str,
        typer.Option(
            envvar="RRM_SMTP_HOST",
            help="Mail server for alerts; without it alerts stay queued, unsent.",
        ),
    ] = "",
    smtp_port: Annotated[
        int | None,
        typer.Option(
            envvar="RRM_SMTP_PORT",
            help="Default: 587 (starttls), 465 (ssl), 25 (none).",
            show_default=False,
        ),
    ] = None,
    smtp_security: Annotated[
        SmtpSecurity, typer.Option(envvar="RRM_SMTP_SECURITY", case_sensitive=False)
    ] = SmtpSecurity.STARTTLS,
    smtp_user: Annotated[
        str, typer.Option(envvar="RRM_SMTP_USER", help="Log in with this name.")
    ] = "",
    smtp_password: Annotated[
        str,
        typer.Option(
            envvar="RRM_SMTP_PASSWORD",
            help="Prefer the environment variable: options show in process lists.",
            show_default=False,
        ),
    ] = "",
    smtp_from: Annotated[
        str, typer.Option(envvar="RRM_SMTP_FROM", help="Sender address of alerts.")
    ] = "",
    link_template: Annotated[
        str,
        typer.Option(
            envvar="RRM_LINK_TEMPLATE",
            help="Case link in alerts, with {case_id}, {case_ref}, {deadline_key} "
            "and {alert_id}.",
        ),
    ] = "",
    sweep_seconds: Annotated[
        float,
        typer.Option(
            envvar="RRM_SWEEP_SECONDS",
            help="Tick at least this often, whatever the plan says.",
        ),
    ] = 60.0,
    once: Annotated[
        bool,
        typer.Option(
            "--once", envvar="RRM_ONCE", help="Tick once, print the report, exit."
        ),
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the --once report as JSON.")
    ] = False,
) -> None:
    """Send deadline alerts and record lapses, waking whenever one is owed.

    Stops cleanly on SIGTERM or Ctrl-C, after the tick in progress.
    """
    settings = _smtp_settings(
        host=smtp_host,
        port=smtp_port,
        security=smtp_security,
        user=smtp_user,
        password=smtp_password,
        sender=smtp_from,
    )
    renderer = JinjaAlertRenderer(link_template)  # checks the template up front
    sql = make_engine(db)
    try:
        engine = bootstrap(
            sql,
            notifier=SmtpNotifier(settings) if settings else None,
            renderer=renderer if settings else None,
        )
        if once:
            counts = asdict(engine.tick())
            if as_json:
                print(json.dumps(counts))
            else:
                console.print(
                    ", ".join(f"{k} {v}" for k, v in counts.items()), soft_wrap=True
                )
            return
        runner = SchedulerWorker(engine, sweep_seconds=sweep_seconds)
        with _stop_on_signals(runner.stop):
            runner.run_forever()
    finally:
        sql.dispose()


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return 0 on success, 1 on a user error, 2 on a usage error."""
    _configure_logging(sys.argv[1:] if argv is None else argv)
    try:
        # Without standalone mode, click returns the code of typer.Exit instead.
        code = app(args=argv, prog_name="rrm", standalone_mode=False)
    except RRMError as exc:
        hint = f" ({exc.hint})" if exc.hint else ""
        print(f"rrm: {exc}{hint}", file=sys.stderr)
        return 1
    except typer.Exit as exc:
        return int(exc.exit_code)
    except typer.Abort:
        return 1
    except typer.TyperException as exc:
        # Typer's own click raises usage errors; they know how to print themselves.
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        return int(getattr(exc, "exit_code", 2))
    return code if isinstance(code, int) else 0
