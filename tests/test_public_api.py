"""The public surface is exactly what rrm.__all__ promises."""

from __future__ import annotations

import subprocess
import sys

import rrm
import rrm.errors

EXPECTED = {
    "AccessPolicy",
    "Action",
    "Alert",
    "AlertKind",
    "AlertMessage",
    "AlertNotFound",
    "AlertSettings",
    "AlertStatus",
    "AlertView",
    "Notifier",
    "TickReport",
    "AssignOfficers",
    "Authorizer",
    "AvailableEvent",
    "Case",
    "CaseAlreadyExists",
    "CaseDamaged",
    "CaseEngine",
    "CaseError",
    "CaseNotFound",
    "DatabaseBusy",
    "CaseOpened",
    "ChainAnchor",
    "ChainReport",
    "Damage",
    "RowDifference",
    "Claim",
    "Clock",
    "ConcurrencyConflict",
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
    "SchemaOutOfDate",
    "StorageError",
    "SystemClock",
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
}


class TestPublicAPI:
    def test_all_is_the_promised_surface(self):
        """rrm.__all__ lists exactly the public names, sorted."""
        assert set(rrm.__all__) == EXPECTED
        assert rrm.__all__ == sorted(rrm.__all__)

    def test_every_name_resolves(self):
        """Every name in __all__ exists on the package."""
        for name in rrm.__all__:
            assert getattr(rrm, name) is not None

    def test_every_error_is_exported_and_rooted(self):
        """Every exception of rrm.errors is exported and derives from RRMError."""
        for name in rrm.errors.__all__:
            error = getattr(rrm.errors, name)
            assert issubclass(error, rrm.RRMError)
            assert getattr(rrm, name) is error

    def test_version(self):
        """rrm.__version__ is a version string."""
        assert rrm.__version__.count(".") >= 2

    def test_import_has_no_side_effects(self, tmp_path):
        """Importing rrm creates no database file and configures no logging."""
        code = (
            "import structlog, rrm; import os;"
            "print(structlog.is_configured(), sorted(os.listdir('.')))"
        )
        out = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            cwd=tmp_path,
        ).stdout.strip()
        assert out == "False []"

    def test_cli_runs_as_module(self):
        """python -m rrm --help prints usage and exits 0."""
        done = subprocess.run(
            [sys.executable, "-m", "rrm", "--help"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0
        assert "workflows" in done.stdout
