"""Locate the data folders that ship inside the wheel (or sit beside a checkout)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ["migrations_dir", "workflows_dir"]

_CHECKOUT = Path(__file__).resolve().parent.parent


def _find(wheel_name: str, checkout: Path) -> Path:
    packaged = Path(str(resources.files("rrm") / "_data" / wheel_name))
    if packaged.is_dir():
        return packaged
    # An editable install or a plain checkout imports rrm from the source tree,
    # where the data folders sit beside the package instead of inside it.
    if checkout.is_dir():
        return checkout
    msg = f"RRM's bundled {wheel_name!r} folder is missing from the installation"
    raise FileNotFoundError(msg)


def workflows_dir() -> Path:
    """Return the folder holding the bundled workflow definitions and calendars."""
    return _find("workflows", _CHECKOUT / "workflows")


def migrations_dir() -> Path:
    """Return the folder holding RRM's Alembic environment and revisions."""
    return _find("migrations", _CHECKOUT / "storage" / "migrations")
