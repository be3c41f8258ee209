"""What a case's rows hold beside its history, sealed into the history chain.

The parties, the facility, the claim, the petitioners (with their confidential
flag) and the officers (with their e-mail addresses) are given when a case
opens or officers are assigned; no event re-derives them. So the entry that
gives them carries a *subject*: a salted digest of each field, hashed with the
entry. Verifying a case recomputes the digests from the stored rows and names
every field whose row no longer matches, without the history ever holding a
name: petitioners may be confidential, and histories are exported and sent to
webhooks.

A subject is ``{"salt": ..., "<group>": {"<path>": "<digest>", ...}, ...}``.
Each group present replaces what earlier entries sealed of that group: an
assignment seals the whole officer list as it is after the change.

The salt is kept beside the digests, so a digest binds the row to the chain; it
does not hide a value from someone who holds the history and guesses the value
(a boolean above all). The history never carries the value itself.

.. versionadded:: 0.6.0
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from rrm.domain.case import Case, HistoryEntry, JSONValue

__all__ = [
    "GROUPS",
    "OPENING_GROUPS",
    "SealedField",
    "SubjectFinding",
    "compare_subject",
    "seal",
    "sealed_fields",
    "seals",
    "subject_values",
]

#: The groups a subject may seal, in the order findings are reported.
GROUPS: Final = ("case", "facility", "claim", "petitioners", "officers")
#: The groups the opening entry seals (all of them).
OPENING_GROUPS: Final = GROUPS
# Fields whose stored value is never repeated in a finding: a petitioner's name
# and contact may be confidential.
_UNSPOKEN: Final = frozenset({"name", "contact"})
_DIGEST_HEX: Final = 32  # 128 bits: enough to bind a row; keeps entries short


def _digest(salt: str, path: str, value: JSONValue) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    raw = f"{salt}\x00{path}\x00{text}".encode()
    return hashlib.sha256(raw).hexdigest()[:_DIGEST_HEX]


def _claim(case: Case) -> dict[str, JSONValue]:
    claim = case.attributes.get("claim")
    if not isinstance(claim, dict):
        return {"claim": claim}
    return {f"claim.{k}": v for k, v in sorted(claim.items())}


def subject_values(case: Case, group: str) -> dict[str, JSONValue]:
    """Return the fields of *group* as the case holds them, by path."""
    if group == "case":
        return {
            "external_ref": case.external_ref,
            "facility_id": case.facility.facility_id,
            "workflow_id": case.workflow_id,
            # The version the case opened on (a migration moves it on later).
            "workflow_version": case.workflow_version,
            "complainant": str(case.complainant),
            "respondent": str(case.respondent),
            "initiation": case.initiation,
        }
    if group == "facility":
        f = case.facility
        return {
            "facility.facility_id": f.facility_id,
            "facility.name": f.name,
            "facility.owner": f.owner,
            "facility.country": str(f.country),
            "facility.city": f.city,
            "facility.region": f.region,
            "facility.sector": f.sector,
        }
    if group == "claim":
        return _claim(case)
    if group == "petitioners":
        found: dict[str, JSONValue] = {}
        for i, p in enumerate(case.petitioners, start=1):
            found[f"petitioner {i}.name"] = p.name
            found[f"petitioner {i}.confidential"] = p.confidential
            found[f"petitioner {i}.contact"] = p.contact
        return found
    if group == "officers":
        found = {}
        for o in case.officers:
            who = f"officer {o.officer_id} ({o.role})"
            found[f"{who}.name"] = o.name
            found[f"{who}.email"] = o.email
            found[f"{who}.language"] = o.language
            found[f"{who}.timezone"] = o.timezone
        return found
    raise ValueError(group)  # pragma: no cover - callers pass GROUPS only


def seal(case: Case, groups: Iterable[str], salt: str) -> dict[str, JSONValue]:
    """Return the subject sealing *groups* of *case* with *salt*."""
    sealed: dict[str, JSONValue] = {"salt": salt}
    for group in groups:
        sealed[group] = {
            path: _digest(salt, path, value)
            for path, value in subject_values(case, group).items()
        }
    return sealed


@dataclass(frozen=True, slots=True, kw_only=True)
class SealedField:
    """What the history sealed of one group: the digests, the salt and the entry."""

    group: str
    seq: int
    salt: str
    digests: Mapping[str, str]


def sealed_fields(entries: Iterable[HistoryEntry]) -> dict[str, SealedField]:
    """Return, per group, what the newest entry sealing it sealed.

    Groups no entry sealed (histories written before subjects existed) are
    absent.
    """
    found: dict[str, SealedField] = {}
    for e in entries:
        subject = e.subject
        if not subject:
            continue
        salt = subject.get("salt")
        if not isinstance(salt, str):
            continue
        for group in GROUPS:
            digests = subject.get(group)
            if isinstance(digests, dict):
                found[group] = SealedField(
                    group=group,
                    seq=e.seq,
                    salt=salt,
                    digests={k: str(v) for k, v in digests.items()},
                )
    return found


def seals(sealed: SealedField, path: str, value: JSONValue) -> bool:
    """True when *sealed* holds *value* at *path*."""
    digest = sealed.digests.get(path)
    return digest is not None and _digest(sealed.salt, path, value) == digest


@dataclass(frozen=True, slots=True, kw_only=True)
class SubjectFinding:
    """One stored field that does not match what the history sealed.

    ``stored`` is the row's value as shown to a reader (``None`` when the row
    lacks the field; withheld for a name or contact); ``recorded`` is the sealed
    value when it could be recovered (a flag), else ``None``.
    """

    group: str
    field: str
    seq: int
    stored: str | None
    recorded: str | None

    @property
    def message(self) -> str:
        """The finding in words, naming the field and both values where known."""
        if self.stored is None:
            return (
                f"{self.field} was recorded by entry {self.seq} but is missing "
                "from the stored rows"
            )
        if self.recorded == "(absent)":
            return (
                f"{self.field} is stored but no entry recorded it; the last "
                f"record of its kind is entry {self.seq}"
            )
        recorded = (
            f"entry {self.seq} recorded {self.recorded}"
            if self.recorded is not None
            else f"it differs from what entry {self.seq} recorded"
        )
        return f"{self.field}: stored {self.stored}, {recorded}"


def _shown(path: str, value: JSONValue) -> str:
    if path.rsplit(".", 1)[-1] in _UNSPOKEN and path.startswith("petitioner"):
        return "(withheld: may be confidential)"
    return json.dumps(value, ensure_ascii=False)


def _recovered(salt: str, path: str, digest: str) -> str | None:
    guesses: tuple[JSONValue, ...] = (True, False, None, "")
    if path == "workflow_version":
        guesses = tuple(range(1, 100))
    for guess in guesses:
        if _digest(salt, path, guess) == digest:
            return json.dumps(guess)
    return None


def _owner(path: str) -> str:
    """The row a path belongs to (``officer ana (ustr)`` of its ``.email``)."""
    head, dot, _ = path.rpartition(".")
    return head if dot and not path.startswith(("facility.", "claim.")) else path


def compare_subject(
    case: Case, sealed: Mapping[str, SealedField], *, groups: Iterable[str] = GROUPS
) -> list[SubjectFinding]:
    """Return every stored field of *groups* that differs from its seal.

    A whole row recorded but gone (an officer, a petitioner), or stored but never
    recorded, is one finding naming the row.
    """
    findings: list[SubjectFinding] = []
    for group in groups:
        seal_of = sealed.get(group)
        if seal_of is None:
            continue
        held = subject_values(case, group)
        gone: dict[str, None] = {}
        for path, digest in seal_of.digests.items():
            if path not in held:
                gone.setdefault(_owner(path))
                continue
            if _digest(seal_of.salt, path, held[path]) != digest:
                findings.append(
                    SubjectFinding(
                        group=group,
                        field=path,
                        seq=seal_of.seq,
                        stored=_shown(path, held[path]),
                        recorded=_recovered(seal_of.salt, path, digest),
                    )
                )
        findings.extend(
            SubjectFinding(
                group=group, field=row, seq=seal_of.seq, stored=None, recorded=None
            )
            for row in gone
        )
        extra: dict[str, str] = {}
        for path in held:
            # A whole row (a petitioner, an officer) no entry gave; a field a
            # later version seals is not one an older entry could have sealed.
            if path not in seal_of.digests and _owner(path) != path:
                extra.setdefault(_owner(path), _shown(path, held[path]))
        findings.extend(
            SubjectFinding(
                group=group,
                field=row,
                seq=seal_of.seq,
                stored="(a row)",
                recorded="(absent)",
            )
            for row in extra
        )
    return findings
