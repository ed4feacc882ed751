"""The HTML report of an evaluation: sample grids, metric tables, inline SVG plots, flagged images.

>>> from histosynth.report import build_report        # doctest: +SKIP
>>> build_report("eval/", "eval/report.html")          # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

__all__ = ["build_report"]


def __getattr__(name: str) -> Any:
    if name == "build_report":
        from histosynth.report.page import build_report

        return build_report
    raise AttributeError(f"module 'histosynth.report' has no attribute {name!r}")
