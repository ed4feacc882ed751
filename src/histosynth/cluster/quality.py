"""Cluster quality numbers for the report: silhouette, stability across seeds, purity vs annotations.

All comparisons between clusterings use label-permutation-invariant scores (adjusted Rand
index, normalised mutual information, purity), so renumbering clusters never changes a result.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from histosynth.cluster.model import ClusterModel, fit_model

__all__ = ["purity", "silhouette", "stability", "truth_labels"]


def silhouette(z: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean silhouette and per-cluster means (NaN for clusters absent from the sample).

    ``z`` are preprocessed vectors (the space k-means worked in), ``labels`` 1-based ids.
    """
    from sklearn.metrics import silhouette_samples

    k = int(labels.max()) if len(labels) else 0
    per = np.full(k + 1, np.nan)
    if len(np.unique(labels)) < 2 or len(labels) < 3:
        return float("nan"), per
    s = silhouette_samples(z, labels)
    for c in np.unique(labels):
        per[c] = float(s[labels == c].mean())
    return float(s.mean()), per


def stability(
    x: np.ndarray, model: ClusterModel, seeds: list[int], niter: int = 25
) -> dict[int, list[float]]:
    """Adjusted Rand index, per level, between ``model`` and refits with other ``seeds`` on ``x``.

    The refits use the model's own preprocessing settings and levels; both clusterings label the
    same vectors, so the score measures how much the partition depends on the seed alone.
    """
    from sklearn.metrics import adjusted_rand_score

    meta = model.meta
    ref = {k: model.predict(x, k) for k in model.levels}
    out: dict[int, list[float]] = {k: [] for k in model.levels}
    for seed in seeds:
        other, _ = fit_model(x, model.levels, seed=seed, niter=niter, normalize=meta.get("normalize", "standardize"),
                             pca=int(meta.get("pca", 0)), train_per_centroid=int(meta.get("train_per_centroid", 1024)))  # fmt: skip
        for k in model.levels:
            out[k].append(float(adjusted_rand_score(ref[k], other.predict(x, k))))
    return out


def truth_labels(index: Any, sources: dict[str, Any], samples: int = 8) -> np.ndarray:
    """Majority annotated class of each sub-tile (``-1`` where its slide has no annotation).

    ``index`` holds ``slide, sub_x0, sub_y0, sub_size0`` rows; ``sources`` maps slides to
    :class:`~histosynth.wsi.labels.LabelSource` objects.
    """
    out = np.full(len(index), -1, np.int64)
    for pos, row in enumerate(index.itertuples(index=False)):
        src = sources.get(row.slide)
        if src is None:
            continue
        lab = src.label_region(int(round(row.sub_x0)), int(round(row.sub_y0)), float(row.sub_size0), samples)
        out[pos] = int(np.bincount(lab.ravel()).argmax())
    return out


def purity(pred: np.ndarray, truth: np.ndarray) -> dict[str, Any]:
    """Agreement of pseudo-classes with annotated classes (rows with ``truth < 0`` ignored).

    Returns purity (each cluster counted as its majority class), adjusted Rand index,
    normalised mutual information, and per cluster its majority class and purity.
    """
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    keep = truth >= 0
    pred, truth = pred[keep], truth[keep]
    if len(pred) == 0:
        return {"n": 0}
    table = np.zeros((int(pred.max()) + 1, int(truth.max()) + 1), np.int64)
    np.add.at(table, (pred, truth), 1)
    sizes = table.sum(1)
    per = {
        int(c): {"majority": int(table[c].argmax()), "purity": float(table[c].max() / sizes[c])}
        for c in np.flatnonzero(sizes)
    }
    return {
        "n": int(len(pred)),
        "purity": float(table.max(1).sum() / len(pred)),
        "ari": float(adjusted_rand_score(truth, pred)),
        "nmi": float(normalized_mutual_info_score(truth, pred)),
        "per_cluster": per,
    }
