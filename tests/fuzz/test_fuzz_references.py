"""Fuzz the checks of references and names (issue #13, item 2).

Hypothesis draws references and names salted with look-alike letters (Cyrillic
and Greek letters that pass for Latin ones), bidirectional controls, zero-width
and other invisible characters, control characters and line breaks, and
compatibility forms that NFKC folds (fullwidth letters, ligatures, no-break
spaces). Each opens a case on the engine of the test's backend (SQLite, and
PostgreSQL with ``RRM_TEST_POSTGRES``) as its reference, facility id, facility name,
owner, petitioner or officer id. An oracle written apart from the code under test
decides: accepted and stored in NFKC exactly when the text has no control or
invisible character and no word (no reference) mixing alphabets; otherwise refused with a typed
error, nothing written, and a petitioner's name never quoted.

Examples per test come from ``RRM_FUZZ_EXAMPLES`` (default 200).
"""

from __future__ import annotations

import itertools
import unicodedata
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

import rrm

from .conftest import FUZZ, check_rejection

pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning")

FACILITY = rrm.Facility(
    facility_id="MX-NM", name="Planta", owner="Grupo", country=rrm.Party.MX
)
CLAIM = rrm.Claim(basis="annex_23a_legislation", sector_category="manufacturing")
_refs = itertools.count()


def chars(*codes: int) -> str:
    return "".join(map(chr, codes))


# Cyrillic and Greek letters that look like Latin ones.
LOOK_ALIKES = chars(
    0x430, 0x435, 0x43E, 0x440, 0x441, 0x443, 0x445, 0x456, 0x458, 0x501,
    0x410, 0x412, 0x415, 0x41A, 0x41C, 0x41D, 0x41E, 0x420, 0x421, 0x422, 0x425,
    0x3BF, 0x3B1, 0x3B9, 0x3BD, 0x3C1, 0x3C4, 0x3C5,
    0x391, 0x392, 0x395, 0x397, 0x399, 0x39A, 0x39C, 0x39D, 0x39F, 0x3A1, 0x3A4,
)  # fmt: skip
# Bidirectional controls, zero-width characters and the soft hyphen.
INVISIBLE = chars(
    0x202A, 0x202B, 0x202C, 0x202D, 0x202E, 0x2066, 0x2067, 0x2068, 0x2069,
    0x200E, 0x200F, 0x061C, 0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF, 0x00AD,
)  # fmt: skip
CONTROLS = "\x00\t\n\r\x1b\x7f\x85\u2028\u2029"
# Fullwidth letters and digits, ligatures, no-break and ideographic spaces,
# ordinal indicators: NFKC folds each to plain text.
COMPAT = chars(
    0xFF21, 0xFF22, 0xFF23, 0xFF11, 0xFF12, 0xFF0D, 0xFB01, 0xFB02, 0x00A0,
    0x3000, 0x00AA, 0x00BA,
)  # fmt: skip

PLAIN = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 -_.'"
ACCENTED = "áéíóúñüçÉÑÍàèôÆß"


def _text(alphabet: str) -> st.SearchStrategy[str]:
    return st.text(alphabet=alphabet, min_size=1, max_size=16)


# Mostly text an officer types, salted one way at a time, and sometimes all ways.
salted = st.one_of(
    _text(PLAIN + ACCENTED),
    _text(PLAIN + LOOK_ALIKES),
    _text(PLAIN + ACCENTED + COMPAT),
    _text(PLAIN + INVISIBLE),
    _text(PLAIN + CONTROLS),
    _text(PLAIN + ACCENTED + LOOK_ALIKES + INVISIBLE + CONTROLS + COMPAT),
)


def acceptable(value: str, *, reference: bool) -> str | None:
    """The oracle: the stored form of *value*, or None when it must be refused.

    A reference must keep to one alphabet throughout; a name, within each word.
    """
    folded = unicodedata.normalize("NFKC", value).strip()
    if not folded:
        return None
    if any(
        ch in INVISIBLE
        or ch in CONTROLS
        or unicodedata.category(ch) in {"Cc", "Cf", "Zl", "Zp"}
        for ch in folded
    ):
        return None
    word: set[str] = set()
    for ch in folded + " ":
        if not unicodedata.category(ch).startswith(("L", "M", "N")):
            if len(word) > 1:
                return None
            if not reference:
                word = set()
        elif unicodedata.category(ch).startswith("L"):
            word.add(unicodedata.name(ch).split()[0])
    return folded


def attempt(call: Callable[[], Any]) -> tuple[Any, rrm.RRMError | None]:
    """Run *call*; return its result, or the typed refusal (anything else escapes)."""
    try:
        return call(), None
    except rrm.RRMError as exc:
        return None, exc


def absent(engine: rrm.CaseEngine, ref: str) -> bool:
    """True when no case has the reference *ref* (a refusal wrote no case)."""
    try:
        engine.get(ref)
    except (rrm.CaseNotFound, rrm.InvalidInput):
        return True
    return False


FIELDS = ("external_ref", "facility_id", "facility_name", "owner", "petitioner",
          "officer_id")  # fmt: skip


def open_cmd(where: str, value: str) -> rrm.OpenCase:
    """Open a case with *value* as the reference, facility part or person named."""
    facility = FACILITY
    if where in {"facility_id", "facility_name", "owner"}:
        part = {"facility_id": "facility_id", "facility_name": "name", "owner": "owner"}
        fields: dict[str, Any] = {
            "facility_id": f"MX-{next(_refs)}",
            "name": "Planta",
            "owner": "Grupo",
            "country": rrm.Party.MX,
        }
        fields[part[where]] = value
        facility = rrm.Facility(**fields)
    petitioners = (
        (rrm.Petitioner(name=value, confidential=True),)
        if where == "petitioner"
        else ()
    )
    return rrm.OpenCase(
        workflow="usmca-31a",
        initiation="request",
        complainant="US",
        respondent="MX",
        facility=facility,
        claim=CLAIM,
        external_ref=value if where == "external_ref" else f"NM-{next(_refs)}",
        actor="officer:ana",
        role="ustr",
        petitioners=petitioners,
        officers=(
            rrm.Officer(
                officer_id=value if where == "officer_id" else "ana", role="ustr"
            ),
        ),
    )


def stored_as(case: rrm.Case, where: str) -> str | None:
    return {
        "external_ref": case.external_ref,
        "facility_id": case.facility.facility_id,
        "facility_name": case.facility.name,
        "owner": case.facility.owner,
        "petitioner": case.petitioners[0].name if case.petitioners else None,
        "officer_id": case.officers[0].officer_id,
    }[where]


@FUZZ
@given(value=salted, where=st.sampled_from(FIELDS))
def test_references_and_names(engine: rrm.CaseEngine, value: str, where: str) -> None:
    stored = acceptable(
        value, reference=where in {"external_ref", "facility_id", "officer_id"}
    )
    cmd = open_cmd(where, value)
    case, refusal = attempt(lambda: engine.open_case(cmd))
    event("refused" if refusal is not None else "accepted")
    if refusal is not None:
        check_rejection(refusal)
        if isinstance(refusal, rrm.CaseAlreadyExists):
            return  # two drawn references folded to one: the second is refused
        assert stored is None, f"{value!r} refused: {refusal}"
        folded = unicodedata.normalize("NFKC", cmd.external_ref).strip()
        assert absent(engine, folded or cmd.external_ref)
        if where == "petitioner" and len(value) > 3:
            assert value not in str(refusal), "a petitioner's name was quoted"
        return
    assert stored is not None, f"{value!r} accepted as {where}"
    assert stored_as(case, where) == stored
    assert engine.get(case.case_id) == case
    assert engine.verify(case.case_id).ok
