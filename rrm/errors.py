"""Every exception RRM raises on purpose, in one tree.

Each error carries structured attributes for host code and a message a case officer
can read. Where the meaning fits, an error also subclasses the matching builtin so a
host can catch ``LookupError``, ``ValueError`` or ``PermissionError``::

    RRMError
    ├── WorkflowError
    │   ├── WorkflowNotFound          (also LookupError)
    │   └── InvalidWorkflow           (also ValueError)   file, key, reason
    ├── CaseError
    │   ├── CaseNotFound              (also LookupError)
    │   ├── CaseAlreadyExists                             external_ref
    │   ├── TransitionNotAllowed                          case_id, state, event
    │   ├── RoleNotAllowed            (also PermissionError) case_id, event, role
    │   ├── NotPermitted              (also PermissionError) principal, action, role
    │   ├── GuardRejected                                 case_id, event, guard, reason
    │   ├── DeadlineNotFound          (also LookupError)  case_id, key
    │   ├── AlertNotFound             (also LookupError)  alert_id
    │   ├── FacilityNotFound          (also LookupError)  facility_id
    │   ├── WebhookNotFound           (also LookupError)  webhook_id, kind
    │   └── ConcurrencyConflict                           case_id, expected, actual
    ├── InvalidInput                  (also ValueError)   field, reason
    ├── NotAuthenticated                                  reason
    ├── FeedNotFound                  (also LookupError)  feed_id
    ├── StorageError                                      wraps driver errors
    │   └── SchemaOutOfDate                               current vs head revision
    └── NotificationError                                 raised by notifier adapters

.. versionadded:: 0.1.0
"""

from __future__ import annotations

__all__ = [
    "AlertNotFound",
    "CaseAlreadyExists",
    "CaseError",
    "CaseNotFound",
    "ConcurrencyConflict",
    "DatabaseBusy",
    "DeadlineNotFound",
    "FacilityNotFound",
    "FeedNotFound",
    "GuardRejected",
    "InvalidInput",
    "InvalidWorkflow",
    "NotAuthenticated",
    "NotPermitted",
    "NotificationError",
    "RRMError",
    "RoleNotAllowed",
    "SchemaOutOfDate",
    "StorageError",
    "TransitionNotAllowed",
    "WebhookNotFound",
    "WorkflowError",
    "WorkflowNotFound",
]


class RRMError(Exception):
    """Root of every error RRM raises on purpose.

    Attributes:
        hint: A short suggestion of what to do next, or ``None``.
    """

    hint: str | None = None

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if hint is not None:
            self.hint = hint

    def __str__(self) -> str:
        return self.message


class WorkflowError(RRMError):
    """A workflow definition is missing or wrong."""


class WorkflowNotFound(WorkflowError, LookupError):
    """No workflow with that id (and version) is loaded."""

    def __init__(self, workflow: str, version: int | None = None) -> None:
        self.workflow = workflow
        self.version = version
        which = workflow if version is None else f"{workflow} version {version}"
        super().__init__(
            f"Unknown workflow {which!r}.",
            hint="Run `rrm workflows list` to see the workflows that are loaded.",
        )


class InvalidWorkflow(WorkflowError, ValueError):
    """A workflow definition file breaks a rule; names the file and the key."""

    def __init__(self, file: str, key: str, reason: str) -> None:
        self.file = file
        self.key = key
        self.reason = reason
        super().__init__(f"{file}: {key}: {reason}")


class CaseError(RRMError):
    """A command does not fit the case it names."""


class CaseNotFound(CaseError, LookupError):
    """No case with that id or reference exists."""

    def __init__(self, ref: str) -> None:
        self.ref = ref
        super().__init__(
            f"No case {ref!r} exists.",
            hint="Check the case id or the external reference.",
        )


class CaseAlreadyExists(CaseError):
    """A case with the same external reference is already open."""

    def __init__(self, external_ref: str, case_id: str) -> None:
        self.external_ref = external_ref
        self.case_id = case_id
        super().__init__(
            f"A case with reference {external_ref!r} already exists ({case_id}).",
        )


class TransitionNotAllowed(CaseError):
    """The event cannot happen in the case's current state."""

    def __init__(
        self,
        case_id: str,
        state: str,
        event: str,
        allowed: tuple[str, ...] = (),
        *,
        closed: bool = False,
    ) -> None:
        self.case_id = case_id
        self.state = state
        self.event = event
        self.allowed = allowed
        if closed:
            # A closed case takes dated facts only (workflow v2), never a step.
            facts = ", ".join(allowed) if allowed else "none"
            message = (
                f"Event {event!r} is not possible: case {case_id} is closed (state "
                f"{state!r}). A closed case takes only dated facts: {facts}."
            )
        else:
            options = ", ".join(allowed) if allowed else "none (the case is closed)"
            message = (
                f"Event {event!r} is not possible while case {case_id} is in state "
                f"{state!r}. Possible events: {options}."
            )
        super().__init__(message)


class RoleNotAllowed(CaseError, PermissionError):
    """The acting role may not fire this event."""

    def __init__(
        self, case_id: str, event: str, role: str, allowed: tuple[str, ...]
    ) -> None:
        self.case_id = case_id
        self.event = event
        self.role = role
        self.allowed = allowed
        super().__init__(
            f"Role {role!r} may not record {event!r} on case {case_id}; "
            f"allowed roles: {', '.join(allowed)}.",
        )


class NotPermitted(CaseError, PermissionError):
    """The signed-in principal may not take this action on this case.

    Raised when the principal does not hold the role it acts in, is not assigned
    to the case in that role (and no agency-wide grant covers it), or asks for a
    role no client may assert (``system``). Nothing is written.

    .. versionadded:: 0.3.0
    """

    def __init__(
        self, principal: str, action: str, role: str, case_id: str, reason: str
    ) -> None:
        self.principal = principal
        self.action = action
        self.role = role
        self.case_id = case_id
        self.reason = reason
        where = f" on case {case_id}" if case_id else ""
        super().__init__(
            f"{principal!r} may not {action} as {role!r}{where}: {reason}.",
            hint="Ask a supervisor to assign you to the case in that role.",
        )


class GuardRejected(CaseError):
    """A named precondition of the transition is not met."""

    def __init__(self, case_id: str, event: str, guard: str, reason: str) -> None:
        self.case_id = case_id
        self.event = event
        self.guard = guard
        self.reason = reason
        super().__init__(
            f"Event {event!r} on case {case_id} was refused by check {guard!r}: "
            f"{reason}",
        )


class DeadlineNotFound(CaseError, LookupError):
    """The case has no open deadline with that key."""

    def __init__(self, case_id: str, key: str) -> None:
        self.case_id = case_id
        self.key = key
        super().__init__(f"Case {case_id} has no open deadline {key!r}.")


class AlertNotFound(CaseError, LookupError):
    """No alert with that id is in the outbox."""

    def __init__(self, alert_id: str) -> None:
        self.alert_id = alert_id
        super().__init__(
            f"No alert {alert_id!r} exists.",
            hint="List alerts with `rrm alerts` to find the id.",
        )


class WebhookNotFound(CaseError, LookupError):
    """No webhook subscription (or delivery) with that id exists.

    Attributes:
        webhook_id: The id asked for.
        kind: ``"subscription"`` or ``"delivery"``.

    .. versionadded:: 0.3.0
    """

    def __init__(self, webhook_id: str, *, kind: str = "subscription") -> None:
        self.webhook_id = webhook_id
        self.kind = kind
        super().__init__(
            f"No webhook {kind} {webhook_id!r} exists.",
            hint="List the webhook subscriptions and deliveries to find the id.",
        )


class FacilityNotFound(CaseError, LookupError):
    """No facility with that id is in the registry.

    .. versionadded:: 0.3.0
    """

    def __init__(self, facility_id: str) -> None:
        self.facility_id = facility_id
        super().__init__(f"No facility {facility_id!r} is registered.")


class ConcurrencyConflict(CaseError):
    """Someone else changed the case first; reload and try again."""

    def __init__(self, case_id: str, expected: int, actual: int) -> None:
        self.case_id = case_id
        self.expected_version = expected
        self.actual_version = actual
        super().__init__(
            f"Case {case_id} changed meanwhile: you expected version {expected}, "
            f"it is now at version {actual}. Nothing was written.",
            hint="Reload the case, check what changed, and repeat your action.",
        )


class StaleCopy(ConcurrencyConflict):
    """Internal: a change was decided on a stale cached copy of a case.

    The stored case had moved on, so nothing was written; the engine decides
    again on the stored case. Never reaches a caller of :class:`rrm.CaseEngine`
    (and is not exported).
    """


class InvalidInput(RRMError, ValueError):
    """A value supplied by the caller is malformed; names the field."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


class NotAuthenticated(RRMError):
    """A request to the case service carries no valid credential.

    The reason is deliberately vague about which check failed (unknown, revoked
    or expired), so a guesser learns nothing.

    .. versionadded:: 0.3.0
    """

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(
            f"Not signed in: {reason}.",
            hint="Send a valid token: Authorization: Bearer <token>.",
        )


class FeedNotFound(RRMError, LookupError):
    """No calendar feed with that id exists.

    .. versionadded:: 0.3.0
    """

    def __init__(self, feed_id: str) -> None:
        self.feed_id = feed_id
        super().__init__(f"No calendar feed {feed_id!r} exists.")


class StorageError(RRMError):
    """The database refused or failed an operation (wraps the driver's error)."""


class CaseDamaged(StorageError):
    """A stored case row cannot be what its history and workflow allow.

    For example a state its pinned workflow version does not have, edited in the
    database by hand. Names the case and the field; nothing is shown from the row.

    .. versionadded:: 0.5.0
    """

    def __init__(self, case_id: str, field: str, detail: str, ref: str = "") -> None:
        self.case_id = case_id
        self.field = field
        named = f"{ref} ({case_id})" if ref and ref != case_id else case_id
        detail = detail.removeprefix(f"{field}: ").removeprefix(f"{field} ")
        super().__init__(
            f"Case {named} is damaged: {field}: {detail.rstrip('.')}.",
            hint="Run `rrm audit verify` to see what differs from its history.",
        )


class DatabaseBusy(StorageError):
    """Another transaction held a lock longer than the busy or lock timeout.

    Nothing was written; the same command can be repeated in a moment (with the
    same idempotency key, if it had one). Hosts may retry it automatically.

    .. versionadded:: 0.2.0
    """


class SchemaOutOfDate(StorageError):
    """The database schema is not at the revision this version of RRM needs."""

    def __init__(self, current: str | None, head: str) -> None:
        self.current = current
        self.head = head
        super().__init__(
            f"The database schema is at revision {current or 'none'}, "
            f"this version of RRM needs {head}.",
            hint="Run `rrm db upgrade` (or rrm.upgrade_schema) first.",
        )


class NotificationError(RRMError):
    """A notifier could not deliver an alert.

    Attributes:
        permanent: True when retrying cannot help (for example the mail server
            rejected the recipient); False for outages and timeouts.
    """

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent
