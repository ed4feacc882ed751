"""The HTML report of an evaluation: sample grids, metric tables, inline SVG plots, flagged images.

>>> from histosynth.report import build_report        # doctest: +SKIP
>>> build_report("eval/", "eval/report.html")          # doctest: +SKIP
"""

from __future__ import annotations

from histosynth.registry import lazy_getattr

__all__ = ["build_report"]

__getattr__ = lazy_getattr(__name__, {"build_report": "histosynth.report.page"})
