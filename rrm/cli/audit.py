"""``rrm audit``: check the hash chain of every case's history, and anchor it.

``rrm audit anchor`` writes the hash of every case's newest entry to a file the
agency keeps outside the database (a write-once store, a signed e-mail, a
printout). ``rrm audit verify --anchors FILE`` then also proves that no history
was rewritten since, hashes recomputed included, which the chain alone cannot.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

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
    read_json,
)
from rrm.errors import CaseNotFound, InvalidInput
from rrm.service.engine import ChainAnchor, ChainReport
from rrm.views import chain_json

__all__ = ["ANCHORS_FORMAT", "app"]

ANCHORS_FORMAT = "rrm-anchors/1"
_SHA256_HEX = 64

app = typer.Typer(no_args_is_help=True, help="Audit the case histories.")


@app.command("anchor")
def anchor(
    *,
    db: DbOption = DEFAULT_DB,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Write to FILE instead of the screen."),
    ] = None,
) -> None:
    """Write the hash of every case's newest history entry (keep it elsewhere)."""
    with engine_for(db) as engine:
        cases = sorted(engine.find(intact=False), key=lambda c: c.external_ref)
        anchors = [
            {"ref": c.external_ref, **_plain(engine.anchor(c.case_id))} for c in cases
        ]
        taken = engine.clock.now().isoformat()
    text = json.dumps(
        {"format": ANCHORS_FORMAT, "taken_at": taken, "anchors": anchors}, indent=2
    )
    if out is None:
        print(text)
        return
    try:
        out.write_text(text + "\n", encoding="utf-8")
    except OSError as exc:
        raise InvalidInput("--out", f"cannot write {out}: {exc.strerror}") from None
    console.print(f"{len(anchors)} case anchors written to {out}", highlight=False)


@app.command("verify")
def verify(
    *,
    db: DbOption = DEFAULT_DB,
    case: Annotated[
        str | None, typer.Option("--case", help="Only this case (id or reference).")
    ] = None,
    anchors: Annotated[
        Path | None,
        typer.Option(
            "--anchors",
            help="Also check the entries anchored in FILE (from `rrm audit anchor`).",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Check each case's history chain and re-derive its rows (exit 1 if any differ).

    Names the first broken entry of a chain, and every stored field (case row,
    deadlines, officers, petitioners, facility, determinations) that is not
    what replaying the history gives, with both values.
    """
    kept = _read_anchors(anchors) if anchors is not None else {}
    reports: list[dict[str, Any]] = []
    with engine_for(db) as engine:
        if case is not None:
            c = engine.get(case, intact=False)
            report = engine.verify(c.case_id, anchor=kept.get(c.case_id), record=True)
            reports.append(_row(report, c.external_ref))
        else:
            seen = set()
            for report in engine.verify_all(anchors=kept, record=True):
                seen.add(report.case_id)
                reports.append(_row(report, report.external_ref))
            # Anchored cases that no longer exist: a deleted case is a rewrite too.
            for gone in sorted(kept.values(), key=lambda a: a.case_id):
                if gone.case_id not in seen:
                    try:
                        engine.get(gone.case_id, intact=False)
                    except CaseNotFound:
                        reports.append(_missing(gone))
    broken = [r for r in reports if not r["ok"]]
    if as_json:
        print_json(reports)
    else:
        _print_reports(reports, broken, anchored=anchors is not None)
    if broken:
        raise typer.Exit(1)


def _print_reports(
    reports: list[dict[str, Any]], broken: list[dict[str, Any]], *, anchored: bool
) -> None:
    """The table of cases, then what is wrong with each broken one, in words."""
    table = Table("case", "entries", "chain", "rows", *(["anchor"] if anchored else []))
    for r in reports:
        cells = [r["ref"], str(r["entries"]), _chain_cell(r), _rows_cell(r)]
        if anchored:
            cells.append(_anchor_cell(r))
        table.add_row(*cells)
    console.print(table)
    for r in broken:
        for problem in r.get("problems", ()):
            console.print(f"{r['ref']}: {problem}", highlight=False, soft_wrap=True)
    if broken:
        console.print(
            f"[bold red]{len(broken)} of {len(reports)} cases damaged[/bold red] "
            "(registered: reads name them and the worker skips them until a "
            "verification finds them whole)",
            soft_wrap=True,
        )
    else:
        console.print(
            f"[green]{len(reports)} cases intact[/green]: every history chain "
            "whole, every stored row what its history gives",
            soft_wrap=True,
        )


def _plain(a: ChainAnchor) -> dict[str, Any]:
    return {"case_id": a.case_id, "seq": a.seq, "hash": a.hash}


def _row(report: ChainReport, ref: str) -> dict[str, Any]:
    # chain_json says what is wrong in words ("problems", empty when intact).
    return {
        **chain_json(report, ref),
        "anchor_mismatch_seq": report.anchor_mismatch_seq,
        "missing": False,
    }


def _missing(a: ChainAnchor) -> dict[str, Any]:
    return {
        "case_id": a.case_id,
        "ref": a.case_id,
        "entries": 0,
        "ok": False,
        "first_broken_seq": None,
        "anchor_mismatch_seq": a.seq,
        "missing": True,
        "problems": [f"anchored case {a.case_id} is missing from the database"],
        "rows_checked": False,
        "differences": [],
    }


def _chain_cell(r: dict[str, Any]) -> Text:
    if r["missing"]:
        return Text("CASE MISSING", style="bold red")
    if r["first_broken_seq"] is not None:
        return Text(f"BROKEN at entry {r['first_broken_seq']}", style="bold red")
    return Text("ok", style="green")


def _rows_cell(r: dict[str, Any]) -> Text:
    """Whether the stored rows are what the history gives (needs an intact chain)."""
    if not r.get("rows_checked"):
        return Text("not checked", style="yellow")
    differ = len(r.get("differences", ()))
    if differ:
        return Text(f"{differ} DIFFER", style="bold red")
    return Text("ok", style="green")


def _anchor_cell(r: dict[str, Any]) -> Text:
    if r["anchor_mismatch_seq"] is not None:
        return Text(
            f"CHANGED at or before entry {r['anchor_mismatch_seq']}", style="bold red"
        )
    return Text("-" if r["missing"] else "ok", style="green")


def _read_anchors(path: Path) -> dict[str, ChainAnchor]:
    """Read an anchors file; refuse anything but the format anchor writes."""
    data = read_json(path, "--anchors")
    if not isinstance(data, dict) or data.get("format") != ANCHORS_FORMAT:
        raise InvalidInput("--anchors", f"{path} is not an {ANCHORS_FORMAT} file")
    items = data.get("anchors")
    if not isinstance(items, list):
        raise InvalidInput("--anchors", "the file has no list of anchors")
    found: dict[str, ChainAnchor] = {}
    for i, item in enumerate(items):
        if not (
            isinstance(item, dict)
            and isinstance(item.get("case_id"), str)
            and type(item.get("seq")) is int
            and item["seq"] >= 1
            and isinstance(item.get("hash"), str)
            and len(item["hash"]) == _SHA256_HEX
        ):
            raise InvalidInput(
                "--anchors", f"anchor {i + 1} needs case_id, seq (from 1) and a hash"
            )
        found[item["case_id"]] = ChainAnchor(
            case_id=item["case_id"], seq=item["seq"], hash=item["hash"]
        )
    return found
