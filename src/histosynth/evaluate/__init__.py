"""Evaluation of synthetic datasets against real ones.

Detectors (:mod:`.detectors`), streamed statistics and Fréchet distance (:mod:`.stats`), KID
(:mod:`.kid`), precision/recall/density/coverage (:mod:`.prdc`), bootstrap intervals
(:mod:`.bootstrap`), mask fidelity and TSTR with DeepLabv3+ (:mod:`.segmentation`, :mod:`.tstr`),
memorisation and crop copying (:mod:`.memorization`, :mod:`.crops`), hallucination flags
(:mod:`.hallucination`); :func:`evaluate` runs them all and writes ``metrics.json``;
:func:`compare_folders` gives FD, KID and PRDC between two image folders in one call.

Submodules are imported on first use, so ``import histosynth.evaluate`` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["DETECTORS", "EvaluateConfig", "TSTRConfig", "compare_folders", "evaluate", "frechet_distance"]

_WHERE = {
    "DETECTORS": "histosynth.evaluate.detectors",
    "EvaluateConfig": "histosynth.evaluate.config",
    "TSTRConfig": "histosynth.evaluate.config",
    "compare_folders": "histosynth.evaluate.folders",
    "evaluate": "histosynth.evaluate.suite",
    "frechet_distance": "histosynth.evaluate.stats",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'histosynth.evaluate' has no attribute {name!r}")
