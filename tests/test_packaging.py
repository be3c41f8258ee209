"""The wheel installs exactly one top-level package, rrm, with its data inside it."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(name="wheel", scope="module")
def _wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    # No build isolation: the build backend comes from the test environment, so
    # building needs no network.
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "--wheel-dir",
            str(out),
            str(REPO),
        ],
        check=True,
    )
    return next(out.glob("usmca_rrm-*.whl"))


class TestWheel:
    def test_only_top_level_package_is_rrm(self, wheel):
        """Every importable file in the wheel lives under rrm/."""
        names = zipfile.ZipFile(wheel).namelist()
        tops = {
            n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")
        }
        assert tops == {"rrm"}

    def test_data_trees_ship_inside_rrm(self, wheel):
        """Workflows, calendars, the lock and migrations ship under rrm/_data; the OpenAPI document beside its module."""
        names = set(zipfile.ZipFile(wheel).namelist())
        for expected in (
            "rrm/_data/workflows/usmca-31a/v1.toml",
            "rrm/_data/workflows/usmca-31a-mx/v1.toml",
            "rrm/_data/workflows/usmca-31b/v1.toml",
            "rrm/_data/workflows/released.lock",
            "rrm/_data/workflows/calendars/mx-federal.toml",
            "rrm/_data/migrations/env.py",
            "rrm/_data/migrations/versions/0001_initial.py",
            "rrm/server/openapi.json",
            "rrm/py.typed",
        ):
            assert expected in names
        assert not any(n.startswith(("workflows/", "storage/")) for n in names)

    def test_installed_wheel_finds_its_data(self, wheel, tmp_path):
        """Installed from the wheel, rrm loads workflows and migrations from inside itself."""
        site = tmp_path / "site"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--no-deps",
                "--no-index",
                "--quiet",
                "--target",
                str(site),
                str(wheel),
            ],
            check=True,
        )
        code = (
            "import rrm, rrm._resources as r;"
            "w = rrm.load_workflows();"
            "print(rrm.__file__); print(r.workflows_dir()); print(r.migrations_dir());"
            "print(len(w.ids()))"
        )
        out = subprocess.run(
            [sys.executable, "-c", code],
            check=True,
            capture_output=True,
            text=True,
            env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
            cwd=tmp_path,
        ).stdout.split()
        assert all(line.startswith(str(site)) for line in out[:3])
        assert out[3] == "3"
