"""Playwright (sync API) over Debian's Chromium, screenshots, and axe-core checks.

The console's browser tests drive the Chromium that Debian packages
(``/usr/bin/chromium``, or the path in ``RRM_CHROMIUM``), not a browser downloaded
by Playwright. ``require_chromium()`` skips a test, with the reason, only when that
executable is missing.

The console answers with a strict Content-Security-Policy (no inline script), and
axe-core is injected as an inline ``<script>``: a page checked with ``axe()`` must
come from a context made with ``bypass_csp=True``, which ``new_context()`` does.
Pass ``bypass_csp=False`` to ``new_context()`` to test the policy itself.

Screenshots go to ``tests/artifacts/screenshots/`` (git-ignored); ``RRM_ARTIFACTS``
names another artefacts folder, whose ``screenshots/`` subfolder is then used.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from playwright.sync_api import sync_playwright

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from playwright.sync_api import Browser, BrowserContext, Page

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
AXE = HERE / "vendor" / "axe.min.js"
CHROMIUM = "/usr/bin/chromium"
WCAG_AA = ("wcag2a", "wcag2aa", "wcag21a", "wcag21aa")
VIEWPORT = {"width": 1280, "height": 900}
SERIOUS = ("serious", "critical")

_RUN_AXE = """async (tags) => {
  const results = await axe.run(document, {runOnly: {type: "tag", values: tags}});
  return results.violations;
}"""


def chromium_path() -> str:
    """Return the Chromium executable to drive: ``RRM_CHROMIUM`` or Debian's."""
    return os.environ.get("RRM_CHROMIUM") or CHROMIUM


def require_chromium() -> str:
    """Return the Chromium executable, or skip the test when it is not installed."""
    path = chromium_path()
    if not Path(path).is_file():
        pytest.skip(
            f"Chromium not found at {path}: install Debian's chromium package "
            "(apt-get install chromium) or set RRM_CHROMIUM"
        )
    return path


@contextlib.contextmanager
def launch(*, headless: bool = True) -> Iterator[Browser]:
    """Launch Chromium through Playwright for the ``with`` block.

    Chromium's sandbox cannot run as root, so ``--no-sandbox`` is passed then only.
    """
    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium_path(), headless=headless, args=args
        )
        try:
            yield browser
        finally:
            browser.close()


def new_context(
    browser: Browser, *, locale: str = "en", **options: Any
) -> BrowserContext:
    """Return a new browser context fit for ``axe()``.

    It bypasses the page's Content-Security-Policy (axe is injected inline), speaks
    *locale* and has a 1280x900 viewport; *options* go to ``browser.new_context``
    and win over those defaults.
    """
    settings: dict[str, Any] = {
        "bypass_csp": True,
        "locale": locale,
        "viewport": dict(VIEWPORT),
    }
    return browser.new_context(**(settings | options))


def artifacts_dir() -> Path:
    """Return the artefacts folder: ``RRM_ARTIFACTS`` or ``tests/artifacts``."""
    named = os.environ.get("RRM_ARTIFACTS")
    return Path(named) if named else REPO / "tests" / "artifacts"


def screenshot(page: Page, name: str) -> Path:
    """Save a full-page PNG of *page* as ``<artefacts>/screenshots/<name>.png``.

    *name* is made safe for a file name; the folder is created if missing.
    """
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", name.removesuffix(".png")).strip("-.")
    folder = artifacts_dir() / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem or 'page'}.png"
    page.screenshot(path=path, full_page=True)
    return path


def axe(page: Page, *, tags: Iterable[str] = WCAG_AA) -> list[dict[str, Any]]:
    """Run axe-core on *page* for the rules of *tags*; return its violations.

    The page's context must bypass CSP (see ``new_context``). Each violation is
    axe's own object: ``id``, ``impact``, ``help``, ``helpUrl``, ``nodes`` (each
    with ``target`` selectors), and so on.
    """
    page.add_script_tag(path=AXE)
    violations: list[dict[str, Any]] = page.evaluate(_RUN_AXE, list(tags))
    return violations


def serious(violations: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return the violations whose impact is serious or critical."""
    return [v for v in violations if v.get("impact") in SERIOUS]


def format_violations(violations: Iterable[dict[str, Any]], *, targets: int = 3) -> str:
    """Return a readable account of *violations*, for an assertion message.

    One line per rule (id, impact, help, link) and the first *targets* selectors of
    the elements at fault.
    """
    lines = []
    for v in violations:
        nodes = v.get("nodes", [])
        lines.append(
            f"- {v.get('id')} ({v.get('impact')}): {v.get('help')}"
            f" [{len(nodes)} element(s)] {v.get('helpUrl', '')}".rstrip()
        )
        for node in nodes[:targets]:
            target = node.get("target", [])
            lines.append("    " + " >> ".join(str(t) for t in target))
        if len(nodes) > targets:
            lines.append(f"    ... and {len(nodes) - targets} more")
    return "\n".join(lines) if lines else "no violations"
