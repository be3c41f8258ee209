"""The case timeline: one model of a case's events and deadlines, drawn as SVG.

:func:`build_timeline` puts a case's events and deadlines in time order on a shared
axis, each deadline a bar from the moment it opened to the end of its due day with
the status it is drawn in. :func:`timeline_svg` draws that model as a standalone SVG
document; the CLI draws the same model as a Rich table.

Positions on the axis are instants, so events and deadlines line up whatever their
time zones; the dates printed beside them are UTC dates for events and the legal
(local) due date for deadlines.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Literal

from rrm.domain.case import DeadlineStatus

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from rrm.domain.case import Case, Deadline, HistoryEntry

__all__ = [
    "STATUS_ORDER",
    "BarStatus",
    "DeadlineBar",
    "Timeline",
    "TimelineEvent",
    "TimelineRow",
    "build_timeline",
    "timeline_svg",
    "utc_day",
]

# ------------------------------------------------------------------------ model

BarStatus = Literal[
    "met", "met late", "open", "overdue", "paused", "cancelled", "lapsed"
]
"""How a deadline is drawn: its stored status, refined by lateness and lapse."""

STATUS_ORDER: tuple[BarStatus, ...] = (
    "open", "overdue", "paused", "met", "met late", "cancelled", "lapsed",
)  # fmt: skip
"""The statuses in the order a legend lists them."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TimelineEvent:
    """One history entry on the timeline.

    Attributes:
        at: When it happened.
        seq: Its place in the case's history.
        event: The event's name.
        role: The role that recorded it.
        moved: Whether it changed the case's state (otherwise it only recorded
            something).
    """

    at: datetime
    seq: int
    event: str
    role: str
    moved: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class DeadlineBar:
    """One deadline on the timeline, a bar from its opening to its due instant.

    Attributes:
        deadline: The deadline.
        status: How it is drawn.
        start: When it opened.
        due: The end of its due day, in its own time zone.
        closed: When it was met or cancelled, or paused while it is paused.
    """

    deadline: Deadline
    status: BarStatus
    start: datetime
    due: datetime
    closed: datetime | None


TimelineRow = TimelineEvent | DeadlineBar
"""One row of a timeline: an event or a deadline."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Timeline:
    """A case's events and deadlines in time order, on one axis.

    Each deadline comes right after the event that opened it.

    Attributes:
        rows: The events and deadlines, in time order.
        start: The left end of the axis.
        end: The right end of the axis, at least a day after *start*.
        now: The moment the timeline was built for.
        show_now: Whether *now* is on the axis and marked (while a deadline is
            open, or when *now* falls between the first and last instant).
    """

    rows: tuple[TimelineRow, ...]
    start: datetime
    end: datetime
    now: datetime
    show_now: bool

    def fraction(self, at: datetime) -> float:
        """Return where *at* falls on the axis, from 0.0 (start) to 1.0 (end).

        Args:
            at: An instant; one outside the axis is clamped to its ends.
        """
        span = (self.end - self.start).total_seconds()
        return min(1.0, max(0.0, (at - self.start).total_seconds() / span))


def _status(d: Deadline, now: datetime) -> BarStatus:
    if d.status is DeadlineStatus.MET:
        late = d.closed_at is not None and d.closed_at > d.due_at
        return "met late" if late else "met"
    if d.status is DeadlineStatus.CANCELLED:
        return "lapsed" if d.lapsed_at is not None else "cancelled"
    if d.status is DeadlineStatus.PAUSED:
        return "paused"
    return "overdue" if now >= d.due_at else "open"


def build_timeline(
    case: Case, history: Sequence[HistoryEntry], *, now: datetime
) -> Timeline:
    """Return the case's events and deadlines in time order on a shared axis.

    The axis runs from the earliest to the latest instant shown (at least one day)
    and includes *now* while any deadline is still open.

    Args:
        case: The case, with its deadlines.
        history: The case's history entries.
        now: The moment that decides ``open`` versus ``overdue``.
    """
    events = [
        TimelineEvent(
            at=h.occurred_at,
            seq=h.seq,
            event=h.event,
            role=h.role,
            moved=h.from_state != h.to_state,
        )
        for h in history
    ]
    at_seq = {e.seq: e.at for e in events}
    bars = [
        DeadlineBar(
            deadline=d,
            status=_status(d, now),
            start=d.opened_at,
            due=d.due_at,
            closed=d.paused_at if d.status is DeadlineStatus.PAUSED else d.closed_at,
        )
        for d in case.deadlines
    ]

    def key(row: TimelineRow) -> tuple[datetime, int, int, str]:
        if isinstance(row, TimelineEvent):
            return (row.at, row.seq, 0, "")
        d = row.deadline
        return (at_seq.get(d.opened_seq, d.opened_at), d.opened_seq, 1, d.deadline_id)

    everything: list[TimelineRow] = [*events, *bars]
    rows = tuple(sorted(everything, key=key))
    instants = [e.at for e in events]
    for b in bars:
        instants.extend((b.start, b.due))
        if b.closed is not None:
            instants.append(b.closed)
    show_now = any(b.deadline.is_open for b in bars) or not instants
    if show_now or (instants and min(instants) <= now <= max(instants)):
        instants.append(now)
        show_now = True
    start, end = min(instants), max(instants)
    if end - start < timedelta(days=1):
        end = start + timedelta(days=1)
    return Timeline(rows=rows, start=start, end=end, now=now, show_now=show_now)


def utc_day(at: datetime) -> str:
    """Return the UTC date of *at* as ``YYYY-MM-DD``, as events are labelled.

    Args:
        at: An aware instant.
    """
    return at.astimezone(UTC).date().isoformat()


# -------------------------------------------------------------------------- SVG

_COLOUR: dict[BarStatus, str] = {
    "open": "#1f6fb4",
    "overdue": "#c62828",
    "paused": "#e0a800",
    "met": "#2e7d32",
    "met late": "#ef6c00",
    "cancelled": "#9e9e9e",
    "lapsed": "#ad1457",
}
_W = 1000
_LEFT = 340
_RIGHT = 30
_TOP = 72
_EVENT_H = 22
_BAR_H = 36
_MAX_TICKS = 10


def _clean(text: str) -> str:
    """Drop characters XML 1.0 cannot carry at all."""
    return "".join(
        ch
        for ch in text
        if ch in "\t\n\r"
        or (" " <= ch <= "\ud7ff")
        or ("\ue000" <= ch <= "\ufffd")
        or ch >= "\U00010000"
    )


def _x(text: object) -> str:
    return html.escape(_clean(str(text)), quote=True)


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _f(value: float) -> str:
    return f"{value:.1f}"


def _ticks(start: datetime, end: datetime) -> list[date]:
    """Midnight-UTC dates for axis ticks, at most about ten of them."""
    first = start.astimezone(UTC).date() + timedelta(days=1)
    last = end.astimezone(UTC).date()
    span = max(1, (last - first).days)
    for step in (1, 2, 7, 14):
        if span / step <= _MAX_TICKS:
            return [first + timedelta(days=i) for i in range(0, span + 1, step)]
    months = math.ceil(span / 30 / _MAX_TICKS)
    month = (first.replace(day=1) + timedelta(days=32)).replace(day=1)
    out: list[date] = []
    while month <= last:
        out.append(month)
        index = month.month - 1 + months
        month = date(month.year + index // 12, index % 12 + 1, 1)
    return out


def timeline_svg(case: Case, history: list[HistoryEntry], *, now: datetime) -> str:
    """Return the case timeline as a standalone SVG document (UTF-8 text).

    The picture has a date axis; one bar per deadline from its opening to the end
    of its due day, coloured by status, dashed when the number is nominal, with a
    marker where it was met or closed and a red stretch past the due day while
    overdue; a tick per event with its name; a line at *now*; and a legend. All
    text is XML-escaped and the same input always gives the same document.

    Args:
        case: The case, with its deadlines.
        history: The case's history entries.
        now: The moment that decides ``open`` versus ``overdue``.
    """
    tl = build_timeline(case, history, now=now)
    x0, x1 = _LEFT + 10, _W - _RIGHT

    def x(at: datetime) -> float:
        return x0 + tl.fraction(at) * (x1 - x0)

    heights = [_EVENT_H if isinstance(r, TimelineEvent) else _BAR_H for r in tl.rows]
    chart_bottom = _TOP + sum(heights) + 8
    legend_y = chart_bottom + 28
    height = legend_y + 30
    title = (
        f"{case.external_ref} · {case.workflow_id} v{case.workflow_version}"
        f" · state {case.state} · as of {now.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
    )
    parties = f"{case.facility.name} ({case.complainant} → {case.respondent})"
    out: list[str] = [
        (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{height}" '
            f'viewBox="0 0 {_W} {height}" font-family="Helvetica, Arial, sans-serif" '
            'font-size="12" role="img">'
        ),
        f"<title>{_x(title)}</title>",
        '<rect x="0" y="0" width="100%" height="100%" fill="#ffffff"/>',
        f'<text x="10" y="24" font-size="15" font-weight="bold">{_x(title)}</text>',
        f'<text x="10" y="44" fill="#555">{_x(parties)}</text>',
    ]
    # Date axis and grid.
    out.append('<g class="axis" stroke="#ccc">')
    out.append(
        f'<line x1="{x0}" y1="{_TOP - 6}" x2="{x1}" y2="{_TOP - 6}" stroke="#888"/>'
    )
    for day in _ticks(tl.start, tl.end):
        at = datetime(day.year, day.month, day.day, tzinfo=UTC)
        if not tl.start <= at <= tl.end:
            continue
        tx = _f(x(at))
        out.append(
            f'<line x1="{tx}" y1="{_TOP - 10}" x2="{tx}" y2="{chart_bottom}" '
            'stroke-width="0.5"/>'
        )
        out.append(
            f'<text x="{tx}" y="{_TOP - 14}" text-anchor="middle" font-size="10" '
            f'stroke="none" fill="#555">{_x(day.isoformat())}</text>'
        )
    out.append("</g>")
    # Rows.
    y = _TOP
    for row, h in zip(tl.rows, heights, strict=True):
        out.extend(_svg_row(row, y, h, x, tl.now))
        y += h
    if tl.show_now:
        nx = _f(x(tl.now))
        out.append(
            f'<g class="now"><line x1="{nx}" y1="{_TOP - 10}" x2="{nx}" '
            f'y2="{chart_bottom}" stroke="#8e24aa" stroke-width="1.5" '
            'stroke-dasharray="2 2"/>'
            f'<text x="{nx}" y="{chart_bottom + 12}" text-anchor="middle" '
            'font-size="10" fill="#8e24aa">now</text></g>'
        )
    out.extend(_svg_legend(legend_y))
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _svg_row(
    row: TimelineRow, y: int, h: int, x: Callable[[datetime], float], now: datetime
) -> Iterable[str]:
    if isinstance(row, TimelineEvent):
        cx, cy = x(row.at), y + h / 2
        fill = "#222" if row.moved else "#fff"
        label = f"{utc_day(row.at)}  {row.event} ({row.role})"
        anchor, dx = ("start", 8) if cx < (_LEFT + _W) / 2 else ("end", -8)
        yield (
            f'<g class="event" data-seq="{row.seq}">'
            f"<title>{_x(label)}</title>"
            f'<text x="10" y="{_f(cy + 4)}" fill="#222">'
            f"{_x(_short(label, 52))}</text>"
            f'<line x1="{_f(cx)}" y1="{y}" x2="{_f(cx)}" y2="{y + h}" stroke="#444"/>'
            f'<path d="M{_f(cx)} {_f(cy - 5)} L{_f(cx + 5)} {_f(cy)} '
            f'L{_f(cx)} {_f(cy + 5)} L{_f(cx - 5)} {_f(cy)} Z" fill="{fill}" '
            'stroke="#222"/>'
            f'<text x="{_f(cx + dx)}" y="{_f(cy + 4)}" text-anchor="{anchor}" '
            f'font-size="10" fill="#444">{_x(_short(row.event, 40))}</text></g>'
        )
        return
    d = row.deadline
    colour = _COLOUR[row.status]
    nominal = " (nominal)" if d.nominal else ""
    detail = (
        f"{d.label}: opened {utc_day(d.opened_at)}, due {d.due_date.isoformat()}"
        f" ({d.timezone}), {row.status}{nominal}; {d.actor}; {d.citation}"
    )
    bx, ex = x(row.start), x(row.due)
    by, bh = y + 8, 14
    dash = ' stroke-dasharray="5 3"' if d.nominal else ""
    opacity = "0.25" if d.nominal else "0.55"
    due = f"due {d.due_date.isoformat()} · {row.status} · {d.actor}"
    parts = [
        f'<g class="deadline" data-key="{_x(d.key)}" data-status="{_x(row.status)}">',
        f"<title>{_x(detail)}</title>",
        (
            f'<text x="10" y="{y + 14}" font-weight="bold" fill="#222">'
            f"{_x(_short(d.key + nominal, 46))}</text>"
        ),
        (
            f'<text x="10" y="{y + 29}" font-size="10" fill="{colour}">'
            f"{_x(_short(due, 60))}</text>"
        ),
        (
            f'<rect class="deadline-bar" x="{_f(bx)}" y="{by}" '
            f'width="{_f(max(1.0, ex - bx))}" height="{bh}" rx="2" fill="{colour}" '
            f'fill-opacity="{opacity}" stroke="{colour}" stroke-width="1.5"{dash}/>'
        ),
    ]
    late_to = {"overdue": now, "met late": row.closed}.get(row.status)
    if late_to is not None and x(late_to) > ex:
        parts.append(
            f'<rect class="past-due" x="{_f(ex)}" y="{by + 4}" '
            f'width="{_f(x(late_to) - ex)}" height="{bh - 8}" fill="#c62828" '
            'fill-opacity="0.35"/>'
        )
    if row.closed is not None and row.status != "open":
        cx, cy = x(row.closed), by + bh / 2
        if row.status in ("met", "met late"):
            parts.append(
                f'<circle class="closed" cx="{_f(cx)}" cy="{_f(cy)}" r="5" '
                f'fill="{colour}" stroke="#fff"/>'
            )
        elif row.status == "paused":
            parts.append(
                f'<path class="closed" d="M{_f(cx - 2)} {_f(cy - 6)} v12 '
                f'M{_f(cx + 2)} {_f(cy - 6)} v12" stroke="{colour}" '
                'stroke-width="2"/>'
            )
        else:
            parts.append(
                f'<path class="closed" d="M{_f(cx - 5)} {_f(cy - 5)} '
                f"L{_f(cx + 5)} {_f(cy + 5)} M{_f(cx - 5)} {_f(cy + 5)} "
                f'L{_f(cx + 5)} {_f(cy - 5)}" stroke="{colour}" stroke-width="2.5"/>'
            )
    parts.append("</g>")
    yield "".join(parts)


def _svg_legend(y: int) -> Iterable[str]:
    yield f'<g class="legend" font-size="11"><text x="10" y="{y + 4}">Legend</text>'
    lx = 70
    for status in STATUS_ORDER:
        colour = _COLOUR[status]
        yield (
            f'<rect x="{lx}" y="{y - 6}" width="18" height="10" fill="{colour}" '
            f'fill-opacity="0.55" stroke="{colour}"/>'
            f'<text x="{lx + 22}" y="{y + 3}">{_x(status)}</text>'
        )
        lx += 30 + 7 * len(status)
    yield (
        f'<rect x="{lx}" y="{y - 6}" width="18" height="10" fill="#1f6fb4" '
        'fill-opacity="0.25" stroke="#1f6fb4" stroke-dasharray="5 3"/>'
        f'<text x="{lx + 22}" y="{y + 3}">nominal</text>'
    )
    lx += 85
    yield (
        f'<circle cx="{lx + 5}" cy="{y - 1}" r="5" fill="#2e7d32"/>'
        f'<text x="{lx + 14}" y="{y + 3}">met</text>'
    )
    lx += 45
    yield (
        f'<path d="M{lx} {y - 6} L{lx + 10} {y + 4} M{lx} {y + 4} L{lx + 10} {y - 6}" '
        'stroke="#9e9e9e" stroke-width="2.5"/>'
        f'<text x="{lx + 14}" y="{y + 3}">closed</text>'
    )
    lx += 60
    yield (
        f'<path d="M{lx + 5} {y - 6} L{lx + 10} {y - 1} L{lx + 5} {y + 4} '
        f'L{lx} {y - 1} Z" fill="#222"/>'
        f'<text x="{lx + 14}" y="{y + 3}">event</text>'
    )
    lx += 55
    yield (
        f'<line x1="{lx}" y1="{y - 7}" x2="{lx}" y2="{y + 5}" stroke="#8e24aa" '
        'stroke-width="1.5" stroke-dasharray="2 2"/>'
        f'<text x="{lx + 6}" y="{y + 3}">now</text></g>'
    )
