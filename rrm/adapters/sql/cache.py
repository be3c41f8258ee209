"""A process-wide cache of the child rows of recently written cases.

Loading a case takes four queries (the case row with its facility, petitioners,
officers and deadlines); firing an event on it needs the case and the hash of its
latest history entry. A case written by this process a moment ago is usually the
next one touched (an officer records several steps; the worker sweeps the cases
it just alerted on), so the repository keeps the children it wrote and reuses
them while the case row still has the same ``version`` and ``schedule_seq``.

Reads validate a copy in the one query that reads the case row, so nothing is
trusted that another process could have changed without moving one of the two
numbers: every change of a case adds a history entry (``version``), and what
changes without one (the sweep's alert bookkeeping, a facility's details)
increments ``schedule_seq``. A fire may go further and decide on the whole cached
case without reading it: its UPDATE of the case row is guarded by both numbers,
so a stale copy writes nothing and the engine decides again on the stored case.
Entries are published only after their transaction commits.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, final

if TYPE_CHECKING:
    from rrm.domain.case import Case, Deadline, Officer, Petitioner

__all__ = ["CachedChildren", "CaseCache"]

DEFAULT_SIZE: Final = 4096


@dataclass(frozen=True, slots=True)
class CachedChildren:
    """What a case row does not hold, as of one version and schedule stamp."""

    version: int
    schedule_seq: int
    #: The hash of the entry that made this version; ``None`` when not known.
    last_hash: str | None
    petitioners: tuple[Petitioner, ...]
    officers: tuple[Officer, ...]
    deadlines: tuple[Deadline, ...]
    #: The whole case as written (UTC instants), when known; its attributes are
    #: served from ``attributes_json`` so that no caller shares them.
    case: Case | None = None
    attributes_json: str = ""


@final
class CaseCache:
    """A bounded, thread-safe, least-recently-used map of case id to children.

    Args:
        size: How many cases to keep; 0 turns the cache off.

    .. versionadded:: 0.2.0
    """

    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        if size < 0:
            msg = "the case cache size cannot be negative"
            raise ValueError(msg)
        self.size = size
        self._entries: OrderedDict[str, CachedChildren] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(
        self, case_id: str, *, version: int, schedule_seq: int
    ) -> CachedChildren | None:
        """Return the children of that exact version and stamp, or ``None``."""
        with self._lock:
            found = self._entries.get(case_id)
            if found is None:
                return None
            if found.version != version or found.schedule_seq != schedule_seq:
                del self._entries[case_id]
                return None
            self._entries.move_to_end(case_id)
            return found

    def latest(self, case_id: str) -> CachedChildren | None:
        """Return the newest copy of a case, whatever the stored version now is."""
        with self._lock:
            return self._entries.get(case_id)

    def discard(self, case_id: str) -> None:
        """Forget a case (its copy proved stale)."""
        with self._lock:
            self._entries.pop(case_id, None)

    def publish(self, entries: dict[str, CachedChildren]) -> None:
        """Store the children written by a transaction that has committed."""
        if not self.size:
            return
        with self._lock:
            for case_id, children in entries.items():
                self._entries[case_id] = children
                self._entries.move_to_end(case_id)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
