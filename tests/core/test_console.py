"""Console tables: every summary a command prints is aligned, whatever the values."""

from __future__ import annotations

import re

import pytest

from histosynth.console import MISSING, format_table


def cells_and_edges(line: str) -> list[tuple[str, int, int]]:
    """(text, start, end) of each cell: cells are separated by two or more spaces."""
    return [(m.group(), m.start(), m.end()) for m in re.finditer(r"\S+(?: \S+)*", line)]


def assert_aligned(lines: list[str]) -> None:
    """Same number of cells on every line; each column starts or ends at one position."""
    rows = [cells_and_edges(ln) for ln in lines]
    assert len({len(r) for r in rows}) == 1, "\n".join(lines)
    for c in range(len(rows[0])):
        starts, ends = {r[c][1] for r in rows}, {r[c][2] for r in rows}
        assert len(starts) == 1 or len(ends) == 1, (c, "\n".join(lines))


def test_long_values_never_run_together():
    rows = [["tokens", 0.00185, 0.07812, 0.3199, 0.02187, 0.01347], ["a-much-longer-variant-name", 1234.5678, None, 1.0, 0.5, 0.25]]  # fmt: skip
    text = format_table(["variant", "FD", "KID", "precision", "recall", "density"], rows)
    lines = text.splitlines()
    assert_aligned(lines)
    assert "0.00185  0.07812" in lines[1]
    assert MISSING in lines[2]
    # numbers are right-aligned under their header
    assert lines[0].index("FD") + 2 == lines[1].index("0.00185") + len("0.00185")


def test_rows_must_fit_the_header():
    with pytest.raises(ValueError, match="2 cells for 3 columns"):
        format_table(["a", "b", "c"], [[1, 2]])


def test_evaluate_summary_is_aligned():
    """The summary `histosynth evaluate` prints (values as a short CPU run gives them), C2ST column included."""
    from histosynth.cli.evaluate import _summary

    variants = ["map", "tokens", "paper-concat-with-a-long-name"]
    metrics = {
        v: {
            "fd_handcrafted": 0.00185 * (i + 1),
            "kid_handcrafted": 0.07812,
            "precision_handcrafted": 0.3199,
            "recall_handcrafted": 0.02187,
            "density_handcrafted": 0.01347,
            "coverage_handcrafted": 0.5,
            "fd_random-init-cnn": 12345.678,
            "kid_random-init-cnn": -0.000123,
            "c2st": 0.61234,
            "speckle_ratio": 1.2345,
            "mask_miou": 0.41234,
            "tstr_miou": None,
            "memo_offending_images": 3,
            "crop_copies": 0,
            "hallucination_flagged": 12,
        }  # fmt: skip
        for i, v in enumerate([*variants, "real-heldout"])
    }
    result = {
        "metric_detectors": ["handcrafted", "random-init-cnn"],
        "variants": variants,
        "metrics": metrics,
    }
    text = _summary(result)
    blocks = [b.splitlines() for b in re.split(r"\n(?=\S)", text)]
    assert [b[0] for b in blocks] == ["handcrafted:", "random-init-cnn:", "checks:"]
    for block in blocks:
        assert_aligned(block[1:])
    first = cells_and_edges(blocks[0][2])
    assert [c[0] for c in first] == ["map", "0.00185", "0.07812", "0.3199", "0.02187", "0.01347", "0.5"]
    assert "12,346" in text and "-0.000123" in text
    checks = blocks[2]
    assert [c[0] for c in cells_and_edges(checks[1])][:3] == ["variant", "C2ST", "speckle ratio"]
    # the held-out real patches' row under the variants: the floors C2ST, speckle and mask mIoU are read against
    assert [c[0] for c in cells_and_edges(checks[-1])][:4] == ["real-heldout", "0.6123", "1.234", "0.4123"]
