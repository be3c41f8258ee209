"""Commands: what a caller asks the engine to do (frozen, validated by the service)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping
    from datetime import date, datetime

    from rrm.domain.case import Facility, JSONValue, Officer, Party, Petitioner

__all__ = [
    "AssignOfficers",
    "Claim",
    "ExtendDeadline",
    "FireEvent",
    "OpenCase",
    "PauseDeadline",
    "ResumeDeadline",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Claim:
    """What is alleged: the legal basis and the facility's sector.

    Attributes:
        basis: ``annex_23a_legislation`` (a facility in Mexico),
            ``enforced_nlrb_order`` (a facility in the United States) or
            ``canadian_legislation`` (a facility in Canada).
        sector_category: ``manufacturing``, ``services`` or ``mining`` for a
            Priority Sector; anything else fails the Covered Facility check.
        legal_provisions: The provisions cited (for example LFT articles).
        nlrb_order: The enforced NLRB order relied on, when the basis needs one.
        alleged_conduct_from: When the alleged denial of rights began, if known.
    """

    basis: str
    sector_category: str
    legal_provisions: tuple[str, ...] = ()
    nlrb_order: str = ""
    alleged_conduct_from: date | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class OpenCase:
    """Open a case from a petition, a self-initiation or a request for review."""

    workflow: str
    initiation: str
    complainant: Party | str
    respondent: Party | str
    facility: Facility
    claim: Claim
    external_ref: str
    actor: str
    role: str
    petitioners: tuple[Petitioner, ...] = ()
    officers: tuple[Officer, ...] = ()
    reason: str = ""
    payload: Mapping[str, JSONValue] = field(default_factory=dict)
    workflow_version: int | None = None
    at: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class FireEvent:
    """Record an event on a case; ``at`` records one that happened earlier.

    ``case_id`` is the case's id or, since 0.3.0, its external reference.
    """

    case_id: str
    event: str
    actor: str
    role: str
    reason: str = ""
    payload: Mapping[str, JSONValue] = field(default_factory=dict)
    idempotency_key: str | None = None
    expected_version: int | None = None
    at: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ExtendDeadline:
    """Move an open deadline later, by agreement of the Parties (reason required)."""

    case_id: str
    key: str
    new_date: date
    actor: str
    role: str
    reason: str
    expected_version: int | None = None
    at: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PauseDeadline:
    """Toll (pause) an open deadline, for example during a Secretariat closure."""

    case_id: str
    key: str
    actor: str
    role: str
    reason: str
    expected_version: int | None = None
    at: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ResumeDeadline:
    """Resume a paused deadline; its due date moves later by the paused days."""

    case_id: str
    key: str
    actor: str
    role: str
    reason: str
    expected_version: int | None = None
    at: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AssignOfficers:
    """Assign officers to a case and/or remove assignments (by officer id)."""

    case_id: str
    actor: str
    role: str
    assign: tuple[Officer, ...] = ()
    remove: tuple[str, ...] = ()
    reason: str = ""
    expected_version: int | None = None
