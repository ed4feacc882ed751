"""Procedural semantic maps: heterogeneous layouts with target class fractions.

Lets a user synthesise a dataset without any real map. Each class gets a score field; a pixel
takes the class of the highest ``score + bias``; the biases are tuned (a few dozen
proportional updates) until each class covers its target fraction. Two score families:

- ``noise``: Gaussian-smoothed white noise, one field per class (blobby, organic regions);
- ``voronoi``: negative distance to the nearest of each class's random seed points (glandular,
  cell-like compartments with straight borders).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

__all__ = ["MAP_KINDS", "class_targets", "procedural_map", "score_fields", "tune_bias"]

MAP_KINDS = ("noise", "voronoi")


def _noise_scores(rng: np.random.Generator, k: int, size: int, scale: float) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    # float32 and in place: a 4096² map of 3 classes holds 200 MB of fields, not 1.4 GB.
    fields = rng.standard_normal((k, size, size), dtype=np.float32)
    for field in fields:
        gaussian_filter(field, scale, mode="wrap", output=field)
        field /= field.std() + 1e-12
    return fields


def _voronoi_scores(rng: np.random.Generator, k: int, size: int, scale: float, fr: np.ndarray) -> np.ndarray:
    n_seeds = max(k, int(round((size / scale) ** 2)))
    owners = rng.choice(k, size=n_seeds, p=fr)
    owners[:k] = np.arange(k)  # every class owns at least one seed
    pts = rng.uniform(0, size, (n_seeds, 2))
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    scores = np.full((k, size, size), -np.inf, np.float32)
    for (py, px), c in zip(pts, owners, strict=True):
        d = np.sqrt((yy - py) ** 2 + (xx - px) ** 2)
        np.maximum(scores[c], -d, out=scores[c])
    return scores / scale


def procedural_map(
    size: int,
    fractions: Mapping[int, float],
    kind: str = "noise",
    scale: float | None = None,
    rng: np.random.Generator | None = None,
    iters: int = 200,
) -> np.ndarray:
    """A ``(size, size)`` uint8 label map whose class fractions approach ``fractions``.

    Parameters
    ----------
    size
        Map side in pixels.
    fractions
        Class id → target fraction; normalised to sum to one. Ids absent here do not occur.
    kind
        ``"noise"`` or ``"voronoi"``.
    scale
        Typical region size in pixels (default ``size / 6``).
    rng
        Random generator (per-sample, see :mod:`histosynth.seeding`).
    iters
        Bias-tuning iterations.
    """
    ids, target = class_targets(fractions, kind)
    rng = rng or np.random.default_rng()
    scale = float(scale or size / 6)
    scores = score_fields(rng, kind, size, scale, target)
    bias = tune_bias(scores, target, iters)
    out = np.empty((size, size), np.uint8)
    for y in range(0, size, 256):  # in row blocks: no full-size float or int64 temporaries
        out[y : y + 256] = ids[(scores[:, y : y + 256] + bias[:, None, None]).argmax(0)]
    return out


def class_targets(fractions: Mapping[int, float], kind: str = "noise") -> tuple[np.ndarray, np.ndarray]:
    """Class ids and their target fractions (summing to one), checked; ``kind`` checked too."""
    if kind not in MAP_KINDS:
        raise ValueError(f"map kind must be one of {MAP_KINDS}, got {kind!r}")
    ids = np.array(sorted(fractions), dtype=np.int64)
    target = np.array([float(fractions[i]) for i in ids])
    if ids.size == 0 or np.any(target < 0) or target.sum() <= 0:
        raise ValueError(f"fractions must be non-negative with a positive sum, got {dict(fractions)}")
    if ids.min() < 0 or ids.max() > 255:
        raise ValueError(f"class ids must lie in 0..255, got {ids.tolist()}")
    return ids, target / target.sum()


def score_fields(
    rng: np.random.Generator, kind: str, size: int, scale: float, target: np.ndarray
) -> np.ndarray:
    """``(k, size, size)`` float32 score fields of one of :data:`MAP_KINDS`, regions about ``scale`` px."""
    if kind == "noise":
        return _noise_scores(rng, len(target), size, scale / 2)
    return _voronoi_scores(rng, len(target), size, scale, target)


def tune_bias(scores: np.ndarray, target: np.ndarray, iters: int = 200) -> np.ndarray:
    """Per-class biases under which ``argmax(scores + bias)`` covers each class's target fraction."""
    k = len(target)
    bias = np.zeros(k, np.float32)
    bias[target == 0] = -np.inf
    step = np.full(k, 2.0)
    prev = np.zeros(k)
    # Tune the biases on a regular subsample of at most ~512² pixels: the fields are smooth at
    # the region scale, so its class fractions are the map's to well within the tolerance,
    # and a large map's tuning costs what a patch's does.
    stride = max(1, scores.shape[1] // 512)
    sub = np.ascontiguousarray(scores[:, ::stride, ::stride])
    for _ in range(iters):
        now = np.bincount((sub + bias[:, None, None]).argmax(0).ravel(), minlength=k) / sub[0].size
        err = target - now
        if np.abs(err).max() < 0.005:
            break
        # Raise under-covered classes' bias; halve a class's step when its error flips sign
        # (a per-class bisection, robust to how steep the score fields are).
        step[np.sign(err) * np.sign(prev) < 0] *= 0.5
        bias = (bias + step * err).astype(np.float32)
        prev = err
    return bias
