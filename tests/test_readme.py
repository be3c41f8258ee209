"""The README's embedding example runs as written."""

from __future__ import annotations

import os
import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_embedding_example_runs(tmp_path: Path, capsys) -> None:
    """The python block in the README executes and prints the explained deadline."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.DOTALL)
    assert len(blocks) == 1
    cwd = Path.cwd()
    os.chdir(tmp_path)
    try:
        exec(compile(blocks[0], "README.md", "exec"), {})
    finally:
        os.chdir(cwd)
    out = capsys.readouterr().out
    assert (
        "10 calendar days after the request for review of 2025-01-06: 2025-01-16" in out
    )
    assert (tmp_path / "cases.sqlite").exists()
