"""The ``rrm`` command line (Typer + Rich); the only place that configures logging.

Case officers open and advance cases, watch deadlines and alerts, and read the
workflows; operators create the database and run the deadline worker. Every
option can also come from its ``RRM_*`` environment variable or from a config file
(``--config``, ``$RRM_CONFIG`` or ``./rrm.toml``): see :mod:`rrm.cli.config`.
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

from rrm.adapters.email import JinjaAlertRenderer, SmtpNotifier, SmtpSettings
from rrm.adapters.scheduler import SchedulerWorker
from rrm.adapters.sql import migrate
from rrm.adapters.sql.engine import make_engine
from rrm.adapters.webhooks import HttpWebhookSender
from rrm.cli import alerts, audit, cases, config, deadlines, serve, workflows
from rrm.cli.common import DEFAULT_DB, DbOption, console
from rrm.errors import (
    CaseAlreadyExists,
    ConcurrencyConflict,
    DeadlineNotFound,
    GuardRejected,
    InvalidInput,
    NotificationError,
    RoleNotAllowed,
    RRMError,
    StorageError,
    TransitionNotAllowed,
    WorkflowError,
)
from rrm.service.alerting import AlertSettings
from rrm.wiring import bootstrap, upgrade_schema

__all__ = ["app", "main"]

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
db_app = typer.Typer(no_args_is_help=True, help="The database schema.")
app.add_typer(cases.app, name="case")
app.add_typer(alerts.app, name="alerts")
app.add_typer(workflows.app, name="workflows")
app.add_typer(audit.app, name="audit")
app.add_typer(db_app, name="db")
app.add_typer(serve.token_app, name="token")
app.command("deadlines")(deadlines.deadlines)
app.command("serve")(serve.serve)


@app.callback()
def _settings(
    ctx: typer.Context,
    config_file: Annotated[
        Path | None,
        typer.Option(
            "--config",
            envvar="RRM_CONFIG",
            help="Settings file (TOML); default: ./rrm.toml when present.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Give the config file's settings to every command, below options and RRM_*."""
    settings = config.load_settings(config_file)
    if settings:
        ctx.default_map = config.default_map(ctx.command, settings)


def _stderr_logger(*_args: object) -> structlog.PrintLogger:
    return structlog.PrintLogger(sys.stderr)


def _configure_logging(argv: list[str]) -> None:
    if not structlog.is_configured():
        # A worker's log is its output; other commands log warnings only.
        verbose = bool(os.environ.get("RRM_VERBOSE")) or _command(argv) == "worker"
        structlog.configure(
            # Looked up at each use: whatever sys.stderr is then (tests swap it).
            logger_factory=_stderr_logger,
            wrapper_class=structlog.make_filtering_bound_logger(
                logging.INFO if verbose else logging.WARNING
            ),
        )


def _command(argv: list[str]) -> str | None:
    """Return the (first) command named in *argv*, skipping the root's options."""
    args = iter(argv)
    for arg in args:
        if arg == "--config":
            next(args, None)
        elif not arg.startswith("-"):
            return arg
    return None


@app.command("init")
def init(db: DbOption = DEFAULT_DB) -> None:
    """Create the database (or upgrade it) so cases can be opened."""
    upgrade_schema(db)
    console.print(f"database ready at schema {migrate.head()}", highlight=False)


@app.command("demo")
def demo(
    folder: Annotated[
        Path | None,
        typer.Argument(help="Keep the demo database and e-mails in this folder."),
    ] = None,
    serve: Annotated[
        bool,
        typer.Option(
            "--serve",
            help="Then open the officer console on the demo's database and print "
            "its address and sign-in tokens.",
        ),
    ] = False,
    host: Annotated[
        str, typer.Option(help="With --serve: the address to listen on.")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(min=1, max=65535, help="With --serve: the TCP port.")
    ] = 8000,
) -> None:
    """Run sample cases through months of simulated time, offline, in seconds."""
    from rrm.cli.demo import run_demo, serve_demo  # noqa: PLC0415 - the demo's extras

    if serve:
        code = serve_demo(folder, console, host=host, port=port)
    else:
        code = run_demo(folder, console)
    if code:
        raise typer.Exit(code)


@db_app.command("upgrade")
def db_upgrade(db: DbOption = DEFAULT_DB) -> None:
    """Create or upgrade RRM's tables to the newest revision."""
    upgrade_schema(db)
    console.print("schema upgraded")


@db_app.command("current")
def db_current(db: DbOption = DEFAULT_DB) -> None:
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
    db: DbOption = DEFAULT_DB,
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
    verify_hours: Annotated[
        float,
        typer.Option(
            envvar="RRM_VERIFY_HOURS",
            min=0,
            help="Verify every case against its history this often (first at "
            "start); damaged cases are skipped and the admin told. 0: never.",
        ),
    ] = 24.0,
    once: Annotated[
        bool,
        typer.Option(
            "--once", envvar="RRM_ONCE", help="Tick once, print the report, exit."
        ),
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the --once report as JSON.")
    ] = False,
    admin_address: Annotated[
        str,
        typer.Option(
            envvar="RRM_ADMIN_ADDRESS",
            help="Receives one e-mail per dead letter and per damaged case.",
        ),
    ] = "",
    supervisor_address: Annotated[
        str,
        typer.Option(
            envvar="RRM_SUPERVISOR_ADDRESS",
            help="Receives overdue alerts of cases with no supervisor assigned.",
        ),
    ] = "",
    fallback_address: Annotated[
        str,
        typer.Option(
            envvar="RRM_FALLBACK_ADDRESS",
            help="Receives alerts of cases with no officer to alert.",
        ),
    ] = "",
    digest_hour: Annotated[
        int | None,
        typer.Option(
            envvar="RRM_DIGEST_HOUR",
            min=0,
            max=23,
            help="Send each officer a daily digest at this local hour.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Send deadline alerts and webhooks, record lapses, waking whenever owed.

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
    sender = HttpWebhookSender()
    try:
        engine = bootstrap(
            sql,
            webhooks=sender,
            notifier=SmtpNotifier(settings) if settings else None,
            renderer=renderer if settings else None,
            alert_settings=AlertSettings(
                admin_address=admin_address,
                supervisor_address=supervisor_address,
                fallback_address=fallback_address,
                digest_hour=digest_hour,
            ),
        )
        catch_up = "Catching up on everything owed while no worker ran..."
        if once:
            with console.status(catch_up):
                counts = asdict(engine.tick())
            if as_json:
                print(json.dumps(counts))
            else:
                console.print(
                    ", ".join(f"{k} {v}" for k, v in counts.items()), soft_wrap=True
                )
            return
        runner = SchedulerWorker(
            engine,
            sweep_seconds=sweep_seconds,
            verify_seconds=verify_hours * 3600 if verify_hours > 0 else None,
        )
        # The catch-up after downtime can be long (a backlog of alerts): show it.
        # The worker's own first tick then finds it done (ticks are idempotent).
        with console.status(catch_up):
            engine.tick()
        with _stop_on_signals(runner.stop):
            runner.run_forever()
    finally:
        sender.close()
        sql.dispose()


# A next step for errors that carry none of their own, by kind (most specific first).
# InvalidInput has none: its message names the option and what it must be.
_HINTS: Final = (
    (CaseAlreadyExists, "give another --ref, or read the case with `rrm case show`"),
    (TransitionNotAllowed, "`rrm case show REF` lists the events possible now"),
    (RoleNotAllowed, "act in one of the allowed roles with --role"),
    (GuardRejected, "give the details the check needs with --set or --payload"),
    (DeadlineNotFound, "`rrm case show REF` lists the open deadlines and their keys"),
    (ConcurrencyConflict, "reload the case with `rrm case show REF` and try again"),
    (WorkflowError, "`rrm workflows list` shows the loaded workflows"),
    (StorageError, "check --db (or RRM_DB, or db in the config file)"),
    (NotificationError, "check the SMTP settings"),
)


def _one_line(exc: RRMError) -> str:
    hint = exc.hint or next((h for kind, h in _HINTS if isinstance(exc, kind)), None)
    text = f"rrm: {exc}" + (f" ({hint})" if hint else "")
    return " ".join(text.split())


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return 0 on success, 1 on a user error, 2 on a usage error.

    A user error (any ``RRMError``) prints one line, ``rrm: <message> (<hint>)``, on
    stderr and never a traceback.
    """
    _configure_logging(sys.argv[1:] if argv is None else argv)
    try:
        # Without standalone mode, click returns the code of typer.Exit instead.
        code = app(args=argv, prog_name="rrm", standalone_mode=False)
    except RRMError as exc:
        print(_one_line(exc), file=sys.stderr)
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
