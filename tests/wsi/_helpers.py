"""Helpers shared by the wsi tests: annotations made from a synthetic slide's ground truth."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

FIXTURES = Path(__file__).parent / "fixtures"


def grid_polygons(slide) -> dict[int, object]:
    """Class id → shapely (Multi)Polygon covering exactly the cells of that class."""
    import shapely
    from shapely.geometry import box

    out = {}
    for cid in np.unique(slide.label_grid):
        if cid == 0:
            continue
        rows, cols = np.nonzero(slide.label_grid == cid)
        cell = slide.cell
        geom = shapely.union_all(
            [box(c * cell, r * cell, (c + 1) * cell, (r + 1) * cell) for r, c in zip(rows, cols, strict=True)]
        )
        out[int(cid)] = shapely.clip_by_rect(geom, 0, 0, slide.width, slide.height)
    return out


def write_geojson(slide, path: str | Path, rename: dict[str, str] | None = None) -> Path:
    """The slide's ground truth as a QuPath-style GeoJSON FeatureCollection."""
    from shapely.geometry import mapping

    features = []
    for cid, geom in grid_polygons(slide).items():
        name = slide.classes.names[cid]
        name = (rename or {}).get(name, name)
        features.append(
            {
                "type": "Feature",
                "geometry": mapping(geom),
                "properties": {"objectType": "annotation", "classification": {"name": name}},
            }
        )
    Path(path).write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return Path(path)


def truth_at(slide, x0: int, y0: int, size0: float, out_size: int) -> np.ndarray:
    """Ground-truth class ids sampled at the centres of an ``out_size`` grid over a level-0 box."""
    centres = (np.arange(out_size) + 0.5) * (size0 / out_size)
    xs = np.floor(x0 + centres).astype(int)
    ys = np.floor(y0 + centres).astype(int)
    full = slide.label(
        int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)
    )
    return full[np.ix_(ys - ys.min(), xs - xs.min())]


def write_annotated_slides(root: Path, n: int, size: tuple[int, int] = (1024, 768)) -> Path:
    """``root/s/s<i>.tif`` synthetic slides, ``root/ann/s<i>.geojson`` their ground truth and
    ``root/classes.json``; returns ``root``."""
    from histosynth.samples import write_synthetic_slide

    for d in ("s", "ann"):
        (root / d).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        s = write_synthetic_slide(root / "s" / f"s{i}.tif", size=size, seed=i)
        write_geojson(s, root / "ann" / f"s{i}.geojson")
    s.classes.save(root / "classes.json")
    return root
