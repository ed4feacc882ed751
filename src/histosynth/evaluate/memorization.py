"""Memorisation: is a synthetic image closer to a training image than real images ever are?

For each synthetic image, the distance to its nearest *training* image (in a detector's
feature space, and in pixels with the ``pixels-32`` detector) is compared with the reference
distribution of the same distance for *held-out* real images, which the model never saw
(Meehan et al. 2020 and Carlini et al. 2023 use this comparison). A synthetic image closer
than the reference's ``percentile`` (1st by default) is an offender: real, unseen tissue is
that close to the training set only 1 % of the time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from histosynth.evaluate.neighbors import nearest

__all__ = ["NearestCheck", "nearest_check"]


@dataclass(frozen=True)
class NearestCheck:
    """Nearest-training-image distances of synthetic and held-out real images in one space."""

    synthetic_distance: np.ndarray
    synthetic_nearest: np.ndarray
    reference_distance: np.ndarray
    threshold: float

    @property
    def offenders(self) -> np.ndarray:
        """Indices of synthetic images closer to a training image than the threshold."""
        return np.flatnonzero(self.synthetic_distance < self.threshold)

    def summary(self) -> dict[str, Any]:
        """``memo_share``: offender share; ``memo_nn_ratio``: median synthetic / median held-out
        nearest distance (well below 1 means synthetic images sit closer to the training set than
        unseen real images do)."""
        ref_median = float(np.median(self.reference_distance))
        return {
            "memo_share": float(len(self.offenders) / max(len(self.synthetic_distance), 1)),
            "memo_offenders": int(len(self.offenders)),
            "memo_threshold": float(self.threshold),
            "memo_nn_median": float(np.median(self.synthetic_distance)),
            "memo_ref_median": ref_median,
            "memo_nn_ratio": float(np.median(self.synthetic_distance) / ref_median)
            if ref_median > 0
            else None,
        }


def nearest_check(
    train: np.ndarray, heldout: np.ndarray, synthetic: np.ndarray, percentile: float = 1.0
) -> NearestCheck:
    """Nearest training image of each synthetic and held-out feature row, and the threshold."""
    d_syn, i_syn = nearest(synthetic, train, k=1)
    d_ref, _ = nearest(heldout, train, k=1)
    # "lower": the threshold is an observed held-out distance, so with few held-out images the
    # closest one is never itself below it (interpolation would put it just under).
    threshold = float(np.percentile(d_ref[:, 0], percentile, method="lower"))
    return NearestCheck(d_syn[:, 0], i_syn[:, 0], d_ref[:, 0], threshold)
