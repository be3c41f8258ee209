"""Request bodies of the case service (pydantic, for validation and OpenAPI).

Bodies carry what a caller asks; never who the caller is: the actor of every
command is the authenticated principal.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "AssignBody",
    "DeadlineChangeBody",
    "ExtendBody",
    "FacilityBody",
    "FeedBody",
    "FireBody",
    "OfficerBody",
    "OpenCaseBody",
    "PetitionerBody",
    "WebhookBody",
]

_TEXT = 2000


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FireBody(_Body):
    """Record an event on a case."""

    event: str = Field(min_length=1, max_length=200, examples=["respondent_agrees"])
    role: str | None = Field(
        default=None,
        max_length=100,
        description="The role to act in; if omitted, the only role the caller "
        "may use for this event.",
    )
    reason: str = Field(default="", max_length=_TEXT)
    payload: dict[str, Any] = Field(default_factory=dict)
    at: datetime | None = Field(
        default=None, description="When it happened, if earlier (with time zone)."
    )


class ExtendBody(_Body):
    """Extend an open deadline by agreement."""

    new_date: date
    reason: str = Field(min_length=1, max_length=_TEXT)
    role: str = Field(default="supervisor", max_length=100)


class DeadlineChangeBody(_Body):
    """Pause or resume a deadline."""

    reason: str = Field(min_length=1, max_length=_TEXT)
    role: str = Field(default="supervisor", max_length=100)


class OfficerBody(_Body):
    """An officer to assign."""

    officer_id: str = Field(min_length=1, max_length=200)
    role: str = Field(min_length=1, max_length=100)
    name: str = Field(default="", max_length=200)
    email: str = Field(default="", max_length=320)
    language: str = Field(default="en", max_length=10)
    timezone: str = Field(default="", max_length=64)


class AssignBody(_Body):
    """Assign officers to a case and/or remove them."""

    assign: list[OfficerBody] = Field(default_factory=list, max_length=100)
    remove: list[str] = Field(default_factory=list, max_length=100)
    reason: str = Field(default="", max_length=_TEXT)
    role: str = Field(default="supervisor", max_length=100)


class FacilityBody(_Body):
    """The facility a case is about."""

    facility_id: str = Field(min_length=1, max_length=200)
    name: str = Field(min_length=1, max_length=500)
    owner: str = Field(min_length=1, max_length=500)
    country: str = Field(min_length=2, max_length=2, examples=["MX"])
    city: str = Field(default="", max_length=200)
    region: str = Field(default="", max_length=200)
    sector: str = Field(default="", max_length=200)


class PetitionerBody(_Body):
    """A petitioner; a confidential one never leaves RRM."""

    name: str = Field(min_length=1, max_length=500)
    confidential: bool = False
    contact: str = Field(default="", max_length=500)


class ClaimBody(_Body):
    """What is alleged."""

    basis: str = Field(min_length=1, max_length=100)
    sector_category: str = Field(min_length=1, max_length=100)
    legal_provisions: list[str] = Field(default_factory=list, max_length=100)
    nlrb_order: str = Field(default="", max_length=500)
    alleged_conduct_from: date | None = None


class OpenCaseBody(_Body):
    """Open a case from a petition, a self-initiation or a request."""

    workflow: str = Field(min_length=1, max_length=100, examples=["usmca-31a"])
    workflow_version: int | None = Field(default=None, ge=1, le=10_000)
    initiation: str = Field(min_length=1, max_length=100, examples=["request"])
    complainant: str = Field(min_length=2, max_length=2, examples=["US"])
    respondent: str = Field(min_length=2, max_length=2, examples=["MX"])
    external_ref: str = Field(min_length=1, max_length=200)
    role: str = Field(min_length=1, max_length=100, examples=["ustr"])
    facility: FacilityBody
    claim: ClaimBody
    petitioners: list[PetitionerBody] = Field(default_factory=list, max_length=100)
    officers: list[OfficerBody] = Field(default_factory=list, max_length=100)
    reason: str = Field(default="", max_length=_TEXT)
    payload: dict[str, Any] = Field(default_factory=dict)
    at: datetime | None = None


class WebhookBody(_Body):
    """A webhook subscription."""

    url: str = Field(min_length=1, max_length=2000)
    event_types: list[str] = Field(min_length=1, max_length=50, examples=[["*"]])
    description: str = Field(default="", max_length=500)


class FeedBody(_Body):
    """A calendar feed for an officer (yourself unless you are a supervisor)."""

    officer_id: str | None = Field(default=None, max_length=200)
