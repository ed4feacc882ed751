"""Painting sub-tile labels on the lattice, and reading them back as a LabelSource."""

import numpy as np
import pandas as pd
import pytest

from histosynth.cluster.pseudo_maps import PseudoMapSource, paint_grid, pseudo_classes
from histosynth.wsi.labels import LabelSource


def _index(patches, size=256, size0=512.0, sub=64, stride=64):
    """Index rows (shard order) of patches at level-0 origins ``patches``."""
    pos = np.arange(0, size - sub + 1, stride)
    rows = []
    for p, (x0, y0) in enumerate(patches):
        for sy in pos:
            for sx in pos:
                rows.append(dict(patch=p, x0=x0, y0=y0, size0=size0, size=size, sx=sx, sy=sy, subtile=sub))
    return pd.DataFrame(rows)


def _save(tmp_path, grid, ox, oy, cell, k=4):
    path = tmp_path / "g.npz"
    np.savez(path, **{f"k{k}": grid}, origin_x=ox, origin_y=oy, cell=cell)
    return str(path)


def test_paint_grid_places_patches_on_the_lattice():
    idx = _index([(1000, 2000), (1512, 2000), (1000, 2512)])  # three patches, a 2×2 block minus one
    labels = np.repeat(np.array([1, 2, 3], np.uint8), 16)
    labels[16 + 5] = 4  # patch 1, sub-tile (1, 1)
    grid, ox, oy, cell = paint_grid(idx, labels, stride=64)
    assert (ox, oy, cell) == (1000, 2000, 128.0) and grid.shape == (8, 8)
    assert (grid[:4, :4] == 1).all() and (grid[4:, :4] == 3).all() and (grid[4:, 4:] == 0).all()
    assert grid[1, 5] == 4 and (grid[:4, 4:] != 0).all()


def test_overlapping_subtiles_still_cover_each_patch():
    idx = _index([(0, 0)], size=256, size0=256, sub=128, stride=64)  # 3×3 sub-tiles, 4×4 cells
    labels = np.arange(1, 10, dtype=np.uint8)
    grid, *_ = paint_grid(idx, labels, stride=64)
    assert grid.shape == (4, 4) and (grid > 0).all()
    assert grid[0, 0] == 1 and grid[3, 3] == 9 and grid[0, 3] == 3


def test_label_region_nearest_and_smooth(tmp_path):
    grid = np.zeros((4, 4), np.uint8)
    grid[:, :2], grid[:, 2:] = 1, 2
    path = _save(tmp_path, grid, 100.0, 100.0, 50.0)
    classes = pseudo_classes(4)
    sharp = PseudoMapSource(path, "k4", classes, smooth=0)
    assert isinstance(sharp, LabelSource)
    lab = sharp.label_region(100, 100, 200, 8)
    assert lab.dtype == np.uint8 and (lab[:, :4] == 1).all() and (lab[:, 4:] == 2).all()
    out = sharp.label_region(0, 0, 400, 8)  # partly outside the grid: background there
    assert (out[:2] == 0).all() and (out[:, -2:] == 0).all() and out[3, 3] == 1
    smooth = PseudoMapSource(path, "k4", classes, smooth=0.5)
    s = smooth.label_region(100, 100, 200, 64)
    # the straight border between classes stays put; the grid's outer corners round off
    assert (s[16:48, :30] == 1).all() and (s[16:48, 34:] == 2).all()
    assert s[0, 0] == 0 and (s == 0).mean() < 0.05


def test_smoothing_rounds_a_single_cell_but_keeps_it(tmp_path):
    grid = np.full((5, 5), 1, np.uint8)
    grid[2, 2] = 3
    src = PseudoMapSource(_save(tmp_path, grid, 0.0, 0.0, 10.0), "k4", pseudo_classes(4), smooth=0.5)
    lab = src.label_region(0, 0, 50, 50)
    island = lab == 3
    assert island[25, 25] and 20 < island.sum() < 100 and not island[20, 20]


def test_pseudo_classes_reserve_background():
    cm = pseudo_classes(5)
    assert cm.ids == [0, 1, 2, 3, 4, 5] and cm.names[0] == "background" and cm.names[3] == "cluster-003"


def test_pseudo_map_sources_rejects_unknown_level(tmp_path):
    from histosynth.artifacts import ArtifactError, write_manifest
    from histosynth.cluster.pseudo_maps import pseudo_map_sources

    write_manifest(tmp_path, "clusters", {}, levels=[5, 20], grids={})
    classes, sources = pseudo_map_sources(tmp_path)
    assert len(classes) == 21 and sources == {}
    with pytest.raises(ArtifactError, match="not k=7"):
        pseudo_map_sources(tmp_path, k=7)
