"""Helpers for scenario tests: open cases of each workflow and step through events."""

from __future__ import annotations

import types
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

import rrm

if TYPE_CHECKING:
    from collections.abc import Callable

FACILITY_MX = rrm.Facility(
    facility_id="MX-FAC-1",
    name="Planta Uno",
    owner="Grupo Ejemplo",
    country=rrm.Party.MX,
    city="Silao",
    region="Guanajuato",
    sector="auto parts",
)
FACILITY_US = rrm.Facility(
    facility_id="US-FAC-1",
    name="Example Plant",
    owner="Example Corp",
    country=rrm.Party.US,
    city="Detroit",
    region="MI",
    sector="auto parts",
)
FACILITY_CA = rrm.Facility(
    facility_id="CA-FAC-1",
    name="Usine Exemple",
    owner="Exemple Inc.",
    country=rrm.Party.CA,
    city="Oshawa",
    region="ON",
    sector="auto parts",
)
MX_CLAIM = rrm.Claim(
    basis="annex_23a_legislation",
    sector_category="manufacturing",
    legal_provisions=("LFT Art. 390 Bis",),
)
NLRB_CLAIM = rrm.Claim(
    basis="enforced_nlrb_order",
    sector_category="manufacturing",
    nlrb_order="NLRB 07-CA-000000 (enforced)",
)


class Steps:
    """Fires events on one case in order, advancing the fake clock between them."""

    def __init__(self, engine: rrm.CaseEngine, clock: Any, case: rrm.Case) -> None:
        self.engine = engine
        self.clock = clock
        self.case = case

    def fire(
        self,
        event: str,
        role: str,
        *,
        after: timedelta = timedelta(days=1),
        **payload: Any,
    ) -> rrm.Case:
        self.clock.advance(after)
        self.case = self.engine.fire(
            rrm.FireEvent(
                case_id=self.case.case_id,
                event=event,
                actor=f"officer:{role}",
                role=role,
                payload=payload,
                expected_version=self.case.version,
            )
        )
        return self.case

    @property
    def state(self) -> str:
        return self.case.state


@pytest.fixture(name="open_case")
def _open_case(engine: rrm.CaseEngine, clock: Any) -> Callable[..., Steps]:
    counter = iter(range(1, 10_000))

    def open_case(
        workflow: str = "usmca-31a",
        initiation: str = "request",
        *,
        role: str = "ustr",
        complainant: str = "US",
        respondent: str = "MX",
        facility: rrm.Facility = FACILITY_MX,
        claim: rrm.Claim = MX_CLAIM,
        at: datetime | None = None,
        **kw: Any,
    ) -> Steps:
        case = engine.open_case(
            rrm.OpenCase(
                workflow=workflow,
                initiation=initiation,
                complainant=complainant,
                respondent=respondent,
                facility=facility,
                claim=claim,
                external_ref=f"REF-{next(counter)}",
                actor=f"officer:{role}",
                role=role,
                at=at,
                **kw,
            )
        )
        return Steps(engine, clock, case)

    return open_case


@pytest.fixture(name="samples")
def _samples() -> types.SimpleNamespace:
    """Sample facilities and claims for each direction."""
    return types.SimpleNamespace(
        FACILITY_MX=FACILITY_MX,
        FACILITY_US=FACILITY_US,
        FACILITY_CA=FACILITY_CA,
        MX_CLAIM=MX_CLAIM,
        NLRB_CLAIM=NLRB_CLAIM,
    )
