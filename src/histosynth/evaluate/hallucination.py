"""Conservative per-image hallucination flags.

The paper's authors name hallucinated structures as a limit that needs conservative flagging.
An image is flagged on either of two signs, each calibrated on held-out real images so that
real, unseen tissue would (almost) never be flagged:

* low density: its distance to the k-th nearest real training image, divided by the
  ``quantile`` of the same distance for held-out real images, exceeds 1 under *every*
  detector (one detector alone can be fooled by a texture it happens to encode poorly);
* segmenter disagreement: a segmenter trained on real data, run on the image, agrees with the
  map it was conditioned on (per-image mIoU) less than the (1 − ``quantile``) quantile of its
  agreement on held-out real images.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from histosynth.evaluate.neighbors import nearest

__all__ = ["density_ratio", "flag_images", "segmenter_threshold"]


def density_ratio(
    train: np.ndarray, heldout: np.ndarray, synthetic: np.ndarray, k: int, quantile: float
) -> np.ndarray:
    """Per synthetic image: k-NN distance to ``train`` over the held-out reference quantile."""
    k = min(k, len(train))
    ref = float(np.quantile(nearest(heldout, train, k)[0][:, -1], quantile))
    d = nearest(synthetic, train, k)[0][:, -1]
    return d / ref if ref > 0 else np.where(d > 0, np.inf, 0.0)


def segmenter_threshold(heldout_miou: np.ndarray, quantile: float) -> float:
    """Per-image mIoU below which a synthetic image's map and its segmentation disagree."""
    valid = np.asarray(heldout_miou, np.float64)
    valid = valid[~np.isnan(valid)]
    return float(np.quantile(valid, 1.0 - quantile)) if len(valid) else float("nan")


def flag_images(
    ids: list[str],
    ratios: Mapping[str, np.ndarray],
    miou: np.ndarray | None,
    miou_threshold: float | None,
) -> list[dict[str, Any]]:
    """Every image with its scores; ``flagged`` and ``reasons`` say whether and why.

    ``ratios``: detector → density ratio per image (see :func:`density_ratio`).
    """
    out = []
    for j, pid in enumerate(ids):
        per_det = {name: float(r[j]) for name, r in ratios.items()}
        score = min(per_det.values()) if per_det else None
        reasons = []
        if score is not None and score > 1.0:
            reasons.append("low density among real features under every detector")
        m = None if miou is None or np.isnan(miou[j]) else float(miou[j])
        if (
            m is not None
            and miou_threshold is not None
            and not np.isnan(miou_threshold)
            and m < miou_threshold
        ):
            reasons.append("segmenter disagrees with the conditioning map")
        out.append({"id": pid, "density_ratio": score, "density_ratio_by_detector": per_det,
                    "segmenter_miou": m, "flagged": bool(reasons), "reasons": reasons})  # fmt: skip
    return out
