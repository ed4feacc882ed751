"""Scores of a reader study: can raters tell real from synthetic, and how real does each look?

- Discrimination accuracy: the share of real/synthetic guesses that were right, pooled over
  raters, with a Wilson score interval and a two-sided exact binomial test against chance
  (0.5). Accuracy near 0.5 means raters could not tell the sources apart. Pooling treats
  ratings as independent; with several raters, read the per-rater rows too.
- Realism: the mean 1–5 score per source with a t interval, and how often synthetic images
  were called real (and real ones called real).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from histosynth.studio.reader_study import SOURCES, Rating, ReaderStudy

__all__ = ["mean_interval", "score_ratings", "score_study", "wilson_interval"]


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion ``k / n`` (``(nan, nan)`` when ``n == 0``)."""
    from scipy.stats import norm

    if n == 0:
        return math.nan, math.nan
    z = float(norm.ppf(0.5 + confidence / 2))
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def mean_interval(values: list[float], confidence: float = 0.95) -> dict[str, Any]:
    """Mean, standard deviation, count and a Student-t interval of ``values``."""
    from scipy.stats import t

    x = np.asarray(values, float)
    n = int(x.size)
    if n == 0:
        return {"n": 0, "mean": None, "sd": None, "ci": [None, None]}
    mean = float(x.mean())
    if n == 1:
        return {"n": 1, "mean": mean, "sd": None, "ci": [None, None]}
    sd = float(x.std(ddof=1))
    half = float(t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)
    return {"n": n, "mean": mean, "sd": sd, "ci": [mean - half, mean + half]}


def _accuracy(ratings: list[Rating], key: dict[str, str], confidence: float) -> dict[str, Any]:
    from scipy.stats import binomtest

    n = len(ratings)
    k = sum(r.guess == key[r.item] for r in ratings)
    lo, hi = wilson_interval(k, n, confidence)
    p = float(binomtest(k, n, 0.5).pvalue) if n else None
    return {
        "n": n,
        "correct": int(k),
        "accuracy": k / n if n else None,
        "ci": [lo, hi] if n else [None, None],
        "p_value_vs_chance": p,
    }


def score_ratings(ratings: list[Rating], key: dict[str, str], confidence: float = 0.95) -> dict[str, Any]:
    """Scores of ``ratings`` given ``key`` (item → ``real`` / ``synthetic``).

    Returns
    -------
    dict
        ``discrimination`` (pooled accuracy with interval and p-value), ``per_rater``
        accuracies, ``realism`` (per source: mean score with interval, share called real) and
        the ``confidence`` level.
    """
    realism = {}
    for src in SOURCES:
        mine = [r for r in ratings if key[r.item] == src]
        called_real = sum(r.guess == "real" for r in mine)
        realism[src] = {
            **mean_interval([float(r.realism) for r in mine], confidence),
            "called_real": called_real / len(mine) if mine else None,
        }
    raters = sorted({r.rater for r in ratings})
    return {
        "confidence": confidence,
        "ratings": len(ratings),
        "discrimination": _accuracy(ratings, key, confidence),
        "per_rater": {
            name: _accuracy([r for r in ratings if r.rater == name], key, confidence) for name in raters
        },
        "realism": realism,
    }


def score_study(
    folder: str | Path, key_path: str | Path | None = None, confidence: float = 0.95
) -> dict[str, Any]:
    """Score every saved rating of a study folder.

    Parameters
    ----------
    folder
        A reader-study folder.
    key_path
        The key (``<folder>/key.json`` by default).
    confidence
        Level of the intervals.
    """
    import json

    study = ReaderStudy(folder)
    key_file = Path(key_path) if key_path else study.folder / "key.json"
    items = json.loads(key_file.read_text(encoding="utf-8"))["items"]
    key = {item: v["source"] for item, v in items.items()}
    ratings = [r for r in study.ratings() if r.item in key]
    out = score_ratings(ratings, key, confidence)
    out["items"] = len(study)
    out["complete_raters"] = sorted(
        name for name in out["per_rater"] if study.progress(name)["done"] == len(study)
    )
    return out
