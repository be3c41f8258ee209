"""Pictures for officers: workflow graphs rendered by Graphviz, case timelines in Rich.

``render_graphviz`` turns the DOT text of :func:`rrm.workflow.diagram.dot` into SVG
or PNG with the ``dot`` program. ``timeline_table`` draws one case in the terminal:
its events and its deadlines on a shared time axis, each deadline a bar from the
moment it opened to the end of its due day, marked where it was met or closed. It
draws the model of :mod:`rrm.views.timeline`, whose ``timeline_svg`` draws the same
case as a standalone SVG document.
"""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

from rich import box
from rich.console import Group
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from rrm.errors import InvalidInput
from rrm.views.timeline import (
    BarStatus,
    DeadlineBar,
    Timeline,
    TimelineEvent,
    TimelineRow,
    build_timeline,
    utc_day,
)

if TYPE_CHECKING:
    from rich.console import Console, ConsoleOptions, RenderableType, RenderResult

    from rrm.domain.case import Case, HistoryEntry

__all__ = ["render_graphviz", "timeline_table"]

GraphvizFormat = Literal["svg", "png"]
_FORMATS: tuple[str, ...] = ("svg", "png")
_DOT_TIMEOUT_SECONDS = 60

# ------------------------------------------------------------------------ graphviz


def render_graphviz(dot_text: str, fmt: GraphvizFormat) -> bytes:
    """Render DOT text with the Graphviz ``dot`` program.

    Args:
        dot_text: A DOT graph, e.g. from :func:`rrm.workflow.diagram.dot`.
        fmt: ``"svg"`` or ``"png"``.

    Returns:
        The rendered picture.

    Raises:
        InvalidInput: If *fmt* is not supported, Graphviz is not installed, or
            ``dot`` refused the graph.
    """
    if fmt not in _FORMATS:
        raise InvalidInput("format", f"must be one of {', '.join(_FORMATS)}")
    program = shutil.which("dot")
    if program is None:
        raise InvalidInput(
            "format",
            "Graphviz is not installed; use the Mermaid text or install graphviz",
        )
    try:
        done = subprocess.run(  # noqa: S603 - a fixed program and fixed arguments
            [program, f"-T{fmt}"],
            input=dot_text.encode(),
            capture_output=True,
            timeout=_DOT_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise InvalidInput(
            "diagram", f"Graphviz took longer than {_DOT_TIMEOUT_SECONDS} s"
        ) from exc
    if done.returncode != 0 or not done.stdout:
        detail = done.stderr.decode(errors="replace").strip() or "no output"
        raise InvalidInput("diagram", f"Graphviz could not render it: {detail}")
    return done.stdout


# -------------------------------------------------------------- terminal timeline

_STYLE: dict[BarStatus, str] = {
    "open": "cyan",
    "overdue": "bold red",
    "paused": "yellow",
    "met": "green",
    "met late": "yellow",
    "cancelled": "dim",
    "lapsed": "red",
}
_CLOSE_MARK: dict[BarStatus, str] = {
    "met": "●",
    "met late": "●",
    "cancelled": "✕",
    "lapsed": "✕",
    "paused": "‖",
}


class _Track:
    """One row of the shared axis, drawn to whatever width its column gets."""

    def __init__(self, timeline: Timeline, row: TimelineRow | None) -> None:
        self.timeline = timeline
        self.row = row

    def __rich_measure__(
        self, console: Console, options: ConsoleOptions
    ) -> Measurement:
        return Measurement(12, options.max_width)

    def _col(self, at: datetime, width: int) -> int:
        return round(self.timeline.fraction(at) * (width - 1))

    def __rich_console__(
        self, console: Console, options: ConsoleOptions
    ) -> RenderResult:
        width = max(1, options.max_width)
        cells: list[tuple[str, str]] = [(" ", "")] * width
        tl = self.timeline
        if tl.show_now:
            cells[self._col(tl.now, width)] = ("│", "magenta")
        row = self.row
        if row is None:
            yield self._axis(width)
            return
        if isinstance(row, TimelineEvent):
            mark = ("◆", "bold") if row.moved else ("◇", "dim")
            cells[self._col(row.at, width)] = mark
        else:
            self._bar(row, cells, width)
        text = Text()
        for ch, style in cells:
            text.append(ch, style=style)
        yield text

    def _bar(self, bar: DeadlineBar, cells: list[tuple[str, str]], width: int) -> None:
        style = _STYLE[bar.status]
        line = "╍" if bar.deadline.nominal else "━"
        a, b = self._col(bar.start, width), self._col(bar.due, width)
        for i in range(a, b):
            cells[i] = (line, style)
        # Past the due day: up to now while overdue, up to the close if met late.
        late_to = {"overdue": self.timeline.now, "met late": bar.closed}.get(bar.status)
        if late_to is not None:
            for i in range(b + 1, self._col(late_to, width) + 1):
                cells[i] = ("░", "red")
        cells[b] = ("┫", style)
        if bar.closed is not None and bar.status in _CLOSE_MARK:
            cells[self._col(bar.closed, width)] = (_CLOSE_MARK[bar.status], style)

    def _axis(self, width: int) -> Text:
        tl = self.timeline
        left, right = utc_day(tl.start), utc_day(tl.end)
        if width < len(left) + len(right) + 1:
            return Text(left[:width], style="bold")
        return Text(left + " " * (width - len(left) - len(right)) + right, style="bold")


def timeline_table(
    case: Case, history: list[HistoryEntry], *, now: datetime
) -> RenderableType:
    """Return a Rich renderable showing the case's events against its deadlines.

    Rows are in time order: each event (its UTC date, name and role; ``◆`` moved
    the case, ``◇`` only recorded something) and, after the event that opened it,
    each deadline (opened date, key, actor, due date and status) with a bar from
    its opening to its due day on the shared axis.

    Args:
        case: The case, with its deadlines.
        history: The case's history entries.
        now: The moment that decides ``open`` versus ``overdue``.
    """
    tl = build_timeline(case, history, now=now)
    table = Table(
        title=Text(
            f"{case.external_ref} · {case.workflow_id} v{case.workflow_version}"
            f" · {case.state} · as of {now.astimezone(UTC):%Y-%m-%d %H:%M} UTC",
            style="bold",
        ),
        box=box.SIMPLE_HEAD,
        expand=True,
        pad_edge=False,
        padding=(0, 1),
    )
    table.add_column("Date", no_wrap=True, width=10)
    table.add_column("Event / deadline", min_width=14, max_width=28, overflow="fold")
    table.add_column("Role", max_width=12, overflow="fold")
    table.add_column("Due/status", no_wrap=True, width=10)
    table.add_column(_Track(tl, None), ratio=1, no_wrap=True)
    for row in tl.rows:
        if isinstance(row, TimelineEvent):
            style = "" if row.moved else "dim"
            table.add_row(
                Text(utc_day(row.at)),
                Text(row.event, style=style),
                Text(row.role, style=style),
                Text(""),
                _Track(tl, row),
            )
        else:
            d = row.deadline
            name = Text("⏱ " + d.key, style="italic")
            if d.nominal:
                name.append(" ≈", style="yellow")
            status = Text(d.due_date.isoformat() + "\n")
            status.append(row.status, style=_STYLE[row.status])
            table.add_row(
                Text(utc_day(d.opened_at), style="dim"),
                name,
                Text(d.actor),
                status,
                _Track(tl, row),
            )
    legend = Text.assemble(
        ("◆", "bold"), " event  ", ("◇", "dim"), " recorded only  ",
        ("━", "cyan"), " window  ", ("╍", "cyan"), " nominal (≈)  ",
        ("┫", "cyan"), " due  ", ("●", "green"), " met  ", ("✕", "dim"),
        " closed  ", ("░", "red"), " past due  ", ("│", "magenta"), " now",
    )  # fmt: skip
    return Group(table, legend)
