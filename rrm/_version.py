"""The library version (single source for hatch)."""

__version__ = "0.1.0"
