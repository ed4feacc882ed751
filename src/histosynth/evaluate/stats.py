"""Streaming feature statistics and the Fréchet distance.

Features are streamed batch by batch into float64 sums, so memory is O(d²) whatever the number
of images (edm2 computes FID statistics the same way). The Fréchet distance between the
Gaussians N(μ₁, Σ₁) and N(μ₂, Σ₂) fitted to two feature sets is (Dowson & Landau 1982;
Heusel et al. 2017, eq. 6)::

    FD = ‖μ₁ − μ₂‖² + tr Σ₁ + tr Σ₂ − 2 tr (Σ₁^½ Σ₂ Σ₁^½)^½

The last trace is computed from the eigenvalues of the symmetric PSD matrix Σ₁^½ Σ₂ Σ₁^½
(which are those of Σ₁Σ₂), so it needs two symmetric eigendecompositions instead of the
general ``scipy.linalg.sqrtm`` of a non-symmetric product: faster, and free of the imaginary
round-off that ``sqrtm`` returns for near-singular covariances.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "FeatureStats",
    "StreamingStats",
    "frechet_distance",
    "frechet_distance_features",
    "prefer_features",
    "sqrtm_psd",
]


@dataclass(frozen=True)
class FeatureStats:
    """Mean and (unbiased, ``n − 1``) covariance of ``n`` feature vectors, in float64."""

    mu: np.ndarray
    sigma: np.ndarray
    n: int

    def save(self, path: str | Path) -> None:
        """Write an ``.npz`` (no pickle) holding ``mu``, ``sigma`` and ``n``."""
        from histosynth.artifacts import atomic_write_bytes

        buf = io.BytesIO()
        np.savez(buf, mu=self.mu, sigma=self.sigma, n=np.int64(self.n))
        atomic_write_bytes(path, buf.getvalue())

    @classmethod
    def load(cls, path: str | Path) -> FeatureStats:
        with np.load(path, allow_pickle=False) as z:
            return cls(z["mu"], z["sigma"], int(z["n"]))

    @classmethod
    def of(cls, features: np.ndarray) -> FeatureStats:
        """Statistics of an in-memory (n, d) array (streamed through :class:`StreamingStats`)."""
        acc = StreamingStats(features.shape[1])
        acc.update(features)
        return acc.finalize()


class StreamingStats:
    """Accumulate mean and covariance of feature batches in O(d²) memory.

    Sums are taken around a shift ``c`` (the first batch's mean): Σ (x − c) and
    Σ (x − c)(x − c)ᵀ. The covariance is then ``(S₂ − n m mᵀ) / (n − 1)`` with
    ``m = S₁ / n``; shifting keeps ``m`` small, which avoids the catastrophic cancellation of
    the textbook ``E[xxᵀ] − μμᵀ`` when features have a large common offset.

    Parameters
    ----------
    dim
        Feature dimension ``d``.
    """

    def __init__(self, dim: int) -> None:
        self.dim = int(dim)
        self.n = 0
        self._shift: np.ndarray | None = None
        self._s1 = np.zeros(self.dim, np.float64)
        self._s2 = np.zeros((self.dim, self.dim), np.float64)

    def update(self, batch: np.ndarray) -> None:
        """Add an (n, d) batch of features."""
        x = np.asarray(batch, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"expected features of shape (n, {self.dim}), got {x.shape}")
        if not len(x):
            return
        if not np.isfinite(x).all():
            raise ValueError("features contain NaN or infinity; the detector is broken for these inputs")
        if self._shift is None:
            self._shift = x.mean(axis=0)
        x = x - self._shift
        self.n += len(x)
        self._s1 += x.sum(axis=0)
        self._s2 += x.T @ x

    def merge(self, other: StreamingStats) -> None:
        """Fold in another accumulator (e.g. from a worker), re-centring its sums on our shift."""
        if other.n == 0:
            return
        if self._shift is None:
            self._shift, self.n = other._shift.copy(), other.n
            self._s1, self._s2 = other._s1.copy(), other._s2.copy()
            return
        # Σ(x − a) = Σ(x − b) + n (b − a);  Σ(x − a)(x − a)ᵀ expands the same way.
        delta = other._shift - self._shift
        s1 = other._s1 + other.n * delta
        s2 = (
            other._s2
            + np.outer(other._s1, delta)
            + np.outer(delta, other._s1)
            + other.n * np.outer(delta, delta)
        )
        self.n += other.n
        self._s1 += s1
        self._s2 += s2

    def finalize(self) -> FeatureStats:
        """Mean and unbiased covariance (as ``numpy.cov``); needs at least two samples."""
        if self.n < 2:
            raise ValueError(f"need at least 2 feature vectors for a covariance, got {self.n}")
        m = self._s1 / self.n
        sigma = (self._s2 - self.n * np.outer(m, m)) / (self.n - 1)
        sigma = (sigma + sigma.T) / 2  # exact symmetry for eigh
        return FeatureStats(self._shift + m, sigma, self.n)


def sqrtm_psd(a: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix (negative round-off clipped)."""
    w, v = np.linalg.eigh((a + a.T) / 2)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance(a: FeatureStats, b: FeatureStats, root_a: np.ndarray | None = None) -> float:
    """Fréchet distance between the Gaussians fitted to two feature sets (see module docstring).

    ``root_a``: Σ₁^½ when already known (one real set against several synthetic ones).
    """
    if a.mu.shape != b.mu.shape:
        raise ValueError(f"feature dimensions differ: {a.mu.shape} vs {b.mu.shape}")
    diff = a.mu - b.mu
    root = sqrtm_psd(a.sigma) if root_a is None else root_a
    inner = root @ b.sigma @ root
    # eigenvalues of Σ₁^½ Σ₂ Σ₁^½ are ≥ 0 in exact arithmetic; clip the round-off.
    w = np.clip(np.linalg.eigvalsh((inner + inner.T) / 2), 0.0, None)
    fd = diff @ diff + np.trace(a.sigma) + np.trace(b.sigma) - 2.0 * np.sqrt(w).sum()
    return float(max(fd, 0.0))


def _factor(x: np.ndarray, w: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """(μ, F) with Σ = Fᵀ F for rows ``x`` with integer weights ``w`` (a bootstrap resample)."""
    x = np.asarray(x, np.float64)
    w = np.ones(len(x)) if w is None else np.asarray(w, np.float64)
    n = w.sum()
    mu = w @ x / n
    keep = w > 0
    return mu, (x[keep] - mu) * np.sqrt(w[keep] / (n - 1))[:, None]


def frechet_distance_features(
    x1: np.ndarray, x2: np.ndarray, w1: np.ndarray | None = None, w2: np.ndarray | None = None
) -> float:
    """The same Fréchet distance computed from the features, for sets smaller than their dimension.

    With Σ₁ = AᵀA and Σ₂ = BᵀB (rows of A, B: centred features scaled by √(w / (n − 1))), the
    non-zero eigenvalues of Σ₁Σ₂ are those of (A Bᵀ)(A Bᵀ)ᵀ, so
    ``tr (Σ₁^½ Σ₂ Σ₁^½)^½ = ‖A Bᵀ‖_*`` (the nuclear norm: the sum of singular values) and
    ``tr Σ₁ = ‖A‖²_F``. This costs O(n₁ n₂ d) instead of the O(d³) of a d×d eigendecomposition,
    which matters for a 3072-d detector on a few hundred images.
    """
    mu1, a = _factor(x1, w1)
    mu2, b = _factor(x2, w2)
    diff = mu1 - mu2
    nuclear = np.linalg.svd(a @ b.T, compute_uv=False).sum()
    fd = diff @ diff + (a * a).sum() + (b * b).sum() - 2.0 * nuclear
    return float(max(fd, 0.0))


def prefer_features(n1: int, n2: int, dim: int) -> bool:
    """Whether :func:`frechet_distance_features` is the cheaper route (both sets smaller than d)."""
    return max(n1, n2) < dim
