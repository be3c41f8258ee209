"""usmca-rrm: case engine for the USMCA Rapid Response Labor Mechanism.

Public modules are ``rrm`` (this one), ``rrm.errors`` and ``rrm.testing``; every
other module is internal even without a leading underscore.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

from rrm._version import __version__ as _checkout_version
from rrm.clock import Clock, SystemClock
from rrm.domain.access import Principal
from rrm.domain.alerts import Alert, AlertKind, AlertMessage, AlertStatus, AlertView
from rrm.domain.case import (
    Case,
    Deadline,
    DeadlineStatus,
    Facility,
    HistoryEntry,
    Officer,
    Party,
    Petitioner,
)
from rrm.domain.commands import (
    AssignOfficers,
    Claim,
    ExtendDeadline,
    FireEvent,
    OpenCase,
    PauseDeadline,
    ResumeDeadline,
)
from rrm.domain.events import CaseOpened, DeadlineChanged, DomainEvent, TransitionFired
from rrm.errors import (
    AlertNotFound,
    CaseAlreadyExists,
    CaseDamaged,
    CaseError,
    CaseNotFound,
    ConcurrencyConflict,
    DatabaseBusy,
    DeadlineNotFound,
    FacilityNotFound,
    FeedNotFound,
    GuardRejected,
    InvalidInput,
    InvalidWorkflow,
    NotAuthenticated,
    NotificationError,
    NotPermitted,
    RoleNotAllowed,
    RRMError,
    SchemaOutOfDate,
    StorageError,
    TransitionNotAllowed,
    WebhookNotFound,
    WorkflowError,
    WorkflowNotFound,
)
from rrm.service.access import AccessPolicy, Action, Authorizer, Grant, HostCheck
from rrm.service.alerting import AlertSettings, TickReport
from rrm.service.engine import (
    AvailableEvent,
    CaseEngine,
    ChainAnchor,
    ChainReport,
    OutcomeCount,
)
from rrm.service.ports import Damage, Notifier
from rrm.service.transfer.rederive import RowDifference
from rrm.wiring import bootstrap, upgrade_schema
from rrm.workflow.registry import Workflows, load_workflows
from rrm.workflow.spec import WorkflowSpec

__all__ = [
    "AccessPolicy",
    "Action",
    "Alert",
    "AlertKind",
    "AlertMessage",
    "AlertNotFound",
    "AlertSettings",
    "AlertStatus",
    "AlertView",
    "AssignOfficers",
    "Authorizer",
    "AvailableEvent",
    "Case",
    "CaseAlreadyExists",
    "CaseDamaged",
    "CaseEngine",
    "CaseError",
    "CaseNotFound",
    "CaseOpened",
    "ChainAnchor",
    "ChainReport",
    "Claim",
    "Clock",
    "ConcurrencyConflict",
    "Damage",
    "DatabaseBusy",
    "Deadline",
    "DeadlineChanged",
    "DeadlineNotFound",
    "DeadlineStatus",
    "DomainEvent",
    "ExtendDeadline",
    "Facility",
    "FacilityNotFound",
    "FeedNotFound",
    "FireEvent",
    "Grant",
    "GuardRejected",
    "HistoryEntry",
    "HostCheck",
    "InvalidInput",
    "InvalidWorkflow",
    "NotAuthenticated",
    "NotPermitted",
    "NotificationError",
    "Notifier",
    "Officer",
    "OpenCase",
    "OutcomeCount",
    "Party",
    "PauseDeadline",
    "Petitioner",
    "Principal",
    "RRMError",
    "ResumeDeadline",
    "RoleNotAllowed",
    "RowDifference",
    "SchemaOutOfDate",
    "StorageError",
    "SystemClock",
    "TickReport",
    "TransitionFired",
    "TransitionNotAllowed",
    "WebhookNotFound",
    "WorkflowError",
    "WorkflowNotFound",
    "WorkflowSpec",
    "Workflows",
    "bootstrap",
    "load_workflows",
    "upgrade_schema",
]


def __getattr__(name: str) -> Any:
    if name == "__version__":
        try:
            return version("usmca-rrm")
        except PackageNotFoundError:  # a plain checkout that was never installed
            return _checkout_version
    msg = f"module 'rrm' has no attribute {name!r}"
    raise AttributeError(msg)
