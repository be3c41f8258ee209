"""Column types that keep RRM's time stamps exact and always in UTC."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, final

import sqlalchemy as sa

from rrm.errors import InvalidInput

if TYPE_CHECKING:
    from sqlalchemy.engine import Dialect

__all__ = ["UTCDateTime"]


@final
class UTCDateTime(sa.TypeDecorator[datetime]):
    """An aware UTC instant, exact to the microsecond on every backend.

    PostgreSQL stores it as ``timestamptz``. SQLite has no time zone type, so the
    value is stored as naive UTC text (SQLAlchemy keeps the microseconds) and UTC is
    attached again on read. Naive datetimes are refused on write, because guessing
    their zone would silently move legal deadlines.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(
        self, value: datetime | None, dialect: Dialect
    ) -> datetime | None:
        """Refuse naive values and convert aware ones to UTC for storage."""
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise InvalidInput(
                "datetime",
                "the date and time has no time zone; RRM stores only aware "
                "instants, e.g. 2024-01-18T15:00:00+00:00",
            )
        # Most values are already UTC; astimezone() would cost as much again.
        utc = value if value.tzinfo is UTC else value.astimezone(UTC)
        # SQLite's DATETIME is text without an offset: store the UTC wall time.
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(
        self,
        value: datetime | None,
        dialect: Dialect,  # noqa: ARG002 - the signature is SQLAlchemy's
    ) -> datetime | None:
        """Return the stored instant as an aware UTC datetime."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)
