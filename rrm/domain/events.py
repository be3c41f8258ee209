"""Domain events: facts handed to subscribers after a change has been committed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    from datetime import date, datetime

__all__ = [
    "CaseOpened",
    "DeadlineChanged",
    "DomainEvent",
    "TransitionFired",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class CaseOpened:
    """A case was opened."""

    case_id: str
    external_ref: str
    workflow: str
    workflow_version: int
    state: str
    seq: int
    at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class TransitionFired:
    """An event was recorded on a case (state may or may not have changed)."""

    case_id: str
    event: str
    from_state: str
    to_state: str
    actor: str
    role: str
    seq: int
    at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class DeadlineChanged:
    """A deadline opened, was met, cancelled, extended, paused or resumed."""

    case_id: str
    deadline_id: str
    key: str
    change: str
    status: str
    due_date: date
    due_at: datetime
    nominal: bool
    seq: int


DomainEvent: TypeAlias = CaseOpened | TransitionFired | DeadlineChanged
