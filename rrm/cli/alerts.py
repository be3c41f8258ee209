"""``rrm alerts``: the alert outbox; retry a failed alert, acknowledge one."""

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
from rrm.cli.render import alerts_table
from rrm.domain.alerts import AlertStatus
from rrm.views import alert_json

__all__ = ["app"]

app = typer.Typer(
    invoke_without_command=True,
    no_args_is_help=False,
    help="Deadline alerts: list the outbox, retry, acknowledge.",
)

AlertArgument = Annotated[str, typer.Argument(help="The alert id (see `rrm alerts`).")]


@app.callback()
def alerts(
    ctx: typer.Context,
    *,
    db: DbOption = DEFAULT_DB,
    status: Annotated[
        list[str] | None,
        typer.Option(
            "--status",
            help="Only alerts in this status ("
            + ", ".join(s.value for s in AlertStatus)
            + "); repeatable.",
        ),
    ] = None,
    case: Annotated[
        str | None, typer.Option("--case", help="Only alerts of this case.")
    ] = None,
    officer: Annotated[
        str | None, typer.Option("--officer", help="Only alerts to this officer.")
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1)] = None,
    as_json: JsonOption = False,
) -> None:
    """List alerts in the outbox, oldest first (without a sub-command)."""
    if ctx.invoked_subcommand is not None:
        return
    with engine_for(db) as engine:
        case_id = engine.get(case).case_id if case is not None else None
        found = engine.alerts(
            status=tuple(status) if status else None,
            case_id=case_id,
            recipient_id=officer,
            limit=limit,
        )
        refs = {cid: engine.get(cid).external_ref for cid in {a.case_id for a in found}}
    rows = [{"ref": refs[a.case_id], **alert_json(a)} for a in found]
    if as_json:
        print_json(rows)
    elif rows:
        console.print(alerts_table(rows, refs))
    else:
        console.print("no alerts")


@app.command("retry")
def retry(
    alert_id: AlertArgument, *, db: DbOption = DEFAULT_DB, as_json: JsonOption = False
) -> None:
    """Queue a failed or dead-lettered alert again, to be sent at the next tick."""
    with engine_for(db) as engine:
        alert = engine.retry(alert_id)
    if as_json:
        print_json(alert_json(alert))
    else:
        console.print(f"alert {alert.alert_id} queued again", highlight=False)


@app.command("ack")
def ack(
    alert_id: AlertArgument,
    *,
    officer: Annotated[str, typer.Option("--officer", help="Who has seen it.")],
    db: DbOption = DEFAULT_DB,
    as_json: JsonOption = False,
) -> None:
    """Record that an officer has seen an alert."""
    with engine_for(db) as engine:
        alert = engine.acknowledge(alert_id, officer_id=officer)
    if as_json:
        print_json(alert_json(alert))
    else:
        console.print(
            f"alert {alert.alert_id} acknowledged by {alert.acknowledged_by} "
            f"at {alert.acknowledged_at.isoformat() if alert.acknowledged_at else ''}",
            highlight=False,
        )
