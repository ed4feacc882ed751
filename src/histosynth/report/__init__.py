"""The HTML report of an evaluation: sample grids, metric tables, inline SVG plots, flagged images.

>>> from histosynth.report.page import run              # doctest: +SKIP
>>> run("eval/", "eval/report.html")                     # doctest: +SKIP
"""

from __future__ import annotations

from histosynth.registry import lazy_getattr

__all__ = ["ReportConfig"]

__getattr__ = lazy_getattr(__name__, {"ReportConfig": "histosynth.report.page"})
