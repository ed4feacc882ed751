"""Screenshot of the studio generating with the demo's model (``docs/img/studio.png``).

Starts ``histosynth studio`` on a finished ``make demo`` folder as a user would, drives the page
in Debian's headless Chromium through Playwright (``scripts/install_browser_test_deps.sh``):
loads a held-out map, picks the first bank crop of each of its tissue classes, generates with
the demo's sampler settings, and saves the page once the image is there.

Usage::

    python scripts/studio_screenshot.py histosynth-demo [--out docs/img/studio.png] [--map 5]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.studio.browser: the browser tests' launcher and page helpers

from tests.studio.browser import chromium, open_page, pick_first_crop  # noqa: E402


def start_studio(demo: Path, port: int) -> tuple[subprocess.Popen, str]:
    """``histosynth studio`` on the demo's model, bank and held-out maps; returns it and its URL."""
    cmd = [sys.executable, "-m", "histosynth", "studio", "--checkpoint", str(demo / "train" / "tokens"),
           "--crop-bank", str(demo / "crop-bank"), "--maps", str(demo / "dataset"), "--maps-split", "test",
           "--port", str(port)]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # the URL line must not sit in a pipe's buffer
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    deadline = time.monotonic() + 600  # loading can take minutes on a busy machine
    assert proc.stdout is not None
    for line in proc.stdout:
        found = re.search(r"open (http://\S+)", line)
        if found:
            return proc, found.group(1)
        if time.monotonic() > deadline:
            break
    proc.kill()
    raise SystemExit(f"{demo}: the studio did not print its URL (is this a finished `make demo` folder?)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("demo", type=Path, help="A finished `make demo` folder (histosynth-demo).")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "img" / "studio.png")
    ap.add_argument("--map", type=int, default=5, help="Index of the held-out map to load.")
    ap.add_argument("--port", type=int, default=8799)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--seed", type=int, default=3)
    args = ap.parse_args()
    proc, url = start_studio(args.demo, args.port)
    errors: list[str] = []
    try:
        with chromium() as browser:
            page = open_page(browser, url, errors)
            page.select_option("#map-select", index=args.map)
            page.click("#map-load")
            page.wait_for_timeout(500)
            for cid in (1, 2):  # epithelium, stroma: the first bank crop of each
                if page.locator(f"#thumbs-{cid} .thumb").count():
                    pick_first_crop(page, cid)
            page.eval_on_selector(
                "#steps", f"(e) => {{ e.value = {args.steps}; e.dispatchEvent(new Event('input')); }}"
            )
            page.select_option("#sampler", "dpm++-karras")
            page.fill("#seed", str(args.seed))
            page.click("#generate")
            page.wait_for_selector("#result:not([hidden])", timeout=300_000)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(args.out), full_page=True)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    if errors:
        raise SystemExit("the page reported errors: " + "; ".join(errors))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
