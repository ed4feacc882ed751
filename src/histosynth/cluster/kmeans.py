"""Seeded k-means (faiss), nested coarser levels, and the diversity-aware fitting sample.

* :func:`kmeans` — faiss k-means, seeded, k-means++ start, trained on at most
  ``max_points_per_centroid × k`` vectors (a seeded random subset; all when ``None``), with
  clusters numbered canonically (largest first) so ids do not depend on faiss's internal order.
  Training on ~1000 vectors per centroid reaches the inertia of training on all of them (see
  ``benchmarks/bench_cluster.py``) at a fraction of the cost; every vector is still assigned.
* :func:`coarsen` — the nested levels of hierarchical mode: each coarser level clusters the
  centroids of the level below, weighted by their sizes, so every fine cluster has exactly one
  parent; weighted k-means on centroids minimises the between-cluster part of the data's
  inertia for merges of whole fine clusters.
* :func:`diverse_sample` — at most N vectors per slide, stratified over a small per-slide
  k-means so rare tissue in a slide is represented, instead of N uniform picks that mostly
  land in the dominant tissue.

faiss runs with its BLAS at one thread (:func:`serial_blas`), and :func:`assign` spreads its
row chunks over threads itself: faiss calls BLAS on small blocks from inside its own loops, and
its bundled OpenBLAS (an OpenMP build) with two threads made training and assignment 4-10× slower
on a shared 2-core machine (``benchmarks/bench_cluster.py``). Centroids and labels are the same
at any thread count; only the last bits of the distances may differ.
"""

from __future__ import annotations

import numpy as np

__all__ = ["assign", "coarsen", "diverse_sample", "inertia", "kmeans", "serial_blas"]


def _faiss():
    import faiss

    return faiss


def serial_blas():
    """A context in which BLAS libraries use one thread (faiss parallelises around them)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(1, user_api="blas")


def assign(
    x: np.ndarray, centroids: np.ndarray, chunk: int = 16384, threads: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Nearest centroid (0-based) and squared distance of each row, exact, in bounded memory.

    Chunks of ``chunk`` rows are searched by ``threads`` threads (default: the cores this
    process may use; faiss releases the GIL), each with single-threaded BLAS.
    """
    from concurrent.futures import ThreadPoolExecutor

    from histosynth.distributed.executors import item_cores

    faiss = _faiss()
    index = faiss.IndexFlatL2(centroids.shape[1])
    index.add(np.ascontiguousarray(centroids, dtype=np.float32))
    labels = np.empty(len(x), np.int64)
    dist = np.empty(len(x), np.float32)

    def search(i: int) -> None:
        d, lab = index.search(np.ascontiguousarray(x[i : i + chunk], dtype=np.float32), 1)
        labels[i : i + chunk], dist[i : i + chunk] = lab[:, 0], d[:, 0]

    with serial_blas(), ThreadPoolExecutor(threads or item_cores()) as pool:
        list(pool.map(search, range(0, len(x), chunk)))
    return labels, dist


def inertia(x: np.ndarray, centroids: np.ndarray) -> float:
    """Sum of squared distances to the nearest centroid (float64 accumulation)."""
    return float(assign(x, centroids)[1].astype(np.float64).sum())


def _canonical(centroids: np.ndarray, labels: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Order of clusters: by size (weighted) descending, then by centroid coordinates, so the
    numbering is a function of the partition alone."""
    k = len(centroids)
    sizes = np.bincount(labels, weights=weights, minlength=k)
    keys = [*(centroids[:, j] for j in range(centroids.shape[1] - 1, -1, -1)), -sizes]
    return np.lexsort(keys)


def kmeans(
    x: np.ndarray,
    k: int,
    seed: int = 0,
    niter: int = 25,
    nredo: int = 1,
    weights: np.ndarray | None = None,
    max_points_per_centroid: int | None = 1024,
) -> tuple[np.ndarray, np.ndarray]:
    """k-means of the rows of ``x``.

    Parameters
    ----------
    x
        ``(n, d)`` vectors (float32 preferred).
    k
        Clusters; at most ``n``.
    seed, niter, nredo
        faiss settings: the seed fixes initialisation; ``nredo`` keeps the best of several runs.
    weights
        Optional per-row weights.
    max_points_per_centroid
        Train on a seeded random subset of at most this many vectors per centroid (``None``:
        all); the returned labels cover every row.

    Returns
    -------
    centroids, labels
        ``(k, d)`` float32 centroids numbered canonically (largest cluster first) and the 0-based
        label of each row.
    """
    faiss = _faiss()
    x = np.ascontiguousarray(x, dtype=np.float32)
    n, d = x.shape
    if not 1 <= k <= n:
        raise ValueError(f"k-means: k={k} clusters need at least k vectors, got {n}")
    cap = n if max_points_per_centroid is None else max(1, int(max_points_per_centroid))
    km = faiss.Kmeans(d, k, niter=niter, nredo=nredo, seed=int(seed) & 0x7FFFFFFF, verbose=False,
                      max_points_per_centroid=min(cap, -(-n // k) + 1), min_points_per_centroid=1)  # fmt: skip
    # k-means++ seeding (on at most 20 000 rows): faiss's uniform random start often leaves a
    # well-separated group without a centroid, a local optimum Lloyd iterations never leave.
    init = _plusplus(x, k, seed, weights) if nredo == 1 else None
    w = None if weights is None else np.ascontiguousarray(weights, dtype=np.float32)
    with serial_blas():
        km.train(x, weights=w, init_centroids=init)
    labels, _ = assign(x, km.centroids)
    order = _canonical(km.centroids, labels, weights)
    centroids = np.ascontiguousarray(km.centroids[order])
    remap = np.empty(k, np.int64)
    remap[order] = np.arange(k)
    return centroids, remap[labels]


def _plusplus(x: np.ndarray, k: int, seed: int, weights: np.ndarray | None) -> np.ndarray:
    """Greedy k-means++ seeding (as scikit-learn's: 2 + ln k candidates per step, the one that
    lowers the potential most wins) on at most 20 000 rows, candidates scored in one product."""
    rng = np.random.default_rng(seed)
    sub = np.sort(rng.choice(len(x), 20_000, replace=False)) if len(x) > 20_000 else np.arange(len(x))
    xs = np.ascontiguousarray(x[sub], dtype=np.float32)
    w = np.ones(len(xs)) if weights is None else np.asarray(weights, np.float64)[sub]
    sq = (xs.astype(np.float64) ** 2).sum(1)
    trials = 2 + int(np.log(k))

    def dist(cand: np.ndarray) -> np.ndarray:  # (n, len(cand)) squared distances
        return np.maximum(sq[:, None] - 2.0 * (xs @ xs[cand].T) + sq[cand][None, :], 0.0)

    idx = [int(rng.choice(len(xs), p=w / w.sum()))]
    d2 = dist(np.array(idx))[:, 0]
    for _ in range(1, k):
        p = w * d2
        total = p.sum()
        cand = rng.choice(len(xs), trials, p=p / total) if total > 0 else rng.integers(len(xs), size=trials)
        new = np.minimum(d2[:, None], dist(cand))
        best = int(np.argmin((w[:, None] * new).sum(0)))
        idx.append(int(cand[best]))
        d2 = new[:, best]
    return np.ascontiguousarray(xs[idx])


def coarsen(centroids: np.ndarray, sizes: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """Group ``centroids`` into ``k`` parents by size-weighted k-means; returns each one's parent
    (0-based, canonical: largest parent first)."""
    from sklearn.cluster import KMeans

    n = len(centroids)
    if not 1 <= k <= n:
        raise ValueError(f"hierarchy: cannot group {n} clusters into {k}")
    if k == n:
        return np.arange(n)
    w = np.asarray(sizes, np.float64) + 1e-9  # an empty fine cluster still needs a parent
    km = KMeans(k, n_init=10, random_state=int(seed) & 0x7FFFFFFF).fit(
        centroids.astype(np.float64), sample_weight=w
    )
    parents = km.labels_.astype(np.int64)
    order = _canonical(km.cluster_centers_.astype(np.float32), parents, w)
    remap = np.empty(k, np.int64)
    remap[order] = np.arange(k)
    return remap[parents]


def diverse_sample(x: np.ndarray, n: int, seed: int = 0, strata: int = 16) -> np.ndarray:
    """Indices of at most ``n`` rows of ``x``, spread over ``strata`` groups of similar rows.

    Rows are grouped by a small k-means (fitted on at most 20 000 of them); the quota is shared
    so that small groups are taken whole and the rest is split evenly among the larger ones;
    within a group rows are drawn uniformly. Sorted indices; deterministic for a seed.
    """
    m = len(x)
    rng = np.random.default_rng(seed)
    if m <= n:
        return np.arange(m)
    strata = max(1, min(strata, n // 4, m))
    fit = rng.choice(m, min(m, 20_000), replace=False)
    if strata > 1:
        centroids, _ = kmeans(np.asarray(x[np.sort(fit)], np.float32), strata, seed=seed, niter=10)
        groups, _ = assign(np.asarray(x, np.float32), centroids)
    else:
        groups = np.zeros(m, np.int64)
    members = [np.flatnonzero(groups == g) for g in range(strata)]
    quota = _water_fill(np.array([len(mm) for mm in members]), n)
    picks = [rng.choice(mm, q, replace=False) for mm, q in zip(members, quota, strict=True) if q]
    return np.sort(np.concatenate(picks))


def _water_fill(sizes: np.ndarray, n: int) -> np.ndarray:
    """Split ``n`` among groups as evenly as their sizes allow (small groups are taken whole)."""
    quota = np.zeros(len(sizes), np.int64)
    left = n
    open_ = sizes > 0
    while left > 0 and open_.any():
        share = max(1, left // int(open_.sum()))
        for g in np.flatnonzero(open_):
            take = min(share, sizes[g] - quota[g], left)
            quota[g] += take
            left -= take
            if quota[g] == sizes[g]:
                open_[g] = False
            if left == 0:
                break
    return quota
