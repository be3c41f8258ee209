"""Pictures for people: Graphviz rendering and the case timeline (terminal and SVG)."""

from __future__ import annotations

import dataclasses
import shutil
import xml.etree.ElementTree as ET
from datetime import timedelta
from typing import Any

import pytest
from rich.console import Console

import rrm
from rrm.cli.pictures import render_graphviz, timeline_table
from rrm.errors import InvalidInput
from rrm.views import timeline_svg
from rrm.workflow.diagram import dot

SVG = "{http://www.w3.org/2000/svg}"
HOSTILE = "<script>alert(\"x\")</script> & ]]> \x01 'q'"
needs_dot = pytest.mark.skipif(
    shutil.which("dot") is None, reason="Graphviz (dot) is not installed"
)
FACILITY = rrm.Facility(
    facility_id="MX-FAC-1",
    name="Planta Uno",
    owner="Grupo Ejemplo",
    country=rrm.Party.MX,
)
CLAIM = rrm.Claim(
    basis="annex_23a_legislation",
    sector_category="manufacturing",
    legal_provisions=("LFT Art. 390 Bis",),
)


class Story:
    """A 31-A request case stepped through events on the fake clock."""

    def __init__(self, engine: rrm.CaseEngine, clock: Any) -> None:
        self.engine, self.clock = engine, clock
        self.case = engine.open_case(
            rrm.OpenCase(
                workflow="usmca-31a",
                initiation="request",
                complainant="US",
                respondent="MX",
                facility=FACILITY,
                claim=CLAIM,
                external_ref="REF-PICTURES",
                actor="officer:ustr",
                role="ustr",
            )
        )

    def fire(self, event: str, role: str, days: int = 1) -> None:
        self.clock.advance(timedelta(days=days))
        self.case = self.engine.fire(
            rrm.FireEvent(
                case_id=self.case.case_id,
                event=event,
                actor=f"officer:{role}",
                role=role,
                payload={},
                expected_version=self.case.version,
            )
        )

    def view(self) -> tuple[rrm.Case, list[rrm.HistoryEntry], Any]:
        case = self.engine.get(self.case.case_id)
        return case, self.engine.history(case.case_id), self.clock.now()


@pytest.fixture(name="story")
def _story(engine: rrm.CaseEngine, clock: Any) -> Story:
    """Answer met, review cancelled, a nominal panel deadline left overdue."""
    s = Story(engine, clock)
    s.fire("suspend_liquidation", "ustr")
    s.fire("respondent_declines", "respondent", days=3)
    s.fire("panel_requested", "ustr", days=2)
    clock.advance(timedelta(days=12))
    return s


def statuses(case: rrm.Case) -> dict[str, str]:
    return {d.key: d.status.value for d in case.deadlines}


def text_of(renderable: Any, width: int = 100) -> str:
    console = Console(record=True, width=width, color_system=None)
    console.print(renderable)
    return console.export_text()


# --------------------------------------------------------------------- the story


def test_story_has_met_cancelled_and_overdue_nominal(story: Story) -> None:
    case, history, now = story.view()
    assert statuses(case) == {
        "respondent_answer": "met",
        "respondent_review": "cancelled",
        "panel_composition": "open",
    }
    panel = case.deadline("panel_composition")
    assert panel is not None
    assert panel.nominal
    assert now >= panel.due_at
    assert [h.event for h in history] == [
        "request_for_review",
        "suspend_liquidation",
        "respondent_declines",
        "panel_requested",
    ]


# ---------------------------------------------------------------- terminal table


def test_timeline_table_lists_every_event_and_deadline(story: Story) -> None:
    case, history, now = story.view()
    text = text_of(timeline_table(case, history, now=now))
    for entry in history:
        assert entry.event in text
        assert entry.role in text
    for d in case.deadlines:
        assert d.key in text
        assert d.due_date.isoformat() in text
    assert "REF-PICTURES" in text
    for word in ("met", "cancelled", "overdue"):
        assert word in text
    assert "≈" in text  # the nominal panel_composition deadline
    assert all(len(line) <= 100 for line in text.splitlines())


def test_timeline_table_places_rows_on_one_axis(story: Story) -> None:
    case, history, now = story.view()
    lines = text_of(timeline_table(case, history, now=now)).splitlines()

    def line_of(word: str) -> str:
        return next(line for line in lines if word in line and line.startswith(" 20"))

    opened = line_of("request_for_review").index("◆")
    answer = line_of("respondent_answer")
    assert answer.index("━") == opened  # the bar starts at the opening event
    assert "●" in answer  # met
    declined = line_of("respondent_declines").index("◆")
    assert answer.index("●") == declined  # met where the event happened
    assert "✕" in line_of("respondent_review")  # cancelled
    panel = line_of("panel_composition")
    assert "╍" in panel  # nominal window
    assert "░" in panel  # past due while overdue
    now_col = line_of("request_for_review").index("│")
    assert panel.rindex("░") == now_col  # overdue up to now
    assert "◇" in line_of("suspend_liquidation")  # recorded only


def test_timeline_table_colours_overdue_and_met(story: Story) -> None:
    case, history, now = story.view()
    console = Console(
        record=True, width=100, force_terminal=True, color_system="standard"
    )
    console.print(timeline_table(case, history, now=now))
    styled = console.export_text(styles=True)
    assert "\x1b[1;31moverdue" in styled
    assert "\x1b[32mmet" in styled


@pytest.mark.parametrize("width", [60, 100, 160])
def test_timeline_table_fits_the_width(story: Story, width: int) -> None:
    case, history, now = story.view()
    text = text_of(timeline_table(case, history, now=now), width=width)
    assert all(len(line) <= width for line in text.splitlines())


def test_paused_deadline(engine: rrm.CaseEngine, clock: Any) -> None:
    s = Story(engine, clock)
    clock.advance(timedelta(days=2))
    engine.pause(
        rrm.PauseDeadline(
            case_id=s.case.case_id,
            key="respondent_answer",
            actor="officer:ustr",
            role="ustr",
            reason="Secretariat closed",
        )
    )
    case, history, now = s.view()
    assert statuses(case)["respondent_answer"] == "paused"
    assert "paused" in text_of(timeline_table(case, history, now=now))
    root = ET.fromstring(timeline_svg(case, history, now=now))
    groups = root.findall(f".//{SVG}g[@class='deadline']")
    assert {g.get("data-status") for g in groups} == {"paused", "open"}


# ---------------------------------------------------------------------- SVG


def test_timeline_svg_is_well_formed_with_a_bar_per_deadline(story: Story) -> None:
    case, history, now = story.view()
    svg = timeline_svg(case, history, now=now)
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    groups = root.findall(f".//{SVG}g[@class='deadline']")
    assert [g.get("data-key") for g in groups] == [
        "respondent_answer",
        "respondent_review",
        "panel_composition",
    ]
    for g in groups:
        assert len(g.findall(f"{SVG}rect[@class='deadline-bar']")) == 1
    by_key = {g.get("data-key"): g for g in groups}
    assert by_key["respondent_answer"].get("data-status") == "met"
    assert by_key["respondent_review"].get("data-status") == "cancelled"
    assert by_key["panel_composition"].get("data-status") == "overdue"
    nominal = by_key["panel_composition"].find(f"{SVG}rect[@class='deadline-bar']")
    assert nominal is not None
    assert nominal.get("stroke-dasharray")
    assert by_key["panel_composition"].find(f"{SVG}rect[@class='past-due']") is not None
    assert by_key["respondent_answer"].find(f"{SVG}circle[@class='closed']") is not None
    events = root.findall(f".//{SVG}g[@class='event']")
    assert [g.get("data-seq") for g in events] == ["1", "2", "3", "4"]
    assert root.find(f".//{SVG}g[@class='legend']") is not None
    assert root.find(f".//{SVG}g[@class='now']") is not None
    assert root.find(f".//{SVG}g[@class='axis']") is not None


def test_timeline_svg_is_deterministic(story: Story) -> None:
    case, history, now = story.view()
    assert timeline_svg(case, history, now=now) == timeline_svg(case, history, now=now)


def test_timeline_svg_escapes_hostile_text(story: Story) -> None:
    case, history, now = story.view()
    case = dataclasses.replace(
        case,
        facility=dataclasses.replace(case.facility, name=HOSTILE),
        deadlines=tuple(
            dataclasses.replace(d, label=HOSTILE, key=f"{d.key}{HOSTILE}")
            for d in case.deadlines
        ),
    )
    history = [dataclasses.replace(h, event=h.event + HOSTILE) for h in history]
    svg = timeline_svg(case, history, now=now)
    assert "<script>" not in svg
    assert "\x01" not in svg
    root = ET.fromstring(svg)
    assert not root.findall(f".//{SVG}script")
    titles = [t.text or "" for t in root.iter(f"{SVG}title")]
    assert any('<script>alert("x")</script> & ]]>' in t for t in titles)
    keys = [g.get("data-key") for g in root.findall(f".//{SVG}g[@class='deadline']")]
    assert all(k is not None and k.endswith("</script> & ]]>  'q'") for k in keys)
    assert "<script>" in text_of(timeline_table(case, history, now=now))


# ---------------------------------------------------------------- graphviz


@needs_dot
@pytest.mark.parametrize(("fmt", "magic"), [("svg", b"<svg"), ("png", b"\x89PNG")])
def test_render_graphviz(fmt: Any, magic: bytes) -> None:
    spec = rrm.load_workflows().get("usmca-31a")
    out = render_graphviz(dot(spec), fmt)
    assert magic in out[:400]
    if fmt == "svg":
        root = ET.fromstring(out)
        assert root.tag == f"{SVG}svg"


@needs_dot
def test_render_graphviz_reports_a_broken_graph() -> None:
    with pytest.raises(InvalidInput, match="Graphviz could not render"):
        render_graphviz("digraph {", "svg")


def test_render_graphviz_refuses_other_formats() -> None:
    with pytest.raises(InvalidInput, match="format"):
        render_graphviz("digraph {}", "pdf")  # type: ignore[arg-type]


def test_render_graphviz_without_graphviz(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(InvalidInput) as info:
        render_graphviz("digraph {}", "svg")
    assert info.value.field == "format"
    assert info.value.reason == (
        "Graphviz is not installed; use the Mermaid text or install graphviz"
    )
