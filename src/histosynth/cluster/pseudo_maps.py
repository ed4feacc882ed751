"""Pseudo-semantic maps: cluster ids painted on the sub-tile lattice of each slide.

Every slide gets a label grid per level, one cell per ``stride × stride`` sub-tile step (level-0
cell ``stride · size0 / size``), anchored at the slide's top-left patch. Within a patch, each cell
takes the label of the sub-tile whose centre is nearest, so overlapping sub-tiles still cover
the patch exactly. Id 0 is background: cells outside every patch and sub-tiles whose tissue
fraction is below the cluster stage's ``min_tissue``; ids 1..k are pseudo-classes.

:class:`PseudoMapSource` implements :class:`histosynth.wsi.labels.LabelSource`, so the
``dataset`` stage builds a patch dataset from pseudo-maps exactly as from annotations::

    classes, sources = pseudo_map_sources("clusters/", k=20)
    label = sources["slide-1"].label_region(x0, y0, size0, 256)   # uint8, 0..20

``smooth`` (in cells) turns the blocky lattice into smooth region borders: each pixel takes the
class with the largest Gaussian-weighted vote of the cells around it (0 gives nearest cell).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from histosynth.artifacts import ArtifactError, Kind, read_manifest
from histosynth.data.classmap import ClassMap, TissueClass, default_color
from histosynth.wsi.labels import LabelSet

__all__ = [
    "PseudoMapSource",
    "assignments_of",
    "paint_grid",
    "pseudo_classes",
    "pseudo_labels",
    "pseudo_map_sources",
]


def pseudo_classes(k: int) -> ClassMap:
    """Class map of a level: 0 background, 1..k ``cluster-NNN``."""
    classes = [TissueClass(0, "background", (255, 255, 255))]
    classes += [TissueClass(i, f"cluster-{i:03d}", default_color(i)) for i in range(1, k + 1)]
    return ClassMap(tuple(classes), source=f"pseudo-classes k={k}")


def paint_grid(index: object, labels: np.ndarray, stride: int) -> tuple[np.ndarray, float, float, float]:
    """Paint one slide's sub-tile labels on its lattice.

    Parameters
    ----------
    index
        The slide's rows of the embeddings index (columns ``patch, x0, y0, size0, size, sx, sy,
        subtile``), in shard order (patch-major, sub-tiles row-major).
    labels
        Label of each row (0 = background).
    stride
        Sub-tile stride in pixels at the tiles' mpp.

    Returns
    -------
    grid, origin_x, origin_y, cell
        ``(rows, cols)`` labels and the lattice geometry in level-0 pixels.
    """
    df = index  # a DataFrame; typed loosely to keep pandas out of the import path
    first = df.groupby("patch", sort=True).first()
    n_patches = len(first)
    s = len(df) // n_patches
    n_pos = int(round(np.sqrt(s)))
    size, sub = int(first["size"].iloc[0]), int(df["subtile"].iloc[0])
    if n_pos * n_pos != s or n_patches * s != len(df):
        raise ValueError("paint_grid: rows are not whole patches of a square sub-tile grid")
    cells = size // stride
    cell0 = float(first["size0"].iloc[0]) * stride / size
    # Nearest sub-tile (its index along one axis) for each cell of a patch.
    near = np.clip(np.floor(np.arange(cells) + 0.5 - sub / (2 * stride) + 0.5).astype(int), 0, n_pos - 1)
    per_patch = np.asarray(labels).reshape(n_patches, n_pos, n_pos)[:, near][:, :, near]
    ox, oy = float(first["x0"].min()), float(first["y0"].min())
    gc = np.floor((first["x0"].to_numpy() - ox) / cell0 + 0.5).astype(int)
    gr = np.floor((first["y0"].to_numpy() - oy) / cell0 + 0.5).astype(int)
    grid = np.zeros((gr.max() + cells, gc.max() + cells), np.asarray(labels).dtype)
    rr = gr[:, None, None] + np.arange(cells)[None, :, None]
    cc = gc[:, None, None] + np.arange(cells)[None, None, :]
    grid[rr, cc] = per_patch
    return grid, ox, oy, cell0


@functools.lru_cache(maxsize=8)
def _load_grid(path: str, key: str) -> tuple[np.ndarray, float, float, float]:
    # A few slides' grids stay cached per process; the dataset stage works slide by slide.
    with np.load(path, allow_pickle=False) as z:
        return z[key], float(z["origin_x"]), float(z["origin_y"]), float(z["cell"])


def assignments_of(grid_file: Path, slide: str, levels: tuple[int, ...]) -> Any:
    """One slide's ids at every level, as a DataFrame (slide, row, k<K>...)."""
    import pandas as pd

    with np.load(grid_file, allow_pickle=False) as z:
        cols = {f"k{k}": z[f"rows_k{k}"] for k in levels}
    n = len(next(iter(cols.values())))
    return pd.DataFrame({"slide": slide, "row": np.arange(n), **cols})


def _weights(coords: np.ndarray, lo: int, n: int, sigma: float) -> np.ndarray:
    """Gaussian weights (len(coords), n) of lattice indices lo..lo+n-1 around each coordinate."""
    d = coords[:, None] - (lo + np.arange(n))[None, :]
    return np.exp(-0.5 * (d / sigma) ** 2)


@dataclass(frozen=True)
class PseudoMapSource:
    """A slide's pseudo-map at one level; a :class:`~histosynth.wsi.labels.LabelSource`.

    Attributes
    ----------
    path
        The slide's grid file (``grids/<slide>.npz``), read lazily and cached.
    key
        The level's array in that file (``k{K}``).
    classes
        Background plus the level's pseudo-classes.
    smooth
        Gaussian vote width in lattice cells (0: nearest cell).
    """

    path: str
    key: str
    classes: ClassMap
    smooth: float = 0.5

    def grid(self) -> tuple[np.ndarray, float, float, float]:
        """``(grid, origin_x, origin_y, cell)`` of this slide and level."""
        return _load_grid(self.path, self.key)

    def label_region(self, x0: int, y0: int, size0: float, out_size: int) -> np.ndarray:
        """``(out_size, out_size)`` uint8 ids of the level-0 square at ``(x0, y0)`` of side ``size0``."""
        return self.render(x0, y0, size0, size0, out_size, out_size)

    def render(self, x0: float, y0: float, w0: float, h0: float, out_w: int, out_h: int) -> np.ndarray:
        """Ids of a level-0 rectangle sampled at ``out_h × out_w`` pixel centres."""
        grid, ox, oy, cell = self.grid()
        gx = (x0 + (np.arange(out_w) + 0.5) * (w0 / out_w) - ox) / cell - 0.5  # cell centres at integers
        gy = (y0 + (np.arange(out_h) + 0.5) * (h0 / out_h) - oy) / cell - 0.5
        if self.smooth <= 0:
            return _nearest(grid, gx, gy)
        r = int(np.ceil(3 * self.smooth))
        c0, c1 = int(np.floor(gx.min())) - r, int(np.ceil(gx.max())) + r + 1
        r0, r1 = int(np.floor(gy.min())) - r, int(np.ceil(gy.max())) + r + 1
        window = np.zeros((r1 - r0, c1 - c0), grid.dtype)  # outside the grid is background
        sr0, sr1, sc0, sc1 = max(r0, 0), min(r1, grid.shape[0]), max(c0, 0), min(c1, grid.shape[1])
        if sr1 > sr0 and sc1 > sc0:
            window[sr0 - r0 : sr1 - r0, sc0 - c0 : sc1 - c0] = grid[sr0:sr1, sc0:sc1]
        wx = _weights(gx, c0, c1 - c0, self.smooth)
        wy = _weights(gy, r0, r1 - r0, self.smooth)
        present = np.unique(window)
        if len(present) == 1:
            return np.full((out_h, out_w), present[0], np.uint8)
        votes = np.stack([wy @ (window == c).astype(np.float64) @ wx.T for c in present])
        return present[votes.argmax(0)].astype(np.uint8)


def _nearest(grid: np.ndarray, gx: np.ndarray, gy: np.ndarray) -> np.ndarray:
    cols, rows = np.floor(gx + 0.5).astype(int), np.floor(gy + 0.5).astype(int)
    vc = (cols >= 0) & (cols < grid.shape[1])
    vr = (rows >= 0) & (rows < grid.shape[0])
    out = np.zeros((len(rows), len(cols)), np.uint8)
    out[np.ix_(vr, vc)] = grid[np.ix_(rows[vr], cols[vc])]
    return out


def pseudo_map_sources(
    clusters: str | Path, k: int | None = None, smooth: float = 0.5
) -> tuple[ClassMap, dict[str, PseudoMapSource]]:
    """Class map and per-slide label sources of a finished ``histosynth cluster`` folder.

    Parameters
    ----------
    clusters
        The cluster folder.
    k
        The level to paint (one of the folder's levels; default the finest).
    smooth
        Border smoothing in lattice cells (0: blocky nearest-cell maps).

    Returns
    -------
    classes, sources
        Ids 0 (background: no tissue or outside every tile) and 1..k; slide name → source.
    """
    folder = Path(clusters)
    manifest = read_manifest(folder, Kind.CLUSTERS)
    levels = [int(v) for v in manifest["levels"]]
    k = max(levels) if k is None else int(k)
    if k not in levels:
        raise ArtifactError(f"{folder}: has pseudo-maps for k in {levels}, not k={k}")
    classes = pseudo_classes(k)
    sources = {}
    for slide, rel in manifest["grids"].items():
        path = folder / rel
        if not path.is_file():
            raise ArtifactError(f"{path}: grid of slide {slide!r} is missing")
        sources[slide] = PseudoMapSource(str(path), f"k{k}", classes, smooth)
    return classes, sources


def pseudo_map_hierarchy(clusters: str | Path, k: int | None = None) -> dict | None:
    """``hierarchy.json`` of maps painted at level ``k`` (coarser parents of each id), or None
    when the folder has no ``model.npz``; the dataset stage stores it beside the maps so the
    training curriculum (coarse tissue types first) can use them."""
    from histosynth.cluster.model import ClusterModel

    path = Path(clusters) / "model.npz"
    return ClusterModel.load(path).hierarchy(k) if path.is_file() else None


def pseudo_labels(clusters: str | Path, k: int | None = None) -> LabelSet:
    """The pseudo-maps of a finished ``cluster`` folder at level ``k`` (default the finest),
    with their ``hierarchy.json``."""
    classes, sources = pseudo_map_sources(clusters, k=k)
    hierarchy = pseudo_map_hierarchy(clusters, k)
    files = {"hierarchy.json": hierarchy} if hierarchy is not None else {}
    # The id names k as it was asked for ("kNone" for the default), as it always has.
    return LabelSet(classes, sources, f"{read_manifest(clusters)['id']}-k{k}", files=files)
