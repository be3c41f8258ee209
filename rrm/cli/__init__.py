"""The ``rrm`` command line (Typer + Rich); the only place that configures logging.

This first cut covers workflow definitions and the database schema; the case officer
commands arrive with issue #4.
"""

import os
import sys
from pathlib import Path
from typing import Annotated

import structlog
import typer
from rich.console import Console
from rich.table import Table

from rrm.adapters.sql import migrate
from rrm.adapters.sql.engine import make_engine
from rrm.errors import RRMError
from rrm.wiring import upgrade_schema
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


def _configure_logging() -> None:
    if not structlog.is_configured():
        structlog.configure(
            logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
            wrapper_class=structlog.make_filtering_bound_logger(
                30 if not os.environ.get("RRM_VERBOSE") else 20
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


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return 0 on success, 1 on a user error, 2 on a usage error."""
    _configure_logging()
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
