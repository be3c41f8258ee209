"""The wall clock port: the only module allowed to read the current time."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol, final

__all__ = ["Clock", "SystemClock"]


class Clock(Protocol):
    """Source of the current instant.

    .. versionadded:: 0.1.0
    """

    def now(self) -> datetime:
        """Return the current instant as an aware UTC datetime."""
        ...


@final
class SystemClock:
    """The real clock (UTC).

    .. versionadded:: 0.1.0
    """

    def now(self) -> datetime:
        """Return the current instant as an aware UTC datetime."""
        return datetime.now(UTC)
