"""Debian's Chromium driven by Playwright for Python, and what a page did in it.

Never ``playwright install``: the browser is ``/usr/bin/chromium`` (``make test`` installs
Debian's package). The flags are those that let OHIF draw headless, through WebGL on
SwiftShader, without Chromium calling home (OHIF-NOTES "Testing it headless").
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from playwright.sync_api import Browser, ConsoleMessage, Page, Request, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--no-sandbox",
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
    "--ignore-gpu-blocklist",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

# Counts the non-dark pixels of the fullest viewport canvas (cornerstone3D's, not the
# thumbnails'). A WebGL canvas has no 2-D context of its own, so each is copied first.
LIT_PIXELS = """() => {
  let best = 0;
  for (const canvas of document.querySelectorAll('canvas.cornerstone-canvas')) {
    if (canvas.width * canvas.height === 0) continue;
    const copy = document.createElement('canvas');
    copy.width = canvas.width;
    copy.height = canvas.height;
    const ctx = copy.getContext('2d');
    ctx.drawImage(canvas, 0, 0);
    const data = ctx.getImageData(0, 0, copy.width, copy.height).data;
    let lit = 0;
    for (let i = 0; i < data.length; i += 4) {
      if (data[i] + data[i + 1] + data[i + 2] > 60) lit++;
    }
    best = Math.max(best, lit);
  }
  return best;
}"""


@contextmanager
def chromium() -> Iterator[Browser]:
    """One headless Chromium for a test session."""
    if not CHROMIUM.exists():
        raise RuntimeError(f"{CHROMIUM} is missing: `make test` installs Debian's chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=FLAGS
        )
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Watch:
    """Every request a page made and every console error it logged."""

    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def attach(self, page: Page) -> Watch:
        page.on("request", self._request)
        page.on("requestfailed", self._failed)
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.errors.append(f"uncaught: {exc}"))
        return self

    def _request(self, request: Request) -> None:
        self.requests.append(request.url)

    def _failed(self, request: Request) -> None:
        self.failed.append(f"{request.url}: {request.failure}")

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"{message.text} ({message.location.get('url', '')})")

    def hosts(self) -> set[str]:
        """Where requests went; data: and blob: URLs go nowhere."""
        return {
            urlsplit(url).netloc for url in self.requests if not url.startswith(("data:", "blob:"))
        }


def wait_for_image(
    page: Page, timeout: float = 60.0, at_least: int = 1000, watch: Watch | None = None
) -> float:
    """Seconds until a viewport canvas of the page shows ``at_least`` non-dark pixels;
    with a ``watch``, the first console error ends the wait at once."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if page.evaluate(LIT_PIXELS) >= at_least:
            return time.monotonic() - start
        if watch is not None and watch.errors:
            raise AssertionError(f"the page logged errors: {watch.errors}")
        page.wait_for_timeout(50)
    raise TimeoutError(f"no image drawn in {timeout:.0f} s")


def screenshot(page: Page, name: str) -> Path:
    """Saved under test-artifacts/ (kept by CI)."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path
