"""The browser helpers work: Debian's Chromium runs, axe-core judges, screenshots land.

A stdlib server on loopback serves a good page and a bad one (an image without a
text alternative) under a strict Content-Security-Policy like the console's.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from playwright.sync_api import Error as PlaywrightError

from . import browser as b

if TYPE_CHECKING:
    from collections.abc import Iterator

    from playwright.sync_api import Browser

CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'"
SEAL = (
    b'<svg xmlns="http://www.w3.org/2000/svg" width="40" height="40">'
    b'<circle cx="20" cy="20" r="18" fill="#1a4480"/></svg>'
)
PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>{title}</title></head>
<body>
<header><p>Rapid Response Labor Mechanism</p></header>
<main>
<h1>{title}</h1>
{image}
<p>Three cases are open.</p>
</main>
</body>
</html>
"""
PAGES = {
    "/good": PAGE.format(title="Cases", image='<img src="/seal.svg" alt="Seal">'),
    "/bad": PAGE.format(title="Cases", image='<img src="/seal.svg">'),
}


class _Site(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path in PAGES:
            body, kind = PAGES[self.path].encode(), "text/html; charset=utf-8"
        elif self.path == "/seal.svg":
            body, kind = SEAL, "image/svg+xml"
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Security-Policy", CSP)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Keep the test output quiet."""


@pytest.fixture(name="site", scope="module")
def _site() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Site)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture(name="chromium", scope="module")
def _chromium() -> Iterator[Browser]:
    b.require_chromium()
    with b.launch() as found:
        yield found


def test_chromium_is_debians_unless_told(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RRM_CHROMIUM", raising=False)
    assert b.chromium_path() == "/usr/bin/chromium"
    monkeypatch.setenv("RRM_CHROMIUM", "/opt/chromium/chrome")
    assert b.chromium_path() == "/opt/chromium/chrome"


def test_axe_finds_an_image_without_alt(chromium: Browser, site: str) -> None:
    with b.new_context(chromium) as context:
        page = context.new_page()
        page.goto(f"{site}/bad")
        violations = b.axe(page)
    assert [v["id"] for v in violations] == ["image-alt"]
    found = b.serious(violations)
    assert [v["impact"] for v in found] == ["critical"]
    message = b.format_violations(found)
    assert message.startswith("- image-alt (critical): Images must have alternative")
    assert "\n    img" in message


def test_axe_passes_a_good_page(chromium: Browser, site: str) -> None:
    with b.new_context(chromium) as context:
        page = context.new_page()
        page.goto(f"{site}/good")
        violations = b.axe(page)
        path = b.screenshot(page, "smoke good page")
    assert b.serious(violations) == [], b.format_violations(violations)
    assert path == b.artifacts_dir() / "screenshots" / "smoke-good-page.png"
    assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_the_context_has_the_consoles_settings(chromium: Browser, site: str) -> None:
    with b.new_context(chromium, locale="es-MX") as context:
        page = context.new_page()
        page.goto(f"{site}/good")
        assert page.evaluate("navigator.language") == "es-MX"
        assert page.viewport_size == {"width": 1280, "height": 900}


def test_the_pages_policy_blocks_axe_without_bypass(
    chromium: Browser, site: str
) -> None:
    """Why new_context() bypasses CSP: the policy refuses the injected script."""
    with b.new_context(chromium, bypass_csp=False) as context:
        page = context.new_page()
        page.goto(f"{site}/good")
        with pytest.raises(PlaywrightError, match="Content Security Policy"):
            b.axe(page)


def test_screenshots_go_where_rrm_artifacts_says(
    chromium: Browser, site: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RRM_ARTIFACTS", str(tmp_path / "out"))
    with b.new_context(chromium) as context:
        page = context.new_page()
        page.goto(f"{site}/bad")
        path = b.screenshot(page, "../bad page.png")
    assert path == tmp_path / "out" / "screenshots" / "bad-page.png"
    assert path.read_bytes().startswith(b"\x89PNG")


def test_the_formatter_names_rules_and_targets() -> None:
    violations: list[dict[str, Any]] = [
        {
            "id": "color-contrast",
            "impact": "serious",
            "help": "Elements must meet minimum color contrast ratio thresholds",
            "helpUrl": "https://dequeuniversity.com/rules/axe/4.14/color-contrast",
            "nodes": [{"target": [f"#row-{i} > td"]} for i in range(5)],
        },
        {"id": "region", "impact": "moderate", "help": "Landmarks", "nodes": []},
    ]
    assert [v["id"] for v in b.serious(violations)] == ["color-contrast"]
    assert b.format_violations(violations, targets=2).splitlines() == [
        (
            "- color-contrast (serious): Elements must meet minimum color contrast"
            " ratio thresholds [5 element(s)]"
            " https://dequeuniversity.com/rules/axe/4.14/color-contrast"
        ),
        "    #row-0 > td",
        "    #row-1 > td",
        "    ... and 3 more",
        "- region (moderate): Landmarks [0 element(s)]",
    ]
    assert b.format_violations([]) == "no violations"
