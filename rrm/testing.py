"""Test seams for RRM and for hosts that embed it (public API).

.. versionadded:: 0.1.0
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, final

from rrm.errors import InvalidInput

if TYPE_CHECKING:
    from rrm.domain.events import DomainEvent
    from rrm.service.alerting import TickReport
    from rrm.service.engine import CaseEngine

# More wake-ups than this in one skip means something keeps re-arming itself.
_MAX_WAKEUPS = 100_000

__all__ = ["FakeClock", "RecordingSubscriber", "skip"]


@final
class FakeClock:
    """A clock that moves only when told to (forward only).

    .. versionadded:: 0.1.0
    """

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise InvalidInput("start", "the fake clock needs an aware datetime")
        self._now = start.astimezone(UTC)

    def now(self) -> datetime:
        """Return the current fake instant (aware UTC)."""
        return self._now

    def advance(self, by: timedelta) -> datetime:
        """Move the clock forward by *by* and return the new instant."""
        if by < timedelta(0):
            raise InvalidInput("by", "the fake clock only moves forward")
        self._now += by
        return self._now

    def set(self, instant: datetime) -> datetime:
        """Move the clock forward to *instant* and return it."""
        if instant.tzinfo is None:
            raise InvalidInput("instant", "the fake clock needs an aware datetime")
        if instant < self._now:
            raise InvalidInput("instant", "the fake clock only moves forward")
        self._now = instant.astimezone(UTC)
        return self._now


@final
class RecordingSubscriber:
    """A subscriber that keeps every domain event it receives, in order.

    .. versionadded:: 0.1.0
    """

    def __init__(self) -> None:
        self.events: list[DomainEvent] = []

    def __call__(self, event: DomainEvent) -> None:
        """Record *event*."""
        self.events.append(event)


def skip(
    engine: CaseEngine,
    clock: FakeClock,
    *,
    by: timedelta | None = None,
    to: datetime | None = None,
) -> list[TickReport]:
    """Move time forward, ticking at every instant the engine asked to be woken.

    Like Temporal's time skipping, made synchronous: the clock jumps from one
    ``engine.next_wakeup()`` to the next up to the target, calling ``tick()`` at
    each, then ticks once more at the target. Returns the reports in order.

    .. versionadded:: 0.1.0
    """
    if (by is None) == (to is None):
        raise InvalidInput("by", "give exactly one of by= or to=")
    target = to if to is not None else clock.now() + (by or timedelta(0))
    reports = []
    for _ in range(_MAX_WAKEUPS):
        wake = engine.next_wakeup()
        if wake is None or wake > target:
            break
        clock.set(max(wake, clock.now()))
        reports.append(engine.tick())
    else:  # pragma: no cover - a guard against a runaway schedule
        raise InvalidInput("to", "the engine kept asking to be woken; giving up")
    clock.set(target)
    reports.append(engine.tick())
    return reports
