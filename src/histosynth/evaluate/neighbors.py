"""Exact k-nearest-neighbour queries on feature arrays, chunked so memory stays O(chunk · n).

Distances are Euclidean, computed in float32 with torch as ‖a‖² + ‖b‖² − 2 a·b after centring
both sets on the reference mean (centring shrinks the norms, hence the cancellation error of
the expansion). Every function is exact (brute force), so results do not depend on an index.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

__all__ = ["as_tensor", "count_within", "knn_radii", "nearest", "pairwise_blocks"]


def as_tensor(a: np.ndarray):
    """A float32 torch view of ``a`` (copied only when it is read-only or of another dtype)."""
    import torch

    a = np.asarray(a, np.float32)
    return torch.from_numpy(a if a.flags.writeable else a.copy())


def _tensors(query: np.ndarray, ref: np.ndarray):
    q, r = as_tensor(query), as_tensor(ref)
    if q.ndim != 2 or r.ndim != 2 or q.shape[1] != r.shape[1]:
        raise ValueError(
            f"feature arrays must be (n, d) with equal d, got {tuple(q.shape)} and {tuple(r.shape)}"
        )
    centre = r.mean(dim=0, keepdim=True)
    return q - centre, r - centre


def pairwise_blocks(query: np.ndarray, ref: np.ndarray, chunk: int = 1024) -> Iterator[tuple[slice, object]]:
    """Yield ``(rows, D)`` with D the (len(rows), len(ref)) distance block as a torch tensor."""
    import torch

    q, r = _tensors(query, ref)
    r_sq = (r * r).sum(dim=1)
    with torch.inference_mode():
        for start in range(0, len(q), chunk):
            qc = q[start : start + chunk]
            d2 = (qc * qc).sum(dim=1, keepdim=True) + r_sq[None, :] - 2.0 * (qc @ r.T)
            yield slice(start, start + len(qc)), d2.clamp_min_(0.0).sqrt_()


def _reduce(query: np.ndarray, ref: np.ndarray, fn: Callable, chunk: int) -> list:
    return [fn(rows, d) for rows, d in pairwise_blocks(query, ref, chunk)]


def knn_radii(x: np.ndarray, k: int, chunk: int = 1024) -> np.ndarray:
    """Distance from each row of ``x`` to its k-th nearest *other* row of ``x``.

    The point itself is at distance 0 and is the first of the ``k + 1`` smallest values, so the
    k-th neighbour is the (k + 1)-th smallest distance (duplicates of a point count as
    neighbours at distance 0, as they should).
    """
    if not 1 <= k < len(x):
        raise ValueError(f"k = {k} needs at least k + 1 = {k + 1} samples, got {len(x)}")
    parts = _reduce(x, x, lambda rows, d: d.kthvalue(k + 1, dim=1).values.numpy(), chunk)
    return np.concatenate(parts).astype(np.float64)


def nearest(
    query: np.ndarray, ref: np.ndarray, k: int = 1, chunk: int = 1024
) -> tuple[np.ndarray, np.ndarray]:
    """Distances to, and indices of, the k nearest rows of ``ref`` for each query row.

    Returns ``(dist, idx)`` of shape (n_query, k), ascending by distance.
    """
    if not 1 <= k <= len(ref):
        raise ValueError(f"k = {k} needs at least {k} reference samples, got {len(ref)}")

    def fn(rows, d):
        v, i = d.topk(k, dim=1, largest=False, sorted=True)
        return v.numpy(), i.numpy()

    parts = _reduce(query, ref, fn, chunk)
    return (np.concatenate([p[0] for p in parts]).astype(np.float64), np.concatenate([p[1] for p in parts]))


def count_within(query: np.ndarray, ref: np.ndarray, radii: np.ndarray, chunk: int = 1024) -> np.ndarray:
    """For each query row, how many reference balls B(ref_i, radii_i) contain it."""
    r = as_tensor(radii)[None, :]
    parts = _reduce(query, ref, lambda rows, d: (d <= r).sum(dim=1).numpy(), chunk)
    return np.concatenate(parts).astype(np.int64)
