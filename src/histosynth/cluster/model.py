"""The cluster model: preprocessing, fine centroids and nested coarser levels, saved as ``.npz``.

A model maps a feature vector to a pseudo-class id at any of its levels (e.g. k = 5, 10, 20, 50,
100). Ids run 1..k at every level, as in the pseudo-maps; 0 is never predicted, it is reserved
for background (sub-tiles without enough tissue). The fine level is the largest k; a coarser
level is a grouping of fine clusters, so each fine cluster knows its parent at every level.

The file holds only arrays (``np.load(allow_pickle=False)`` reads it) and a JSON string::

    meta        JSON: levels, encoder identity, dim, preprocessing, seed, version
    mean, scale (d,) standardisation (scale 1 / mean 0 when off)
    components  (d, p) PCA projection (empty when off)
    centroids   (k_fine, p) fine centroids in the preprocessed space
    map_k{K}    (k_fine,) fine id (0-based) → level-K id (0-based), one per level
    centroids_k{K}  (K, p) centroids of each level (size-weighted means of its fine centroids)
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from histosynth.artifacts import ArtifactError, atomic_write_bytes
from histosynth.cluster.kmeans import assign, coarsen, kmeans

__all__ = ["VERSION", "ClusterModel", "Preprocess", "fit_model"]

VERSION = 1
Normalize = Literal["none", "standardize", "l2", "standardize+l2"]


@dataclass(frozen=True)
class Preprocess:
    """Feature preprocessing fitted on the sample: standardise, project (PCA), L2-normalise."""

    mean: np.ndarray
    scale: np.ndarray
    components: np.ndarray  # (d, p) or (d, 0) for none
    l2: bool

    @classmethod
    def fit(cls, x: np.ndarray, normalize: Normalize = "standardize", pca: int = 0) -> Preprocess:
        x = np.asarray(x, np.float64)
        d = x.shape[1]
        if normalize.startswith("standardize"):
            mean, scale = x.mean(0), x.std(0)
            scale = np.where(scale > 1e-8, scale, 1.0)  # constant features stay put
        else:
            mean, scale = np.zeros(d), np.ones(d)
        comps = np.zeros((d, 0))
        if pca and pca < d:
            z = (x - mean) / scale
            z = z - z.mean(0)
            _, _, vt = np.linalg.svd(z, full_matrices=False)
            comps = vt[:pca].T
            comps *= np.where(comps[np.abs(comps).argmax(0), np.arange(pca)] < 0, -1.0, 1.0)  # fix SVD signs
        return cls(mean.astype(np.float32), scale.astype(np.float32), comps.astype(np.float32),
                   normalize.endswith("l2"))  # fmt: skip

    def __call__(self, x: np.ndarray) -> np.ndarray:
        z = (np.asarray(x, np.float32) - self.mean) / self.scale
        if self.components.shape[1]:
            z = z @ self.components
        if self.l2:
            z = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
        return np.ascontiguousarray(z, dtype=np.float32)


@dataclass(frozen=True)
class ClusterModel:
    """A fitted model; see the module docstring for the meaning of its arrays.

    Attributes
    ----------
    levels
        The k of every level, ascending; the last is the fine level.
    """

    pre: Preprocess
    centroids: np.ndarray
    maps: dict[int, np.ndarray]
    level_centroids: dict[int, np.ndarray]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def levels(self) -> tuple[int, ...]:
        return tuple(sorted(self.maps))

    @property
    def k(self) -> int:
        return len(self.centroids)

    @property
    def dim(self) -> int:
        return len(self.pre.mean)

    def _level(self, k: int | None) -> int:
        k = self.k if k is None else int(k)
        if k not in self.maps:
            raise ValueError(f"this cluster model has levels {list(self.levels)}, not k={k}")
        return k

    def predict_fine(self, x: np.ndarray) -> np.ndarray:
        """0-based fine cluster of each row."""
        if x.shape[1] != self.dim:
            raise ValueError(f"features have {x.shape[1]} dimensions, the model was fitted on {self.dim}")
        return assign(self.pre(x), self.centroids)[0]

    def predict(self, x: np.ndarray, k: int | None = None) -> np.ndarray:
        """Pseudo-class ids 1..k (uint8 when k < 256) of each row at level ``k`` (default: finest)."""
        k = self._level(k)
        ids = self.maps[k][self.predict_fine(x)] + 1
        return ids.astype(np.uint8 if k < 256 else np.int32)

    def parent(self, fine_k: int, coarse_k: int) -> np.ndarray:
        """``p[i]`` = id at level ``coarse_k`` of id ``i`` at level ``fine_k`` (index 0 → 0)."""
        fine_k, coarse_k = self._level(fine_k), self._level(coarse_k)
        if coarse_k > fine_k:
            raise ValueError(f"level {coarse_k} is finer than {fine_k}")
        out = np.zeros(fine_k + 1, np.int64)
        out[self.maps[fine_k] + 1] = self.maps[coarse_k] + 1
        return out

    def hierarchy(self, k: int | None = None) -> dict:
        """``hierarchy.json`` for maps painted at level ``k`` (default: finest): the parent, at
        every coarser level, of each id ``0..k`` (0 → 0: background), as the training
        curriculum reads it (:class:`histosynth.train.data.Curriculum`)."""
        k = self._level(k)
        levels = {str(j): self.parent(k, j).tolist() for j in self.levels if j < k}
        return {"background": 0, "fine_k": k, "levels": levels}

    # ------------------------------------------------------------------------- files
    def save(self, path: str | Path) -> None:
        """Write the ``.npz`` atomically (arrays and a JSON string only: no pickle)."""
        arrays: dict[str, np.ndarray] = {
            "meta": np.array(json.dumps({**self.meta, "version": VERSION, "levels": list(self.levels),
                                         "l2": self.pre.l2}, sort_keys=True)),  # fmt: skip
            "mean": self.pre.mean, "scale": self.pre.scale, "components": self.pre.components,
            "centroids": self.centroids,
        }  # fmt: skip
        for k in self.levels:
            arrays[f"map_k{k}"] = self.maps[k].astype(np.int32)
            arrays[f"centroids_k{k}"] = self.level_centroids[k]
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        atomic_write_bytes(path, buf.getvalue())

    @classmethod
    def load(cls, path: str | Path) -> ClusterModel:
        """Read a model written by :meth:`save`."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                pre = Preprocess(z["mean"], z["scale"], z["components"], bool(meta.pop("l2")))
                levels = meta["levels"]
                maps = {int(k): z[f"map_k{k}"].astype(np.int64) for k in levels}
                cents = {int(k): z[f"centroids_k{k}"] for k in levels}
                centroids = z["centroids"]
        except FileNotFoundError:
            raise ArtifactError(f"{path}: cluster model not found") from None
        except (KeyError, ValueError, OSError) as exc:
            raise ArtifactError(f"{path}: not a histosynth cluster model ({exc})") from None
        if meta.get("version") != VERSION:
            raise ArtifactError(f"{path}: cluster model version {meta.get('version')}, expected {VERSION}")
        return cls(pre, centroids, maps, cents, meta)


def fit_model(
    x: np.ndarray,
    levels: tuple[int, ...],
    seed: int = 0,
    niter: int = 25,
    nredo: int = 1,
    normalize: Normalize = "standardize",
    pca: int = 0,
    meta: dict[str, Any] | None = None,
    train_per_centroid: int = 1024,
) -> tuple[ClusterModel, np.ndarray]:
    """Fit the preprocessing, the fine k-means (k = max(levels)) and the nested coarser levels.

    ``train_per_centroid`` caps the vectors k-means trains on (0: all); every row is labelled.

    Returns
    -------
    model, labels
        The model and the 0-based fine label of each row of ``x``.
    """
    levels = tuple(sorted({int(k) for k in levels}))
    if not levels or levels[0] < 1:
        raise ValueError(f"cluster levels must be positive, got {levels}")
    pre = Preprocess.fit(x, normalize, pca)
    z = pre(x)
    k_fine = levels[-1]
    cap = train_per_centroid or None
    centroids, labels = kmeans(z, k_fine, seed=seed, niter=niter, nredo=nredo, max_points_per_centroid=cap)
    sizes = np.bincount(labels, minlength=k_fine).astype(np.float64)
    maps = {k_fine: np.arange(k_fine)}
    # Each level groups the one below, so parents nest all the way down.
    below_k, below_map = k_fine, maps[k_fine]
    for k in reversed(levels[:-1]):
        below_cent = _weighted_means(centroids, sizes, below_map, below_k)
        below_sizes = np.bincount(below_map, weights=sizes, minlength=below_k)
        parent = coarsen(below_cent, below_sizes, k, seed=seed)
        maps[k] = parent[below_map]
        below_k, below_map = k, maps[k]
    level_cents = {k: _weighted_means(centroids, sizes, maps[k], k) for k in levels}
    info = {"seed": int(seed), "niter": niter, "nredo": nredo, "normalize": normalize, "pca": pca,
            "train_per_centroid": train_per_centroid, "fit_vectors": int(len(x)), **(meta or {})}  # fmt: skip
    return ClusterModel(pre, centroids, maps, level_cents, info), labels


def _weighted_means(centroids: np.ndarray, sizes: np.ndarray, mapping: np.ndarray, k: int) -> np.ndarray:
    w = sizes + 1e-9
    out = np.zeros((k, centroids.shape[1]), np.float64)
    np.add.at(out, mapping, centroids * w[:, None])
    return (out / np.bincount(mapping, weights=w, minlength=k)[:, None]).astype(np.float32)
