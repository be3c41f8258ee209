"""Vendored third-party files are exactly what their records say they are.

Each ``VENDORED.json`` lists files copied unmodified from npm tarballs: the package,
version, tarball and its integrity, and the SHA-256 of the file as committed, with
its licence files. A vendored file changed without its record fails here.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent.parent
RECORDS = (
    REPO / "rrm" / "server" / "console" / "static" / "VENDORED.json",
    REPO / "tests" / "console" / "vendor" / "VENDORED.json",
)
FIELDS = {
    "file",
    "package",
    "version",
    "tarball",
    "integrity",
    "path_in_tarball",
    "sha256",
    "licence",
    "licence_files",
}


def _entries() -> list[Any]:
    return [
        pytest.param(record, entry, id=f"{entry['package']}/{entry['file']}")
        for record in RECORDS
        for entry in json.loads(record.read_text(encoding="utf-8"))["files"]
    ]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_both_records_exist() -> None:
    assert [r.relative_to(REPO).as_posix() for r in RECORDS if r.is_file()] == [
        "rrm/server/console/static/VENDORED.json",
        "tests/console/vendor/VENDORED.json",
    ]


@pytest.mark.parametrize(("record", "entry"), _entries())
def test_a_vendored_file_matches_its_record(
    record: Path, entry: dict[str, Any]
) -> None:
    assert entry.keys() >= FIELDS
    path = record.parent / entry["file"]
    assert path.is_file(), f"{path} is recorded but missing"
    assert _sha256(path) == entry["sha256"], (
        f"{path.relative_to(REPO)} differs from the {entry['package']} "
        f"{entry['version']} it was copied from: vendor it again and update "
        f"{record.relative_to(REPO)}"
    )
    name, version = entry["package"], entry["version"]
    assert entry["tarball"] == (
        f"https://registry.npmjs.org/{name}/-/{name.rsplit('/', 1)[-1]}-{version}.tgz"
    )
    assert re.fullmatch(r"sha512-[A-Za-z0-9+/]{86}==", entry["integrity"])
    assert entry["path_in_tarball"].startswith("package/")
    assert version in path.read_text(encoding="utf-8"), "version not in the file"
    assert entry["licence"]


@pytest.mark.parametrize(("record", "entry"), _entries())
def test_a_vendored_file_has_its_licence(record: Path, entry: dict[str, Any]) -> None:
    assert entry["licence_files"], f"{entry['file']} names no licence file"
    for licence in entry["licence_files"]:
        path = record.parent / licence["file"]
        assert path.is_file(), f"licence file {path} is missing"
        assert path.stat().st_size > 0
        assert _sha256(path) == licence["sha256"], f"{path} changed"


def test_nothing_unrecorded_is_vendored() -> None:
    for record in RECORDS:
        entries = json.loads(record.read_text(encoding="utf-8"))["files"]
        named = {e["file"] for e in entries}
        named |= {lic["file"] for e in entries for lic in e["licence_files"]}
        here = {
            p.name
            for p in record.parent.iterdir()
            if p.is_file() and p.name != record.name
        }
        # The console's own files (htmx's folder) are not vendored: only .min.js
        # files must have records.
        assert {n for n in here if n.endswith(".min.js")} <= named, record
