"""docs/reliability.md names only tests that exist: every row is a test that can fail."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_test_named_in_the_reliability_page_exists():
    page = (ROOT / "docs" / "reliability.md").read_text(encoding="utf-8")
    named = re.findall(r"`(tests/[\w/]+\.py)::(\w+)`", page)
    lines = page.splitlines()
    headers = {i - 1 for i, ln in enumerate(lines) if ln.startswith("|---")}
    rows = [ln for i, ln in enumerate(lines) if ln.startswith("| ") and i not in headers]
    assert len(rows) >= 40 and len(named) >= len(rows)
    assert all("`tests/" in ln for ln in rows), [ln for ln in rows if "`tests/" not in ln]
    for path, name in named:
        source = (ROOT / path).read_text(encoding="utf-8")
        assert re.search(rf"^def {name}\(", source, re.M), (
            f"docs/reliability.md: {path}::{name} does not exist"
        )
