"""Segmentation scores from confusion matrices: per-class IoU and Dice, their means.

For class c with true positives TP, false positives FP and false negatives FN::

    IoU_c  = TP / (TP + FP + FN)          Dice_c = 2 TP / (2 TP + FP + FN)

A class absent from both the truth and the prediction has no score (NaN) and is left out of
the means, so a test split without, say, necrosis is not scored on necrosis.
"""

from __future__ import annotations

import numpy as np

__all__ = ["confusion", "dice_per_class", "iou_per_class", "mean_score"]

IGNORE = 255


def confusion(target: np.ndarray, pred: np.ndarray, n: int) -> np.ndarray:
    """(n, n) int64 confusion matrix, rows = truth, columns = prediction; ``IGNORE`` truth is skipped."""
    t = np.asarray(target).ravel().astype(np.int64)
    p = np.asarray(pred).ravel().astype(np.int64)
    keep = t != IGNORE
    return np.bincount(n * t[keep] + p[keep], minlength=n * n).reshape(n, n)


def iou_per_class(cm: np.ndarray) -> np.ndarray:
    tp = np.diag(cm).astype(np.float64)
    denom = cm.sum(0) + cm.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, tp / denom, np.nan)


def dice_per_class(cm: np.ndarray) -> np.ndarray:
    tp = np.diag(cm).astype(np.float64)
    denom = cm.sum(0) + cm.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, 2 * tp / denom, np.nan)


def mean_score(scores: np.ndarray) -> float:
    """Mean over the classes that have a score (NaN when none has)."""
    valid = ~np.isnan(scores)
    return float(scores[valid].mean()) if valid.any() else float("nan")
