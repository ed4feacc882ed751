"""Evaluation of synthetic datasets against real ones.

Detectors (:mod:`.detectors`), streamed statistics and Fréchet distance (:mod:`.stats`), KID
(:mod:`.kid`), precision/recall/density/coverage (:mod:`.prdc`), bootstrap intervals
(:mod:`.bootstrap`), mask fidelity and TSTR with DeepLabv3+ (:mod:`.segmentation`, :mod:`.tstr`),
memorisation and crop copying (:mod:`.memorization`, :mod:`.crops`), hallucination flags
(:mod:`.hallucination`); the stage, :func:`histosynth.evaluate.suite.run`, runs them all and
writes ``metrics.json``; :func:`compare_folders` gives FD, KID and PRDC between two image folders
in one call.

Submodules are imported on first use, so ``import histosynth.evaluate`` stays light.
"""

from __future__ import annotations

from histosynth.registry import lazy_getattr

__all__ = ["DETECTORS", "EvaluateConfig", "TSTRConfig", "compare_folders", "frechet_distance"]

_WHERE = {
    "DETECTORS": "histosynth.evaluate.detectors",
    "EvaluateConfig": "histosynth.evaluate.config",
    "TSTRConfig": "histosynth.evaluate.config",
    "compare_folders": "histosynth.evaluate.folders",
    "frechet_distance": "histosynth.evaluate.stats",
}

__getattr__ = lazy_getattr(__name__, _WHERE)
