"""State mappings that move live cases from one workflow version to another (data).

A mapping lives beside the definitions it joins, as
``<workflow-id>/migrate-v<from>-to-v<to>.toml``, and is reviewed like them:

.. code-block:: toml

    [migration]
    workflow = "usmca-31a"
    from = 1
    to = 2
    note = "why the states map as they do"

    [states]            # every state of the old version -> a state of the new one
    review_requested = "review_requested"
    withdrawn_settled = "closed_by_agreement"

    [deadlines]         # optional: an old deadline key -> its key in the new version
    old_key = "new_key"

The loader checks both ends exist and every named state and deadline is declared;
a mapping may leave a state out, and then a migration that meets a case in that
state is refused whole.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rrm.errors import InvalidWorkflow
from rrm.workflow.loader import read_toml

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from pathlib import Path

    from rrm.workflow.spec import WorkflowSpec

__all__ = ["MIGRATION_FILE", "MigrationMap", "parse_migration", "read_migration"]

MIGRATION_FILE = re.compile(r"^migrate-v(\d+)-to-v(\d+)\.toml$")


@dataclass(frozen=True, slots=True, kw_only=True)
class MigrationMap:
    """How the states (and renamed deadlines) of one version map onto another."""

    workflow_id: str
    from_version: int
    to_version: int
    states: Mapping[str, str]
    deadlines: Mapping[str, str] = field(default_factory=dict)
    note: str = ""
    source_file: str = ""
    sha256: str = ""

    def target(self, state: str) -> str | None:
        """Return the new state for *state*, or ``None`` when it has no mapping."""
        return self.states.get(state)

    def deadline_key(self, key: str) -> str:
        """Return the new key of an old deadline key (milestones keep ``.N``)."""
        base, dot, rest = key.partition(".")
        return f"{self.deadlines.get(base, base)}{dot}{rest}"


def read_migration(
    path: Path, specs: Mapping[tuple[str, int], WorkflowSpec]
) -> MigrationMap:
    """Read and check one mapping file against the loaded definitions.

    Raises:
        InvalidWorkflow: If the file breaks a rule; names the file and key.
    """
    data, raw = read_toml(path)
    return parse_migration(
        data, file=str(path), sha256=hashlib.sha256(raw).hexdigest(), specs=specs
    )


def parse_migration(
    data: Mapping[str, Any],
    *,
    file: str,
    sha256: str,
    specs: Mapping[tuple[str, int], WorkflowSpec],
) -> MigrationMap:
    """Validate parsed mapping data (pure).

    Raises:
        InvalidWorkflow: If the data breaks a rule; names the file and key.
    """

    def fail(key: str, reason: str) -> InvalidWorkflow:
        return InvalidWorkflow(file, key, reason)

    workflow_id, old, new, note = _head(data, specs, fail)
    states = _names(data, "states", fail)
    _check_pairs(states, old.states, new.states, "states", (old, new), fail)
    deadlines = _names(data, "deadlines", fail)
    _check_pairs(deadlines, old.deadlines, new.deadlines, "deadlines", (old, new), fail)
    return MigrationMap(
        workflow_id=workflow_id,
        from_version=old.version,
        to_version=new.version,
        states=states,
        deadlines=deadlines,
        note=note,
        source_file=file,
        sha256=sha256,
    )


def _only(
    data: Mapping[str, Any],
    allowed: set[str],
    path: str,
    fail: Callable[[str, str], InvalidWorkflow],
) -> None:
    for key in data:
        if key not in allowed:
            raise fail(f"{path}{key}", "unknown key")


def _head(
    data: Mapping[str, Any],
    specs: Mapping[tuple[str, int], WorkflowSpec],
    fail: Callable[[str, str], InvalidWorkflow],
) -> tuple[str, WorkflowSpec, WorkflowSpec, str]:
    _only(data, {"migration", "states", "deadlines"}, "", fail)
    head = data.get("migration")
    if not isinstance(head, dict):
        raise fail("migration", "a table is required here")
    _only(head, {"workflow", "from", "to", "note"}, "migration.", fail)
    workflow_id = head.get("workflow")
    if not isinstance(workflow_id, str) or not workflow_id:
        raise fail("migration.workflow", "must name the workflow")
    ends: list[WorkflowSpec] = []
    for key in ("from", "to"):
        version = head.get(key)
        if not isinstance(version, int) or isinstance(version, bool):
            raise fail(f"migration.{key}", "must be a version number")
        spec = specs.get((workflow_id, version))
        if spec is None:
            raise fail(f"migration.{key}", f"{workflow_id} v{version} is not loaded")
        ends.append(spec)
    old, new = ends
    if new.version <= old.version:
        raise fail("migration.to", "must be a later version than 'from'")
    note = head.get("note", "")
    if not isinstance(note, str):
        raise fail("migration.note", "must be text")
    return workflow_id, old, new, note


def _check_pairs(  # noqa: PLR0917 - one private helper, two call sites
    pairs: Mapping[str, str],
    old_names: Mapping[str, object],
    new_names: Mapping[str, object],
    what: str,
    ends: tuple[WorkflowSpec, WorkflowSpec],
    fail: Callable[[str, str], InvalidWorkflow],
) -> None:
    kind = what.removesuffix("s")
    for source, target in pairs.items():
        if source not in old_names:
            raise fail(f"{what}.{source}", f"v{ends[0].version} has no such {kind}")
        if target not in new_names:
            raise fail(
                f"{what}.{source}", f"v{ends[1].version} has no {kind} {target!r}"
            )


def _names(
    data: Mapping[str, Any], key: str, fail: Callable[[str, str], InvalidWorkflow]
) -> dict[str, str]:
    table = data.get(key, {})
    if not isinstance(table, dict):
        raise fail(key, "a table is required here")
    for name, value in table.items():
        if not isinstance(value, str) or not value:
            raise fail(
                f"{key}.{name}", "must name a state or deadline of the new version"
            )
    return dict(table)
