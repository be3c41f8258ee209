"""``rrm deadlines``: the open deadlines coming up or overdue, across cases."""

from __future__ import annotations

from typing import Annotated

import typer

from rrm.cli.common import (
    DEFAULT_DB,
    DbOption,
    JsonOption,
    console,
    engine_for,
    print_json,
)
from rrm.cli.render import deadlines_table
from rrm.views import deadline_json

__all__ = ["deadlines"]


def deadlines(
    *,
    db: DbOption = DEFAULT_DB,
    within: Annotated[
        int,
        typer.Option(
            "--within", help="Due within this many days (overdue ones included).", min=0
        ),
    ] = 14,
    business: Annotated[
        bool,
        typer.Option(
            "--business",
            help="Count --within in business days of each deadline's calendar.",
        ),
    ] = False,
    overdue: Annotated[
        bool, typer.Option("--overdue", help="Only deadlines that have lapsed.")
    ] = False,
    officer: Annotated[
        str | None,
        typer.Option("--officer", help="Only cases this officer is assigned to."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """List open deadlines due soon or overdue, earliest first, with case refs."""
    with engine_for(db) as engine:
        found = (
            engine.overdue(officer_id=officer)
            if overdue
            else engine.due(
                within,
                unit="business" if business else "calendar",
                officer_id=officer,
            )
        )
        refs = {cid: engine.get(cid).external_ref for cid in {d.case_id for d in found}}
        now = engine.clock.now()
    rows = [
        {"ref": refs[d.case_id], **deadline_json(d, now)}
        for d in sorted(found, key=lambda d: (d.due_at, refs[d.case_id], d.key))
    ]
    if as_json:
        print_json(rows)
    elif rows:
        console.print(deadlines_table(rows, refs=refs))
    else:
        console.print("no open deadlines in that window")
