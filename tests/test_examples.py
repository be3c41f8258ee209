"""Every script in examples/ runs to completion."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SCRIPTS = sorted(p for p in EXAMPLES.rglob("*.py"))


@pytest.mark.parametrize("script", SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_example_runs(script: Path, tmp_path: Path) -> None:
    """The example exits 0 and prints what it promises."""
    args = [sys.executable, str(script)]
    if script.name == "review_scenario.py":
        args.append(str(tmp_path / "out"))
    done = subprocess.run(
        args, capture_output=True, text=True, cwd=tmp_path, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()
    if script.name == "access_policy.py":
        assert "refused: 'mallory' may not record" in done.stdout
        assert "respondent_agrees by luis as respondent, proven by host-sso:luis" in (
            done.stdout
        )
    if script.name == "review_scenario.py":
        assert "chain intact: True" in done.stdout
        assert "[NOMINAL]" in done.stdout
        assert (tmp_path / "out" / "rrm.sqlite").exists()
