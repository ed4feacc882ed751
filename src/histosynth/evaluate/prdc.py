"""Improved precision/recall and density/coverage on k-NN manifolds.

With real features ``r_i`` (i = 1..N), generated features ``g_j`` (j = 1..M) and
``NND_k(x)`` the distance from ``x`` to its k-th nearest neighbour within its own set:

* precision (Kynkäänniemi et al. 2019, eq. 1–2): the share of ``g_j`` inside the real manifold
  ``∪_i B(r_i, NND_k(r_i))``;
* recall: the share of ``r_i`` inside the generated manifold ``∪_j B(g_j, NND_k(g_j))``;
* density (Naeem et al. 2020, eq. 3): ``1/(kM) Σ_j Σ_i 1[g_j ∈ B(r_i, NND_k(r_i))]``, which
  counts how many real balls hold each sample (≈ 1 when both sets share a distribution);
* coverage (Naeem et al. 2020, eq. 4): the share of real balls ``B(r_i, NND_k(r_i))`` that hold
  at least one ``g_j``.

Each metric is a mean of per-sample values once the radii are fixed, so :class:`PRDC` keeps the
per-sample values: the bootstrap resamples them (see :mod:`histosynth.evaluate.bootstrap`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from histosynth.evaluate.neighbors import as_tensor, count_within, knn_radii, pairwise_blocks

__all__ = ["PRDC", "prdc"]


@dataclass(frozen=True)
class PRDC:
    """Per-sample indicators behind precision, recall, density and coverage.

    Attributes
    ----------
    fake_in_real
        (M,) bool: generated sample lies in the real manifold (precision).
    fake_ball_count
        (M,) int: number of real balls holding the generated sample (density).
    real_in_fake
        (N,) bool: real sample lies in the generated manifold (recall).
    real_covered
        (N,) bool: the real sample's own ball holds a generated sample (coverage).
    k
        The neighbourhood size.
    """

    fake_in_real: np.ndarray
    fake_ball_count: np.ndarray
    real_in_fake: np.ndarray
    real_covered: np.ndarray
    k: int

    @property
    def precision(self) -> float:
        return float(self.fake_in_real.mean())

    @property
    def recall(self) -> float:
        return float(self.real_in_fake.mean())

    @property
    def density(self) -> float:
        return float(self.fake_ball_count.mean() / self.k)

    @property
    def coverage(self) -> float:
        return float(self.real_covered.mean())

    def summary(self) -> dict[str, float]:
        return {
            "precision": self.precision,
            "recall": self.recall,
            "density": self.density,
            "coverage": self.coverage,
        }


def prdc(real: np.ndarray, fake: np.ndarray, k: int = 5, chunk: int = 1024) -> PRDC:
    """Precision, recall, density and coverage of ``fake`` against ``real`` features.

    Parameters
    ----------
    real, fake
        (N, d) and (M, d) feature arrays; both need more than ``k`` rows.
    k
        Neighbourhood size: 3 in Kynkäänniemi et al., 5 in Naeem et al. (our default).
    chunk
        Rows per distance block (memory is O(chunk · max(N, M))).
    """
    real_r = knn_radii(real, k, chunk)
    fake_r = knn_radii(fake, k, chunk)
    counts = count_within(fake, real, real_r, chunk)
    real_in_fake = np.zeros(len(real), bool)
    covered = np.zeros(len(real), bool)
    fr = as_tensor(fake_r)[None, :]
    own = as_tensor(real_r)
    for rows, d in pairwise_blocks(real, fake, chunk):
        real_in_fake[rows] = (d <= fr).any(dim=1).numpy()
        covered[rows] = (d.min(dim=1).values <= own[rows]).numpy()
    return PRDC(counts > 0, counts, real_in_fake, covered, k)
