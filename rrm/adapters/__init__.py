"""Adapters: the only place with I/O libraries."""
