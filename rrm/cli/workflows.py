"""``rrm workflows ...``: the loaded workflow definitions, checked, shown and drawn."""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from rrm.cli.common import (
    DEFAULT_DB,
    ActorOption,
    DbOption,
    JsonOption,
    ReasonOption,
    console,
    engine_for,
    print_json,
)
from rrm.cli.render import print_workflow
from rrm.errors import InvalidInput
from rrm.views import workflow_json
from rrm.workflow import diagram
from rrm.workflow.registry import check_released_lock, load_workflows

if TYPE_CHECKING:
    from rrm.service.migration import MigrationReport

__all__ = ["app"]

app = typer.Typer(no_args_is_help=True, help="Workflow definitions.")

PathOption = Annotated[
    Path | None, typer.Option("--path", help="A folder of definitions.")
]


@app.command("list")
def workflows_list(path: PathOption = None, as_json: JsonOption = False) -> None:
    """List the loaded workflows with their size and evidence."""
    specs = list(load_workflows(path).specs.values())
    if as_json:
        print_json(
            [
                {
                    "workflow": s.workflow_id,
                    "version": s.version,
                    "status": s.status,
                    "states": len(s.states),
                    "transitions": len(s.transitions),
                    "deadlines": len(s.deadlines),
                    "nominal_deadlines": sum(d.nominal for d in s.deadlines.values()),
                    "title": s.title,
                }
                for s in specs
            ]
        )
        return
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
    for spec in specs:
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


@app.command("validate")
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


WorkflowArgument = Annotated[str, typer.Argument(help="The workflow id.")]
VersionOption = Annotated[
    int | None,
    typer.Option("--version", help="Default: the newest released version.", min=1),
]


@app.command("show")
def show(
    workflow: WorkflowArgument,
    version: VersionOption = None,
    path: PathOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show states, transitions (roles, citations) and deadlines of a workflow."""
    data = workflow_json(load_workflows(path).get(workflow, version))
    if as_json:
        print_json(data)
    else:
        print_workflow(console, data)


class Format(StrEnum):
    """What ``rrm workflows diagram`` draws."""

    MERMAID = "mermaid"
    DOT = "dot"
    SVG = "svg"
    PNG = "png"


@app.command("diagram")
def draw(
    workflow: WorkflowArgument,
    *,
    version: VersionOption = None,
    fmt: Annotated[
        Format, typer.Option("--format", case_sensitive=False, help="Output format.")
    ] = Format.MERMAID,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Write to FILE (needed for png)."),
    ] = None,
    internal: Annotated[
        bool,
        typer.Option("--internal", help="Also show events that record without moving."),
    ] = False,
    path: PathOption = None,
) -> None:
    """Draw a workflow as a state diagram (mermaid, dot, svg or png)."""
    spec = load_workflows(path).get(workflow, version)
    if fmt is Format.MERMAID:
        data: str | bytes = diagram.mermaid(spec, internal=internal)
    elif fmt is Format.DOT:
        data = diagram.dot(spec, internal=internal)
    else:
        if fmt is Format.PNG and out is None:
            raise InvalidInput("--out", "a png diagram needs a file to go to")
        from rrm.cli import pictures  # noqa: PLC0415 - loaded only when drawing

        data = pictures.render_graphviz(
            diagram.dot(spec, internal=internal),
            "svg" if fmt is Format.SVG else "png",
        )
    if out is None:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        return
    try:
        if isinstance(data, bytes):
            out.write_bytes(data)
        else:
            out.write_text(data, encoding="utf-8")
    except OSError as exc:
        raise InvalidInput("--out", f"cannot write {out}: {exc.strerror}") from None
    console.print(f"{spec.workflow_id} v{spec.version} drawn to {out}", highlight=False)


def _version_of(option: str, value: str) -> tuple[str, int]:
    """Parse ``<workflow-id>@<version>``."""
    workflow, at, version = value.partition("@")
    if not at or not workflow or not version.isdigit():
        raise InvalidInput(
            option, f"write it as <workflow>@<version>, e.g. usmca-31a@1; got {value!r}"
        )
    return workflow, int(version)


@app.command("migrate")
def migrate(
    *,
    source: Annotated[
        str, typer.Option("--from", help="The version cases are on: <workflow>@<N>.")
    ],
    target: Annotated[
        str, typer.Option("--to", help="The version to move them to: <workflow>@<N>.")
    ],
    actor: ActorOption = "",
    reason: ReasonOption = "",
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Print what would change; write nothing."),
    ] = False,
    db: DbOption = DEFAULT_DB,
    as_json: JsonOption = False,
) -> None:
    """Move every case of one workflow version to another by its state mapping.

    The mapping is the reviewed file <workflow>/migrate-v<from>-to-v<to>.toml. If
    any case is in a state the mapping leaves out, nothing moves. Each moved case
    gets one audited history entry, its open deadlines recomputed under the new
    version (with the reason for each date) and its version pin moved.
    """
    workflow, old = _version_of("--from", source)
    other, new = _version_of("--to", target)
    if other != workflow:
        raise InvalidInput("--to", f"must be a version of {workflow}, not {other}")
    with engine_for(db) as engine:
        report = engine.migrate(
            workflow,
            from_version=old,
            to_version=new,
            actor=actor,
            reason=reason,
            dry_run=dry_run,
        )
    if as_json:
        print_json(_migration_json(report))
        return
    _print_migration(report)


def _migration_json(report: MigrationReport) -> dict[str, Any]:
    return {
        "workflow": report.workflow_id,
        "from_version": report.from_version,
        "to_version": report.to_version,
        "mapping": report.mapping_file,
        "mapping_sha256": report.mapping_sha256,
        "dry_run": report.dry_run,
        "moved": report.moved,
        "cases": [
            {
                "ref": c.external_ref,
                "case_id": c.case_id,
                "from_state": c.from_state,
                "to_state": c.to_state,
                "deadlines": [
                    {
                        "key": m.key,
                        "change": m.change,
                        "was_due": m.was_due.isoformat(),
                        "now_due": m.now_due.isoformat() if m.now_due else None,
                        "explanation": m.explanation,
                    }
                    for m in c.deadlines
                ],
            }
            for c in report.cases
        ],
    }


def _print_migration(report: MigrationReport) -> None:
    verb = "would move" if report.dry_run else "moved"
    console.print(
        f"{report.workflow_id} v{report.from_version} -> v{report.to_version} "
        f"({report.mapping_file}): {verb} {len(report.cases)} case(s)",
        highlight=False,
    )
    for c in report.cases:
        state = (
            f"{c.from_state} (unchanged)"
            if c.from_state == c.to_state
            else f"{c.from_state} -> {c.to_state}"
        )
        console.print(f"{c.external_ref}: {state}", highlight=False)
        for m in c.deadlines:
            after = m.now_due.isoformat() if m.now_due else "cancelled"
            console.print(
                f"  {m.key}: {m.was_due.isoformat()} -> {after} ({m.change})",
                highlight=False,
            )
            console.print(f"    {m.explanation}", highlight=False, style="dim")
    if report.dry_run:
        console.print("Dry run: nothing was written.", highlight=False)
