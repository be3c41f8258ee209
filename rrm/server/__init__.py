"""The case service: RRM over HTTP (``rrm serve``).

An outer room beside :mod:`rrm.cli`: it authenticates requests, translates them
into engine commands and renders the results. Every decision (what a role may do,
what a deadline is) stays in the service layer below; what the CLI and the API
both show is rendered once, in :mod:`rrm.views`.
"""

from rrm.server.app import create_app
from rrm.server.settings import OidcSettings, ServerSettings

__all__ = ["OidcSettings", "ServerSettings", "create_app"]
