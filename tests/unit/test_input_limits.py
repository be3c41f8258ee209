"""Bounded input (issue #12, item 4); NUL and keys given twice (issue #13, item 2).

The JSON reader (``rrm.service.inputs``), the payload check and the TOML reader:
each limit refused with ``InvalidInput`` (``InvalidWorkflow`` for TOML) naming the
input, the limit and what was found, and no ``RecursionError`` however deep the
input. The checks of references and names are in ``test_text_checks.py``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

import rrm
from rrm.server.console.manage import _import_one
from rrm.service import inputs
from rrm.service import validation as v
from rrm.workflow.loader import (
    MAX_TOML_BYTES,
    MAX_TOML_DEPTH,
    read_toml,
    toml_nesting,
)

if TYPE_CHECKING:
    from pathlib import Path

DEEP = 5_000


def deep_json(depth: int, open_: str = "[", close: str = "]") -> str:
    return open_ * depth + close * depth


def nested_dict(depth: int) -> dict[str, Any]:
    """A payload nested *depth* levels (the payload itself is level 1)."""
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


# -- JSON text --------------------------------------------------------------------


class TestNesting:
    @pytest.mark.parametrize(
        ("text", "depth"),
        [
            ("", 0),
            ("1", 0),
            ("{}", 1),
            ('{"a": [1, {"b": 2}]}', 3),
            ('{"a": "[[[[{{{{"}', 1),
            ('["\\"[[[", "\\\\", [[]]]', 3),
            ('"unterminated [[[[', 0),
            (deep_json(DEEP), DEEP),
            (deep_json(DEEP, '{"a":', "}"), DEEP),
        ],
    )
    def test_counts_brackets_outside_strings(self, text: str, depth: int) -> None:
        assert inputs.nesting(text) == depth

    def test_adversarial_escapes_scan_in_linear_time(self) -> None:
        """Quotes and backslashes that would make a naive regex backtrack."""
        for text in ('"\\"' * 400_000, '"' + "\\" * 1_000_000, '"a",' * 300_000):
            assert inputs.nesting(text) == 0


class TestLoads:
    def test_deep_json_is_refused_before_parsing(self) -> None:
        with pytest.raises(rrm.InvalidInput) as info:
            inputs.loads(deep_json(DEEP), field="--payload", max_depth=32)
        assert info.value.field == "--payload"
        assert str(info.value) == (
            "--payload: is nested 5,000 levels deep; at most 32 levels of objects "
            "and lists are accepted"
        )

    def test_at_the_limit_parses(self) -> None:
        assert inputs.loads(deep_json(32), field="x", max_depth=32) is not None
        with pytest.raises(rrm.InvalidInput, match="33 levels"):
            inputs.loads(deep_json(33), field="x", max_depth=32)

    def test_too_large_is_refused_before_parsing(self) -> None:
        text = json.dumps({"note": "x" * 70_000})
        with pytest.raises(rrm.InvalidInput) as info:
            inputs.loads(text, field="--payload", max_bytes=inputs.MAX_PAYLOAD_BYTES)
        assert info.value.reason.startswith("is 70,012 bytes;")
        assert "65,536 bytes (64 KiB)" in info.value.reason

    def test_size_counts_utf8_bytes(self) -> None:
        text = json.dumps({"n": "é" * 40_000}, ensure_ascii=False)  # 80 kB
        with pytest.raises(rrm.InvalidInput, match="64 KiB"):
            inputs.loads(text, field="f", max_bytes=inputs.MAX_PAYLOAD_BYTES)

    @pytest.mark.parametrize(
        "text",
        [
            '{"a": 1, "a": 2}',
            '{"b": {"a": 1, "a": 1}}',
            '[{"x": 0}, {"a": 1, "c": 2, "a": 3}]',
        ],
    )
    def test_duplicate_keys_are_refused_by_name(self, text: str) -> None:
        with pytest.raises(rrm.InvalidInput) as info:
            inputs.loads(text, field="case.json")
        assert info.value.reason == (
            "the key 'a' appears twice in one object; give each key once"
        )

    def test_same_key_in_two_objects_is_fine(self) -> None:
        assert inputs.loads('[{"a": 1}, {"a": 2}]', field="f") == [{"a": 1}, {"a": 2}]

    def test_not_json_is_its_own_kind(self) -> None:
        with pytest.raises(inputs.NotJSON) as info:
            inputs.loads(b'{"a": ', field="x.json", what="the file")
        assert isinstance(info.value, rrm.InvalidInput)
        assert info.value.reason.startswith("the file is not valid JSON")

    def test_bytes_that_are_not_utf8(self) -> None:
        with pytest.raises(inputs.NotJSON, match="not UTF-8"):
            inputs.loads(b'{"a": "\xff"}', field="body")


# -- Python data ------------------------------------------------------------------


class TestPythonData:
    def test_deep_dict_is_refused_without_recursion(self) -> None:
        with pytest.raises(rrm.InvalidInput, match="more than 32 levels"):
            inputs.check_depth("payload", nested_dict(100_000), max_depth=32)

    def test_a_list_that_holds_itself(self) -> None:
        looped: list[Any] = []
        looped.append(looped)
        with pytest.raises(rrm.InvalidInput, match="nested more than"):
            inputs.check_tree("payload", {"a": looped}, max_depth=32)

    def test_shared_parts_are_walked_once(self) -> None:
        """A part shared 2**40 ways is not walked once per path."""
        shared: Any = ["leaf"]
        for _ in range(40):
            shared = [shared, shared]
        inputs.check_tree("payload", {"a": shared}, max_depth=64)

    @pytest.mark.parametrize(
        ("payload", "where"),
        [
            ({"note": "a\x00b"}, "the text at note"),
            ({"a": [1, {"b": ["ok", "\x00"]}]}, "the text at a[1].b[1]"),
            ({"a": {"k\x00": 1}}, "a key inside a"),
            ({"a\x00": 1}, "a key inside (top)"),
        ],
    )
    def test_nul_anywhere_in_a_payload(self, payload: Any, where: str) -> None:
        with pytest.raises(rrm.InvalidInput) as info:
            v.check_payload(payload)
        assert info.value.field == "payload"
        assert where in info.value.reason
        assert "NUL" in info.value.reason

    def test_keys_must_be_text_at_every_level(self) -> None:
        with pytest.raises(rrm.InvalidInput, match="key of type int"):
            v.check_payload({"a": {"b": {1: "x"}}})


class TestCheckPayload:
    def test_depth_limit(self) -> None:
        v.check_payload(nested_dict(inputs.MAX_PAYLOAD_DEPTH))
        with pytest.raises(rrm.InvalidInput) as info:
            v.check_payload(nested_dict(inputs.MAX_PAYLOAD_DEPTH + 1))
        assert info.value.field == "payload"
        assert "at most 32 levels" in info.value.reason

    def test_five_thousand_levels(self) -> None:
        with pytest.raises(rrm.InvalidInput, match="nested more than 32"):
            v.check_payload(nested_dict(DEEP))

    def test_size_limit(self) -> None:
        room = inputs.MAX_PAYLOAD_BYTES - len('{"note": ""}')
        v.check_payload({"note": "x" * room})
        with pytest.raises(rrm.InvalidInput) as info:
            v.check_payload({"note": "x" * (room + 1)})
        assert info.value.reason == (
            "is 65,537 bytes as JSON; event details may take at most 65,536 bytes "
            "(64 KiB)"
        )


# -- TOML -------------------------------------------------------------------------


class TestToml:
    @pytest.mark.parametrize(
        ("text", "depth"),
        [
            ('a = "[[["', 0),
            ("a = '[[['", 0),
            ('a = """\n[[[\n"""', 0),
            ("a = '''[[['''", 0),
            ("# [[[\na = 1", 0),
            ('a = "x\\"[["', 0),
            ('a = """x\\"""[[["""', 0),
            ('a = ["]", [1]]', 2),
            ('[[states]]\nname = "x"', 2),
        ],
    )
    def test_counts_brackets_outside_strings_and_comments(
        self, text: str, depth: int
    ) -> None:
        assert toml_nesting(text) == depth

    @pytest.mark.parametrize(
        "body",
        [
            "x = " + deep_json(50_000),
            "x = " + "{a = " * 50_000 + "1" + "}" * 50_000,
        ],
        ids=["arrays", "inline-tables"],
    )
    def test_fifty_thousand_levels(self, tmp_path: Path, body: str) -> None:
        path = tmp_path / "deep.toml"
        path.write_text(body + "\n", encoding="utf-8")
        with pytest.raises(rrm.InvalidWorkflow) as info:
            read_toml(path)
        assert info.value.file == str(path)
        assert info.value.reason == (
            "is nested 50,000 levels deep; at most 64 levels of tables, arrays and "
            "inline tables are accepted"
        )

    def test_dotted_keys_nest_too(self, tmp_path: Path) -> None:
        path = tmp_path / "dotted.toml"
        path.write_text("x." + ".".join(["a"] * 5_000) + " = 1\n", encoding="utf-8")
        with pytest.raises(rrm.InvalidWorkflow, match="more than 64 levels"):
            read_toml(path)

    def test_at_the_limit_reads(self, tmp_path: Path) -> None:
        path = tmp_path / "edge.toml"
        path.write_text("x = " + deep_json(MAX_TOML_DEPTH - 1) + "\n", "utf-8")
        data, _ = read_toml(path)
        assert isinstance(data["x"], list)

    def test_size_limit(self, tmp_path: Path) -> None:
        path = tmp_path / "big.toml"
        path.write_text('x = "' + "a" * MAX_TOML_BYTES + '"\n', encoding="utf-8")
        with pytest.raises(rrm.InvalidWorkflow, match=r"larger than 1,048,576 bytes"):
            read_toml(path)


# -- the console's import upload ---------------------------------------------------


class TestConsoleUpload:
    """The console reads each uploaded file with the same reader (one row each)."""

    @pytest.fixture(name="engine")
    def _engine(self) -> rrm.CaseEngine:
        return rrm.bootstrap("sqlite://", upgrade=True)

    def row(self, engine: rrm.CaseEngine, data: bytes) -> dict[str, Any]:
        found: dict[str, Any] = _import_one(engine, "up.json", data, str)
        return found

    def test_deep_file(self, engine: rrm.CaseEngine) -> None:
        row = self.row(engine, ('{"case": ' + deep_json(DEEP) + "}").encode())
        assert row["error"] == (
            "up.json: the file is nested 5,001 levels deep; at most 40 levels of "
            "objects and lists are accepted"
        )
        assert engine.find() == []

    def test_duplicate_key(self, engine: rrm.CaseEngine) -> None:
        row = self.row(engine, b'{"format": "rrm-case/1", "format": "x"}')
        assert "the key 'format' appears twice" in row["error"]

    def test_not_json_keeps_its_translated_message(
        self, engine: rrm.CaseEngine
    ) -> None:
        assert self.row(engine, b"{not json")["error"] == "The file is not JSON."
