"""``rrm audit verify``: check the hash chain of every case's history."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from rrm.cli.common import (
    DEFAULT_DB,
    DbOption,
    JsonOption,
    console,
    engine_for,
    print_json,
)
from rrm.cli.render import chain_json

__all__ = ["app"]

app = typer.Typer(no_args_is_help=True, help="Audit the case histories.")


@app.command("verify")
def verify(
    *,
    db: DbOption = DEFAULT_DB,
    case: Annotated[
        str | None, typer.Option("--case", help="Only this case (id or reference).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Check each case's history chain; name the first broken entry (exit 1 if any)."""
    with engine_for(db) as engine:
        cases = [engine.get(case)] if case is not None else engine.find()
        reports = [
            chain_json(engine.verify(c.case_id), c.external_ref)
            for c in sorted(cases, key=lambda c: c.external_ref)
        ]
    broken = [r for r in reports if not r["ok"]]
    if as_json:
        print_json(reports)
    else:
        table = Table("case", "entries", "chain")
        for r in reports:
            table.add_row(
                r["ref"],
                str(r["entries"]),
                Text("ok", style="green")
                if r["ok"]
                else Text(f"BROKEN at entry {r['first_broken_seq']}", style="bold red"),
            )
        console.print(table)
        if broken:
            console.print(
                f"[bold red]{len(broken)} of {len(reports)} case histories broken"
                "[/bold red]"
            )
        else:
            console.print(f"[green]{len(reports)} case histories intact[/green]")
    if broken:
        raise typer.Exit(1)
