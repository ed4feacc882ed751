"""Bootstrap confidence intervals (percentile method, Efron & Tibshirani 1993, ch. 13).

* FD: both feature sets are resampled with replacement and FD is recomputed from weighted
  moments (a resample is a vector of counts ``w``; mean ``wᵀX / n``, covariance
  ``(X − μ)ᵀ diag(w) (X − μ) / (n − 1)``), so no resampled copy of the features is built;
  sets smaller than the feature dimension take the O(n² d) route of
  :func:`~histosynth.evaluate.stats.frechet_distance_features`.
* Precision, recall, density, coverage: each is the mean of a per-sample value once the k-NN
  radii are fixed; those values are resampled. The interval therefore covers the sampling of the
  evaluated points with the manifold radii held fixed: resampling points *into* a k-NN radius
  computation would create duplicates at distance 0 and shrink the radii, which biases the
  metric instead of measuring its spread.
"""

from __future__ import annotations

import numpy as np

from histosynth.evaluate.stats import (
    FeatureStats,
    frechet_distance,
    frechet_distance_features,
    prefer_features,
)

__all__ = ["bootstrap_fd", "bootstrap_mean", "percentile_interval"]


def percentile_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The central ``level`` interval of bootstrap replicates."""
    lo = (1.0 - level) / 2.0
    q = np.quantile(np.asarray(values, np.float64), [lo, 1.0 - lo])
    return float(q[0]), float(q[1])


def _weighted_stats(x: np.ndarray, counts: np.ndarray) -> FeatureStats:
    n = int(counts.sum())
    w = counts.astype(np.float64)
    mu = w @ x / n
    xc = x - mu
    sigma = (xc * w[:, None]).T @ xc / (n - 1)
    return FeatureStats(mu, (sigma + sigma.T) / 2, n)


def bootstrap_fd(
    real: np.ndarray, fake: np.ndarray, replicates: int, seed: int = 0, level: float = 0.95
) -> tuple[float, float, np.ndarray]:
    """Percentile interval of FD over ``replicates`` joint resamples of both feature sets.

    Returns ``(low, high, replicate values)``.
    """
    rng = np.random.default_rng(seed)
    xr, xf = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    values = np.empty(replicates)
    low_rank = prefer_features(len(xr), len(xf), xr.shape[1])
    for b in range(replicates):
        cr = np.bincount(rng.integers(0, len(xr), len(xr)), minlength=len(xr))
        cf = np.bincount(rng.integers(0, len(xf), len(xf)), minlength=len(xf))
        if low_rank:
            values[b] = frechet_distance_features(xr, xf, cr, cf)
        else:
            values[b] = frechet_distance(_weighted_stats(xr, cr), _weighted_stats(xf, cf))
    low, high = percentile_interval(values, level)
    return low, high, values


def bootstrap_mean(
    values: np.ndarray, replicates: int, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile interval of the mean of per-sample ``values``."""
    v = np.asarray(values, np.float64)
    rng = np.random.default_rng(seed)
    # Resampled means from counts: one (replicates, n) multinomial draw, no index copies.
    counts = rng.multinomial(len(v), np.full(len(v), 1.0 / len(v)), size=replicates)
    return percentile_interval(counts @ v / len(v), level)
