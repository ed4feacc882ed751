"""Headless Chromium for the studio's browser tests: Debian's /usr/bin/chromium via Playwright.

Tests skip with a reason when either is missing (``scripts/install_browser_test_deps.sh``
installs both). Playwright's own browser download is never used.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# Debian's Chromium; HISTOSYNTH_CHROMIUM names another build of it.
CHROMIUM = Path(os.environ.get("HISTOSYNTH_CHROMIUM", "/usr/bin/chromium"))
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


def need_browser() -> None:
    """Skip the calling test unless Chromium and Playwright are installed."""
    if not CHROMIUM.is_file():
        pytest.skip(f"no {CHROMIUM} (run scripts/install_browser_test_deps.sh)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("playwright is not installed (run scripts/install_browser_test_deps.sh)")


@contextlib.contextmanager
def chromium() -> Iterator[object]:
    """A headless Chromium browser (Playwright ``Browser``), closed on exit."""
    need_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


def open_page(browser, url: str, errors: list[str]):
    """A new page at ``url`` that records console errors and failed requests in ``errors``."""
    page = browser.new_page(viewport={"width": 1500, "height": 1000})
    page.set_default_timeout(20_000)
    page.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url}"))
    page.goto(url)
    page.wait_for_selector("body[data-ready='1']")
    return page


def paint_two_regions(page, first: int, second: int) -> None:
    """Fill the whole map with class ``first``, then paint a thick band of ``second`` on the right."""
    page.click(f".brush[data-class='{first}']")
    page.click("#tool-fill")
    box = page.locator("#canvas").bounding_box()
    page.mouse.click(box["x"] + 5, box["y"] + 5)
    page.click(f".brush[data-class='{second}']")
    page.click("#tool-brush")
    size = int(page.get_attribute("#canvas", "width"))
    page.fill("#brush-size", str(max(1, size // 5)))
    page.dispatch_event("#brush-size", "input")
    x = box["x"] + box["width"] * 0.8
    page.mouse.move(x, box["y"] + 2)
    page.mouse.down()
    for f in (0.25, 0.5, 0.75, 0.99):
        page.mouse.move(x, box["y"] + box["height"] * f, steps=4)
    page.mouse.up()


def pick_first_crop(page, class_id: int) -> str:
    """Click the first bank thumbnail of a class; returns its crop id."""
    thumb = page.locator(f"#thumbs-{class_id} .thumb").first
    thumb.click()
    page.wait_for_selector(f"#picked-{class_id} img")
    return thumb.get_attribute("data-crop")
