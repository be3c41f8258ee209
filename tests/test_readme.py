"""The README's embedding example runs as written."""

from __future__ import annotations

import json
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
        "10 calendar days after the request for review (sent; no receipt date "
        "recorded) of 2025-01-06: 2025-01-16" in out
    )
    assert (tmp_path / "cases.sqlite").exists()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_api_walkthrough_runs(tmp_path: Path) -> None:
    """The README's curl walkthrough runs against a live rrm serve, as written."""
    import shutil
    import subprocess
    import sys

    if shutil.which("curl") is None:  # pragma: no cover - Debian ships curl
        import pytest

        pytest.skip("curl is not installed")
    text = README.read_text()
    block = re.search(r"<!-- api-walkthrough -->\n```sh\n(.*?)```", text, re.DOTALL)
    assert block is not None
    port = str(_free_port())
    script = block.group(1).replace("8000", port)
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    env.pop("RRM_DB", None)
    wrapped = (
        "set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null; wait' EXIT\n" + script
    )
    done = subprocess.run(
        ["bash", "-c", wrapped],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.count("rrm_") >= 1  # the first-start admin token
    assert '"state":"respondent_reviewing"' in out
    # curl prints the bodies back to back; the history is the last one.
    history = json.loads(out[out.rindex('{"case_id":') :])
    last = history["entries"][-1]
    assert (last["event"], last["actor"], last["role"]) == (
        "respondent_agrees",
        "luis",
        "respondent",
    )
    assert last["via"].startswith("token:")
