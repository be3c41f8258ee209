"""Who is acting: an authenticated principal and the roles it holds.

A principal is proven by the service (a validated token), never asserted by a
request. The engine records its id as the actor of every change it makes, and the
credential it came with (``via``) in the history entry.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Principal"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Principal:
    """An authenticated caller.

    Attributes:
        principal_id: The stable id of the person or service account (the
            actor recorded in the history).
        roles: Workflow roles (``ustr``, ``respondent``, ...) and operational
            roles (``supervisor``, ``admin``) the principal holds.
        agencies: The agencies the principal belongs to (``USTR``, ``DOL``,
            ``STPS``, ...); agency-wide grants are keyed by them.
        via: The credential the principal was proven with, for the history:
            ``token:<token id>`` or ``oidc:<issuer>``.
        name: A display name, never logged.

    .. versionadded:: 0.3.0
    """

    principal_id: str
    roles: frozenset[str] = field(default_factory=frozenset)
    agencies: frozenset[str] = field(default_factory=frozenset)
    via: str = ""
    name: str = ""
