"""Who may do what: the authorization policy the engine enforces.

The engine asks an :class:`Authorizer` before every change, inside the change's
transaction and on the case as stored, so a role is honoured only if the
principal holds it *for that case*. Two policies ship:

- :class:`HostCheck`, the default of the Python API: it allows every command,
  because a host that embeds RRM authenticates and authorizes its own users (the
  actor and role of a command are then the host's word);
- :class:`AccessPolicy`, used by ``rrm serve``: a principal may act only in a
  role it holds, only on a case where it is assigned in that role or an
  agency-wide :class:`Grant` covers it; ``system`` is never allowed to a client,
  and the case-management actions need the operational roles the policy names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol, final

from rrm.errors import NotPermitted

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from rrm.domain.access import Principal
    from rrm.domain.case import Case

__all__ = [
    "DEFAULT_ACTION_ROLES",
    "MANAGERS",
    "OPEN_GATE",
    "AccessPolicy",
    "Action",
    "Authorizer",
    "Gate",
    "Grant",
    "HostCheck",
]


class Action(StrEnum):
    """What a principal asks to do."""

    OPEN = "open a case"
    FIRE = "record an event"
    ASSIGN = "assign officers"
    EXTEND = "extend a deadline"
    PAUSE = "pause a deadline"
    RESUME = "resume a deadline"
    READ = "read cases"
    RETRY_ALERT = "retry an alert"
    ACKNOWLEDGE_ALERT = "acknowledge an alert"
    MANAGE_WEBHOOKS = "manage webhooks"
    MANAGE_TOKENS = "manage API tokens"
    MANAGE_FEEDS = "manage calendar feeds"
    IMPORT = "import cases"
    AUDIT = "audit histories"
    MIGRATE = "migrate cases to another workflow version"


# The case-management actions (not steps of the procedure) and the operational
# roles they need. Deployments may override them (``[access.actions]``).
DEFAULT_ACTION_ROLES: Mapping[Action, tuple[str, ...]] = {
    Action.ASSIGN: ("supervisor", "admin"),
    Action.EXTEND: ("supervisor",),
    Action.PAUSE: ("supervisor",),
    Action.RESUME: ("supervisor",),
    Action.RETRY_ALERT: ("admin",),
    Action.MANAGE_WEBHOOKS: ("admin",),
    Action.MANAGE_TOKENS: ("admin",),
    Action.IMPORT: ("admin",),
    Action.MIGRATE: ("admin",),
    Action.AUDIT: ("admin", "supervisor"),
}

#: The roles that may manage what is not theirs (another's alert, feed, export).
MANAGERS: tuple[str, ...] = ("admin", "supervisor")

# Roles that are not bound to one case: they act deployment-wide.
_GLOBAL_ROLES = frozenset({"admin"})
_ENGINE_ONLY = "system"


@dataclass(frozen=True, slots=True, kw_only=True)
class Grant:
    """An agency-wide permission: a role on every case that matches.

    Example: ``Grant(role="ustr", agency="USTR", complainant="US")`` lets every
    USTR officer holding the role ``ustr`` act as ``ustr`` on every case the
    United States brings, without being assigned to each.

    Attributes:
        role: The role granted.
        agency: Only principals of this agency (any agency if empty).
        complainant: Only cases this Party brings (any if empty).
        respondent: Only cases against this Party (any if empty).
        workflow: Only cases of this workflow id (any if empty).

    .. versionadded:: 0.3.0
    """

    role: str
    agency: str = ""
    complainant: str = ""
    respondent: str = ""
    workflow: str = ""

    def covers(self, principal: Principal, role: str, case: Case) -> bool:
        """Return True when this grant lets *principal* act as *role* on *case*."""
        return (
            role == self.role
            and (not self.agency or self.agency in principal.agencies)
            and (not self.complainant or self.complainant == case.complainant)
            and (not self.respondent or self.respondent == case.respondent)
            and (not self.workflow or self.workflow == case.workflow_id)
        )


class Authorizer(Protocol):
    """Decides whether a principal may act; raises ``NotPermitted`` if not.

    .. versionadded:: 0.3.0
    """

    def authorize(
        self,
        principal: Principal | None,
        *,
        action: Action,
        role: str,
        case: Case | None,
    ) -> None:
        """Allow the action or raise ``NotPermitted`` (nothing is written)."""
        ...

    def may_read(self, principal: Principal | None) -> bool:
        """Return True when the principal may read cases and deadlines."""
        ...


@final
class HostCheck:
    """Allow everything: the embedding host has already checked its user.

    .. versionadded:: 0.3.0
    """

    def authorize(
        self,
        principal: Principal | None,
        *,
        action: Action,
        role: str,
        case: Case | None,
    ) -> None:
        """Allow every action."""

    def may_read(self, principal: Principal | None) -> bool:  # noqa: ARG002
        """Allow every read."""
        return True


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class AccessPolicy:
    """Roles proven by identity, honoured per case (the case service's policy).

    Attributes:
        grants: Agency-wide permissions.
        action_roles: The roles each case-management action needs.

    .. versionadded:: 0.3.0
    """

    grants: tuple[Grant, ...] = ()
    action_roles: Mapping[Action, tuple[str, ...]] = field(
        default_factory=lambda: dict(DEFAULT_ACTION_ROLES)
    )

    def authorize(
        self,
        principal: Principal | None,
        *,
        action: Action,
        role: str,
        case: Case | None,
    ) -> None:
        """Allow the action or raise ``NotPermitted`` saying why.

        Raises:
            NotPermitted: No principal; the role is ``system``; the action needs
                another role; the principal does not hold the role; or it is not
                assigned to the case in that role and no grant covers it.
        """
        case_id = case.case_id if case is not None else ""

        def refuse(reason: str) -> NotPermitted:
            who = principal.principal_id if principal is not None else "(anonymous)"
            return NotPermitted(who, action.value, role, case_id, reason)

        if principal is None:
            raise refuse("nobody is signed in")
        if role == _ENGINE_ONLY:
            raise refuse("the system role is the engine's own; no caller may use it")
        needed = self.action_roles.get(action)
        if needed is not None and role not in needed:
            raise refuse(f"this needs the role {' or '.join(needed)}")
        if role not in principal.roles:
            raise refuse("you do not hold this role")
        if case is None or role in _GLOBAL_ROLES:
            return
        if self.holds_on(principal, role, case):
            return
        raise refuse(
            "you are not assigned to this case in this role, and no agency-wide "
            "grant covers it"
        )

    def holds_on(self, principal: Principal, role: str, case: Case) -> bool:
        """Return True when *principal* holds *role* on *case* (assigned or granted)."""
        if role not in principal.roles:
            return False
        if role in _GLOBAL_ROLES:
            return True
        pid = principal.principal_id
        if any(o.officer_id == pid and o.role == role for o in case.officers):
            return True
        return any(g.covers(principal, role, case) for g in self.grants)

    def may_read(self, principal: Principal | None) -> bool:
        """Return True for any signed-in principal that holds at least one role."""
        return principal is not None and bool(principal.roles)


@final
@dataclass(frozen=True, slots=True)
class Gate:
    """An authorizer bound to the principal of one command."""

    authorizer: Authorizer
    principal: Principal | None

    def check(self, action: Action, role: str, case: Case | None) -> None:
        """Authorize *action* in *role* on *case*, or raise ``NotPermitted``."""
        self.authorizer.authorize(self.principal, action=action, role=role, case=case)

    def actor(self, actor: str) -> tuple[str, str]:
        """Return the actor and credential to record for a command's *actor*.

        With a principal, the actor must be the principal itself.

        Raises:
            NotPermitted: If the command names another actor.
        """
        if self.principal is None:
            return actor, ""
        if actor != self.principal.principal_id:
            raise NotPermitted(
                self.principal.principal_id,
                "act for someone else",
                "",
                "",
                f"the command names the actor {actor!r}",
            )
        return actor, self.principal.via

    def check_any(self, action: Action, roles: Sequence[str], case: Case | None) -> str:
        """Authorize *action* in the first of *roles* that is allowed; return it.

        For management actions several roles may take (``admin`` or
        ``supervisor``): the caller need not say which it acts in.

        Raises:
            NotPermitted: None of them is allowed (the reason of the first).
        """
        first: NotPermitted | None = None
        for role in roles:
            try:
                self.check(action, role, case)
            except NotPermitted as refused:
                first = first or refused
                continue
            return role
        assert first is not None  # noqa: S101 - roles is never empty
        raise first

    def roles_on(self, case: Case, roles: Iterable[str]) -> list[str]:
        """Return those of *roles* this gate's principal may act in on *case*."""
        allowed = []
        for role in roles:
            try:
                self.check(Action.FIRE, role, case)
            except NotPermitted:
                continue
            allowed.append(role)
        return allowed


#: The gate of a command with no principal under the host's own check.
OPEN_GATE: Gate = Gate(HostCheck(), None)
