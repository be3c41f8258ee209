"""The set of loaded workflow definitions and business-day calendars.

Definitions live in ``<dir>/<workflow-id>/v<N>.toml`` and calendars in
``<dir>/calendars/*.toml``. A host's own folder may omit calendars; the bundled ones
are used then. ``released.lock`` records the SHA-256 of every released definition.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rrm._resources import workflows_dir
from rrm.errors import InvalidInput, InvalidWorkflow, WorkflowNotFound
from rrm.workflow.calendars import load_calendars
from rrm.workflow.loader import read_workflow
from rrm.workflow.migration import MIGRATION_FILE, MigrationMap, read_migration

if TYPE_CHECKING:
    from collections.abc import Mapping

    from rrm.domain.calendars import BusinessCalendar
    from rrm.workflow.spec import WorkflowSpec

__all__ = ["LOCK_FILE", "Workflows", "check_released_lock", "load_workflows"]

LOCK_FILE = "released.lock"
_VERSION_FILE = re.compile(r"^v(\d+)\.toml$")


@dataclass(frozen=True, slots=True)
class Workflows:
    """Loaded workflow definitions (every version) and calendars.

    .. versionadded:: 0.1.0
    """

    specs: Mapping[tuple[str, int], WorkflowSpec]
    calendars: Mapping[str, BusinessCalendar]
    #: State mappings between versions, by (workflow id, from, to).
    migrations: Mapping[tuple[str, int, int], MigrationMap] = field(
        default_factory=dict
    )

    def migration(self, workflow_id: str, old: int, new: int) -> MigrationMap:
        """Return the reviewed state mapping from version *old* to *new*.

        Raises:
            WorkflowNotFound: If either version is not loaded.
            InvalidInput: If no mapping file joins them.
        """
        self.get(workflow_id, old)
        self.get(workflow_id, new)
        found = self.migrations.get((workflow_id, old, new))
        if found is None:
            raise InvalidInput(
                "to",
                f"no state mapping from {workflow_id} v{old} to v{new}: add "
                f"{workflow_id}/migrate-v{old}-to-v{new}.toml beside the definitions",
            )
        return found

    def get(self, workflow_id: str, version: int | None = None) -> WorkflowSpec:
        """Return one version, or the newest released one (else the newest draft).

        Raises:
            WorkflowNotFound: If no such workflow (version) is loaded.
        """
        if version is not None:
            spec = self.specs.get((workflow_id, version))
            if spec is None:
                raise WorkflowNotFound(workflow_id, version)
            return spec
        versions = [s for (wid, _), s in self.specs.items() if wid == workflow_id]
        if not versions:
            raise WorkflowNotFound(workflow_id)
        released = [s for s in versions if s.status == "released"]
        return max(released or versions, key=lambda s: s.version)

    def calendar(self, calendar_id: str) -> BusinessCalendar:
        """Return a calendar by id; ``a+b`` is the union of calendars a and b.

        Raises:
            InvalidInput: If a named calendar is not loaded.
        """
        parts = calendar_id.split("+")
        missing = [p for p in parts if p not in self.calendars]
        if missing:
            raise InvalidInput("calendar", f"unknown calendar {missing[0]!r}")
        cal = self.calendars[parts[0]]
        for part in parts[1:]:
            cal = cal.union(self.calendars[part])
        return cal

    def ids(self) -> list[str]:
        """Return the ids of the loaded workflows, sorted."""
        return sorted({wid for wid, _ in self.specs})

    def latest(self) -> list[WorkflowSpec]:
        """Return the version :meth:`get` would pick for each workflow id."""
        return [self.get(wid) for wid in self.ids()]


_SHOWN = 120  # characters of a path an error message quotes


def _shown(path: Path) -> str:
    """A path as an error message shows it, shortened in the middle."""
    text = str(path)
    return text if len(text) <= _SHOWN else f"{text[:60]}...{text[-57:]}"


def load_workflows(directory: Path | str | None = None) -> Workflows:
    """Load and validate every workflow definition in a folder.

    Args:
        directory: A folder of definitions; ``None`` loads the bundled ones.

    Raises:
        InvalidWorkflow: If any file breaks a rule (names the file and key).

    .. versionadded:: 0.1.0
    """
    root = Path(directory) if directory is not None else workflows_dir()
    calendars = dict(load_calendars(workflows_dir() / "calendars"))
    try:
        own_calendars = (root / "calendars").is_dir() and root != workflows_dir()
        paths = sorted(root.glob("*/v*.toml"))
    except OSError as exc:  # a name too long, a folder without permission, ...
        raise InvalidWorkflow(
            _shown(root), "folder", f"cannot be read ({exc.strerror or exc})"
        ) from None
    if own_calendars:
        calendars.update(load_calendars(root / "calendars"))
    ids = frozenset(calendars)
    specs: dict[tuple[str, int], WorkflowSpec] = {}
    for path in paths:
        if path.parent.name == "calendars":
            continue
        spec = read_workflow(path, calendar_ids=ids)
        match = _VERSION_FILE.match(path.name)
        if spec.workflow_id != path.parent.name or not match:
            raise InvalidWorkflow(
                str(path), "workflow.id", "file must be <workflow-id>/v<version>.toml"
            )
        if int(match.group(1)) != spec.version:
            raise InvalidWorkflow(
                str(path), "workflow.version", f"does not match file name {path.name}"
            )
        specs[(spec.workflow_id, spec.version)] = spec
    migrations: dict[tuple[str, int, int], MigrationMap] = {}
    for path in sorted(root.glob("*/migrate-v*-to-v*.toml")):
        if not MIGRATION_FILE.match(path.name):
            continue
        found = read_migration(path, specs)
        if found.workflow_id != path.parent.name or path.name != (
            f"migrate-v{found.from_version}-to-v{found.to_version}.toml"
        ):
            raise InvalidWorkflow(
                str(path),
                "migration",
                "file must be <workflow-id>/migrate-v<from>-to-v<to>.toml",
            )
        migrations[(found.workflow_id, found.from_version, found.to_version)] = found
    return Workflows(specs=specs, calendars=calendars, migrations=migrations)


def check_released_lock(directory: Path | None = None) -> list[str]:
    """Compare released definitions with ``released.lock``; return the problems.

    Every released definition must be listed with its SHA-256, and every listed
    file must still hash the same: a released version is immutable.
    """
    root = directory or workflows_dir()
    lock: dict[str, str] = {}
    lock_path = root / LOCK_FILE
    if lock_path.exists():
        for line in lock_path.read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                digest, name = line.split(maxsplit=1)
                lock[name.strip()] = digest
    problems = []
    for name, digest in lock.items():
        path = root / name
        if not path.exists():
            problems.append(f"{name}: listed in {LOCK_FILE} but missing")
        elif hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            problems.append(f"{name}: released definition changed; add a new version")
    workflows = load_workflows(root)
    for spec in workflows.specs.values():
        name = f"{spec.workflow_id}/v{spec.version}.toml"
        if spec.status == "released" and name not in lock:
            problems.append(f"{name}: released but not in {LOCK_FILE}")
    return problems
