"""Fuzz the input bounds (issue #12, item 4), NUL and keys given twice (#13, item 2).

Hypothesis draws payloads nested to random depths (objects and lists mixed, up to
120 levels), payloads around the size limit, NUL characters at random places (keys
and values, at any depth), JSON texts with keys given twice, and import documents
and command lines carrying them. Each goes through the engine of the test's
backend (SQLite, and PostgreSQL with ``RRM_TEST_POSTGRES``), the JSON reader every
user input passes, or ``rrm.cli.main``, and the outcome is checked against an
oracle written apart from the code under test: accepted exactly when within the
limits, otherwise ``InvalidInput`` (one line and exit 1 at the command line) and
nothing written. Look-alike references are in ``test_fuzz_references.py``.

Examples per test come from ``RRM_FUZZ_EXAMPLES`` (default 200).
"""

from __future__ import annotations

import copy
import io
import itertools
import json
import os
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import rrm
from rrm.cli import main
from rrm.service import inputs
from rrm.service.transfer import export_case, import_cases
from rrm.testing import FakeClock

from .conftest import FUZZ

pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning")

START = datetime(2025, 1, 6, 15, tzinfo=UTC)  # the engine fixture's clock
PAYLOAD_DEPTH = 32
PAYLOAD_BYTES = 64 * 1024
FACILITY = rrm.Facility(
    facility_id="MX-IN", name="Planta", owner="Grupo", country=rrm.Party.MX
)
CLAIM = rrm.Claim(basis="annex_23a_legislation", sector_category="manufacturing")
_refs = itertools.count()


def open_cmd(**changes: Any) -> rrm.OpenCase:
    fields: dict[str, Any] = {
        "workflow": "usmca-31a",
        "initiation": "request",
        "complainant": "US",
        "respondent": "MX",
        "facility": FACILITY,
        "claim": CLAIM,
        "external_ref": f"IN-{next(_refs)}",
        "actor": "officer:ana",
        "role": "ustr",
        "officers": (rrm.Officer(officer_id="ana", role="ustr"),),
    }
    fields.update(changes)
    return rrm.OpenCase(**fields)


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


# -- the oracle -------------------------------------------------------------------


def depth_of(value: Any) -> int:
    """Levels of dicts and lists (recursive: the oracle only sees modest depths)."""
    if isinstance(value, dict):
        return 1 + max((depth_of(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth_of(v) for v in value), default=0)
    return 0


def has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(has_nul(k) or has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(has_nul(v) for v in value)
    return False


def compact_size(value: Any) -> int:
    return len(json.dumps(value, sort_keys=True, ensure_ascii=False).encode("utf-8"))


# -- strategies -------------------------------------------------------------------

leaf_text = st.one_of(
    st.text(alphabet="abc é\x00", max_size=6),
    st.sampled_from(["", "ok", "a\x00", "\x00", "[[{", '"]}']),
)
leaves = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), leaf_text)
keys = st.one_of(st.sampled_from(["a", "b", "k\x00", "[", "\x00"]), leaf_text)


@st.composite
def nested(draw: Any) -> Any:
    """A value nested 0 to 120 levels (biased near the limit), dicts and lists mixed."""
    depth = draw(
        st.one_of(st.integers(0, 40), st.integers(28, 36), st.integers(0, 120))
    )
    value = draw(leaves)
    for _ in range(depth):
        if draw(st.booleans()):
            siblings = draw(st.dictionaries(keys, leaves, max_size=2))
            value = {**siblings, draw(keys): value}
        else:
            value = [*draw(st.lists(leaves, max_size=2)), value]
    return value


# -- payloads through the engine (both backends) ---------------------------------


@FUZZ
@given(note=nested())
def test_nested_payloads(engine: rrm.CaseEngine, note: Any) -> None:
    """Accepted exactly when within 32 levels, free of NUL, and within 64 KiB."""
    payload = {"note": note}
    ok = (
        depth_of(payload) <= PAYLOAD_DEPTH
        and not has_nul(payload)
        and compact_size(payload) <= PAYLOAD_BYTES
    )
    cmd = open_cmd(payload=payload)
    case, refusal = attempt(lambda: engine.open_case(cmd))
    if refusal is not None:
        assert not ok, f"refused within the limits: {refusal}"
        assert isinstance(refusal, rrm.InvalidInput)
        assert refusal.field == "payload"
        assert absent(engine, cmd.external_ref)
        return
    assert ok, "accepted past a limit"
    assert engine.history(case.case_id)[0].payload == payload
    assert engine.verify(case.case_id).ok


@FUZZ
@given(
    size=st.one_of(
        st.integers(PAYLOAD_BYTES - 40, PAYLOAD_BYTES + 40),
        st.integers(0, 4 * PAYLOAD_BYTES),
    ),
    wide=st.booleans(),
)
def test_payload_sizes(engine: rrm.CaseEngine, size: int, wide: bool) -> None:
    """Around the size limit, in one-byte and two-byte characters."""
    text = "é" * (size // 2) if wide else "x" * size
    payload = {"note": text}
    cmd = open_cmd(payload=payload)
    _, refusal = attempt(lambda: engine.open_case(cmd))
    assert (refusal is not None) == (compact_size(payload) > PAYLOAD_BYTES), refusal
    if refusal is not None:
        assert "64 KiB" in str(refusal)
        assert absent(engine, cmd.external_ref)


@FUZZ
@given(data=st.data())
def test_nul_anywhere_in_a_fire(engine: rrm.CaseEngine, data: st.DataObject) -> None:
    """A NUL in any key or string of a fire's payload is refused; nothing written."""
    case = engine.open_case(open_cmd())
    payload = {"note": data.draw(nested().filter(lambda v: depth_of(v) < 30))}
    cmd = rrm.FireEvent(
        case_id=case.case_id,
        event="respondent_agrees",
        actor="officer:mx",
        role="respondent",
        payload=payload,
    )
    _, refusal = attempt(lambda: engine.fire(cmd))
    assert (refusal is not None) == has_nul(payload), refusal
    if refusal is not None:
        assert "NUL character" in str(refusal)
        assert engine.get(case.case_id).version == 1
        assert len(engine.history(case.case_id)) == 1


# -- JSON text: duplicate keys and depth, as every user input is read -------------


@st.composite
def json_with_keys(draw: Any) -> tuple[str, str | None]:
    """A JSON object text whose objects may repeat a key; and the first repeat."""
    pairs = draw(
        st.lists(
            st.tuples(st.sampled_from(["a", "b", "c", "é", "a b"]), st.integers(0, 9)),
            min_size=1,
            max_size=5,
        )
    )
    inner = draw(st.lists(st.sampled_from(["x", "y", "x"]), max_size=3))
    parts = [f"{json.dumps(k)}: {v}" for k, v in pairs]
    parts.append('"in": {' + ", ".join(f'"{k}": 1' for k in inner) + "}")
    parts = draw(st.permutations(parts))
    text = "{" + ", ".join(parts) + "}"
    seen: set[str] = set()
    first: str | None = None
    for key, _ in pairs:
        if key in seen and first is None:
            first = key
        seen.add(key)
    inner_dup = len(set(inner)) != len(inner)
    return text, first if first is not None else ("x" if inner_dup else None)


@FUZZ
@given(case=json_with_keys())
def test_duplicate_keys_in_json(case: tuple[str, str | None]) -> None:
    text, duplicate = case
    parsed, refusal = attempt(lambda: inputs.loads(text, field="f.json"))
    assert (refusal is not None) == (duplicate is not None), refusal
    if refusal is None:
        assert parsed == json.loads(text)
    else:
        assert "appears twice in one object" in str(refusal)


@FUZZ
@given(value=nested(), pad=st.sampled_from(["", " ", "\n  "]))
def test_depth_of_json_text(value: Any, pad: str) -> None:
    """The bracket count outside strings agrees with the parsed depth."""
    text = json.dumps(value, indent=1 if pad else None)
    assert inputs.nesting(text) == depth_of(value)


CASE_KEYS = ("workflow", "workflow_version", "initiation", "complainant",
             "respondent", "facility", "claim", "petitioners", "officers")  # fmt: skip


@pytest.fixture(name="seed_document", scope="module")
def _seed_document() -> dict[str, Any]:
    """An ``rrm-history/1`` document of one opened case, dated at the suite's start."""
    engine = rrm.bootstrap("sqlite://", clock=FakeClock(START), upgrade=True)
    case = engine.open_case(open_cmd(external_ref="SEED-1"))
    exported = export_case(engine, case.case_id)
    first = exported["history"][0]
    return {
        "format": "rrm-history/1",
        "case": {k: exported["case"][k] for k in CASE_KEYS},
        "events": [
            {
                "at": first["occurred_at"],
                "event": first["event"],
                "role": first["role"],
                "actor": first["actor"],
                "payload": {},
            }
        ],
    }


@FUZZ
@given(note=nested(), twice=st.booleans())
def test_import_documents(
    engine: rrm.CaseEngine, seed_document: dict[str, Any], note: Any, twice: bool
) -> None:
    """An import file read as the CLI and console read it, then imported: all or
    nothing, refused past the depth limit or for a key given twice."""
    doc = copy.deepcopy(seed_document)
    doc["case"]["external_ref"] = f"IMP-{next(_refs)}"
    doc["events"][0]["payload"] = {"note": note}
    text = json.dumps(doc)
    if twice:
        text = text.replace('"format": ', '"format": "x", "format": ', 1)
    ok = (
        not twice
        and depth_of(note) + 1 <= PAYLOAD_DEPTH
        and not has_nul(note)
        and compact_size({"note": note}) <= PAYLOAD_BYTES
    )
    _, refusal = attempt(
        lambda: import_cases(engine, [inputs.loads(text, field="f.json")])
    )
    assert (refusal is None) == ok, refusal
    if refusal is not None:
        assert isinstance(refusal, rrm.InvalidInput)
        assert absent(engine, doc["case"]["external_ref"])


# -- the command line ------------------------------------------------------------


@pytest.fixture(name="cli_db", scope="module")
def _cli_db(tmp_path_factory: pytest.TempPathFactory) -> Any:
    folder = tmp_path_factory.mktemp("cli-inputs")
    db = f"sqlite:///{folder / 'inputs.sqlite'}"
    with pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            if name.startswith("RRM_"):
                mp.delenv(name)
        mp.chdir(folder)
        assert call(["init", "--db", db])[0] == 0
        yield db, folder


def call(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


@FUZZ
@given(note=nested(), how=st.sampled_from(["payload", "set", "file"]))
def test_cli_inputs(cli_db: tuple[str, Path], note: Any, how: str) -> None:
    """``--payload``, ``--set`` and an import file: a result or one line, exit 1."""
    db, folder = cli_db
    text = json.dumps({"note": note})
    if how == "payload":
        argv = [
            "case", "open", "--db", db, "--workflow", "usmca-31a",
            "--initiation", "request", "--complainant", "US", "--respondent", "MX",
            "--facility-id", "MX-CLI", "--facility-name", "Planta", "--owner", "G",
            "--basis", "annex_23a_legislation", "--sector-category", "manufacturing",
            "--ref", f"CLI-{next(_refs)}", "--actor", "ana", "--role", "ustr",
            "--payload", text,
        ]  # fmt: skip
    elif how == "set":
        argv = [
            "case", "fire", "NOPE", "x", "--db", db, "--actor", "a", "--role", "r",
            "--set", "note=" + json.dumps(note),
        ]  # fmt: skip
    else:
        path = folder / "doc.json"
        path.write_text('{"format": "rrm-history/1", "events": [' + text + "]}")
        argv = ["case", "import", str(path), "--db", db]
    code, out, err = call(argv)
    assert code in {0, 1}, (code, err)
    assert "Traceback" not in out + err
    if code == 1:
        assert err.count("\n") == 1, err
    deep_or_nul = depth_of(note) + 1 > PAYLOAD_DEPTH or has_nul(note)
    if how == "payload":
        assert (code == 1) == deep_or_nul, err
    if deep_or_nul and how != "file":
        assert "levels" in err or "NUL" in err, err
