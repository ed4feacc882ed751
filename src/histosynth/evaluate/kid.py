"""Kernel Inception Distance (Bińkowski et al. 2018): an unbiased MMD² with a cubic kernel.

With the polynomial kernel ``κ(x, y) = (xᵀy / d + 1)³`` and two subsets X, Y of m samples,
the unbiased estimator (Gretton et al. 2012, eq. 3) is::

    MMD²_u = 1/(m(m−1)) Σ_{i≠j} [κ(x_i, x_j) + κ(y_i, y_j)] − 2/m² Σ_{i,j} κ(x_i, y_j)

KID is its mean over random subsets (100 of 1,000 samples, as torch-fidelity and clean-fid
do); the spread over subsets is reported alongside. Unlike FD, KID is unbiased for small
samples, so it is the metric to read when a set holds only a few hundred images.
"""

from __future__ import annotations

import numpy as np

__all__ = ["kid", "mmd2_unbiased", "polynomial_kernel"]


def polynomial_kernel(x: np.ndarray, y: np.ndarray, degree: int = 3, coef0: float = 1.0) -> np.ndarray:
    """``(x yᵀ / d + coef0) ** degree`` in float64."""
    d = x.shape[1]
    return (np.asarray(x, np.float64) @ np.asarray(y, np.float64).T / d + coef0) ** degree


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD² of two equally sized samples under :func:`polynomial_kernel`."""
    m = len(x)
    if len(y) != m or m < 2:
        raise ValueError(f"need two samples of equal size ≥ 2, got {len(x)} and {len(y)}")
    kxx, kyy, kxy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    within = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    return float(within - 2.0 * kxy.sum() / (m * m))


def kid(
    real: np.ndarray, fake: np.ndarray, subsets: int = 100, subset_size: int = 1000, seed: int = 0
) -> tuple[float, float, int]:
    """KID of ``fake`` against ``real``: (mean, standard deviation over subsets, subset size).

    The subset size is capped by the smaller set; subsets are drawn without replacement from a
    generator seeded with ``seed``, so the value is reproducible.
    """
    m = min(subset_size, len(real), len(fake))
    if m < 2:
        raise ValueError(f"KID needs at least 2 samples per set, got {len(real)} and {len(fake)}")
    rng = np.random.default_rng(seed)
    values = np.array(
        [
            mmd2_unbiased(
                real[rng.choice(len(real), m, replace=False)], fake[rng.choice(len(fake), m, replace=False)]
            )
            for _ in range(subsets)
        ]
    )
    return float(values.mean()), float(values.std(ddof=1) if subsets > 1 else 0.0), m
