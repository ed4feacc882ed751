"""Tiling one slide: tissue mask, patch grid, tissue (and class) fractions, QC picture.

Everything here works on the thumbnail and the annotations, never on level-0 pixels, so tiling
a slide costs one thumbnail read whatever the slide's size. Patch pixels are read later (by the
``dataset`` and ``embed`` stages) with ``open_slide(...).read_at_mpp``.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from histosynth.artifacts import Kind, atomic_write_bytes, read_manifest
from histosynth.config import register_presets
from histosynth.data.splits import SplitConfig
from histosynth.wsi.base import SlideError
from histosynth.wsi.grid import box_fractions, grid_origins, tile_geometry
from histosynth.wsi.tissue import TissueConfig, TissueMask, detect_tissue

__all__ = ["TILE_COLUMNS", "TileConfig", "load_tissue_mask", "save_png", "slide_facts", "tile_slide"]

# The tiles-table contract (docs/architecture.md); `slide_mpp` and, with annotations,
# `fractions` follow as extra columns.
TILE_COLUMNS = ("slide", "slide_path", "x0", "y0", "size0", "size", "mpp", "level", "tissue", "split")


@dataclass(frozen=True)
class TileConfig:
    """The ``tile`` stage's settings.

    Attributes
    ----------
    mpp
        Target resolution of the patches (µm/px).
    size
        Patch side in pixels at ``mpp``.
    overlap
        Overlap of neighbouring patches in pixels at ``mpp`` (stride ``size - overlap``).
    min_tissue
        Keep patches whose tissue fraction (on the thumbnail mask) is at least this.
    slide_mpp
        Level-0 µm/px for slides without resolution metadata (plain images); overrides the
        file's value when given.
    reader
        Slide reader: ``auto`` or a registered name (``openslide``, ``tiffslide``, ``image``).
    seed
        Decides the slide splits.
    qc_side
        Longer side of each QC panel (px).
    """

    mpp: float = 0.5
    size: int = 256
    overlap: int = 0
    min_tissue: float = 0.5
    slide_mpp: float | None = None
    reader: str = "auto"
    seed: int = 0
    qc_side: int = 1024
    tissue: TissueConfig = field(default_factory=TissueConfig)
    split: SplitConfig = field(default_factory=SplitConfig)

    def __post_init__(self) -> None:
        tile_geometry(1.0, self.mpp, self.size, self.overlap)  # validates size/overlap/mpp
        if not 0.0 <= self.min_tissue <= 1.0:
            raise ValueError(f"min_tissue must lie in [0, 1], got {self.min_tissue}")


register_presets(
    TileConfig,
    {
        "default": {},
        # The paper's patches: 256 px at 20× (0.5 µm/px).
        "paper": {"mpp": 0.5, "size": 256},
        # Context tiles for embedding/clustering: 224 px at 1 µm/px.
        "embed": {"mpp": 1.0, "size": 224, "min_tissue": 0.6},
        # Half-overlapping patches for small annotated sets.
        "dense": {"overlap": 128},
    },
)


def _table_bytes(rows: dict[str, Any]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(pa.table(rows), buf)
    return buf.getvalue()


def save_png(path: Path, arr: np.ndarray) -> None:
    """Write an RGB or greyscale uint8 picture as PNG, atomically.

    In the ``fast`` mode of :mod:`histosynth.data.png` (libdeflate at level 1; zlib at level 1
    for a greyscale mask): Pillow's default level took a third of the ``tile`` stage on a small
    slide, for the same pixels.
    """
    from histosynth.data.png import encode_png

    atomic_write_bytes(path, encode_png(arr, "fast"))


def slide_facts(tiles: str | Path) -> dict[str, dict[str, Any]]:
    """Slide name → what a finished ``tile`` run recorded of it (path, size, mpp, threshold...)."""
    return read_manifest(tiles, Kind.TILES).get("slides", {})


def load_tissue_mask(tiles: str | Path, slide: str, info: dict[str, Any]) -> TissueMask:
    """The tissue mask and thumbnail a finished ``tile`` run saved for ``slide``."""
    folder = Path(tiles) / "masks"
    mask = _read_png(folder / f"{slide}.png", "L") > 127
    thumb = _read_png(folder / f"{slide}.thumb.png", "RGB")
    return TissueMask(mask, thumb, float(info["thumb_scale"]), float(info["threshold"]))


def _read_png(path: Path, mode: str) -> np.ndarray:
    """A PNG this stage wrote (greyscale ``L`` or ``RGB``), decoded straight into one array.

    imagecodecs decodes into the returned array; Pillow holds its own copy (four bytes a
    pixel) beside it, which for a large slide's thumbnail is most of the plan's memory.
    Anything else (another mode, a missing codec) goes through Pillow.
    """
    try:
        import imagecodecs

        arr = imagecodecs.png_decode(path.read_bytes())
        if arr.dtype == np.uint8 and arr.shape[2:] == ((3,) if mode == "RGB" else ()) and arr.ndim > 1:
            return arr
    except (ImportError, AttributeError):  # imagecodecs is a dependency; a trimmed install has Pillow
        pass
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert(mode))


def tile_slide(
    slide: str,
    path: str | Path,
    split: str,
    folder: str | Path,
    cfg: TileConfig,
    labels: Callable[[int, int], Any] | None = None,
) -> dict[str, Any]:
    """Tile one slide; write its table shard, tissue mask and QC picture into ``folder``.

    Parameters
    ----------
    slide
        The slide's name (its file stem).
    path
        The slide file.
    split
        The slide's split.
    folder
        The tiles artefact folder.
    cfg
        Tiling settings.
    labels
        Optional callable ``(width0, height0) -> (LabelSource, fill_id) | None``, called with
        the slide's level-0 size: adds per-patch class ``fractions`` (tissue that no
        annotation covers counts as class ``fill_id`` unless it is ``None``) and colours the
        QC grid by each patch's dominant class.

    Returns
    -------
    dict
        JSON-ready facts about the slide (size, mpp, level read, tissue threshold, tile count).

    Raises
    ------
    SlideError
        When the slide cannot be read, has no resolution, or has no tissue.
    """
    from histosynth.wsi.qc import qc_picture
    from histosynth.wsi.readers import open_slide

    folder = Path(folder)
    with open_slide(path, mpp=cfg.slide_mpp, reader=cfg.reader) as reader:
        reader.set_cache_bytes(0)  # the thumbnail is read once: a tile cache would only hold memory
        slide_mpp = reader.require_mpp()
        geo = tile_geometry(slide_mpp, cfg.mpp, cfg.size, cfg.overlap)
        level = reader.best_level(geo.downsample)
        tissue = detect_tissue(reader, cfg.tissue)
        width, height = reader.dimensions
    if not tissue.mask.any():
        raise SlideError(f"{path}: no tissue found (saturation threshold {tissue.threshold:.3f})")
    x0, y0 = grid_origins(width, height, geo.size0, geo.stride0)
    frac = box_fractions(tissue.mask, tissue.scale, x0, y0, geo.size0)
    keep = frac >= cfg.min_tissue
    x0, y0, frac = x0[keep], y0[keep], frac[keep]
    if len(x0) == 0:
        raise SlideError(
            f"{path}: tissue found, but no {cfg.size} px patch at {cfg.mpp} µm/px "
            f"has {cfg.min_tissue:.0%} tissue"
        )
    splits = [split] * len(x0)
    if cfg.split.by == "region" and cfg.split.file is None:
        from histosynth.data.splits import region_splits

        splits, apart = region_splits(slide, x0, y0, geo.size0, slide_mpp, cfg.split, cfg.seed)
        x0, y0, frac, splits = (
            x0[apart],
            y0[apart],
            frac[apart],
            [s for s, k in zip(splits, apart, strict=True) if k],
        )
    n = len(x0)
    rows: dict[str, Any] = {
        "slide": [slide] * n,
        "slide_path": [str(Path(path).resolve())] * n,
        "x0": x0.astype(np.int64),
        "y0": y0.astype(np.int64),
        "size0": np.full(n, geo.size0),
        "size": np.full(n, cfg.size, np.int64),
        "mpp": np.full(n, cfg.mpp),
        "level": np.full(n, level, np.int64),
        "tissue": frac.astype(np.float64),
        "split": splits,
        "slide_mpp": np.full(n, slide_mpp),
    }
    colors = None
    found = labels(width, height) if labels is not None else None
    if found is not None:
        source, fill_id = found
        fractions = np.stack(
            [
                _fractions(source, tissue, fill_id, int(a), int(b), geo.size0, cfg.size)
                for a, b in zip(x0, y0, strict=True)
            ]
        )
        rows["fractions"] = list(fractions)
        lut = np.zeros((256, 3), np.uint8)
        for c in source.classes.classes:
            lut[c.id] = c.color
        colors = lut[fractions[:, 1:].argmax(1) + 1]
    save_png(folder / "masks" / f"{slide}.png", tissue.mask.astype(np.uint8) * np.uint8(255))
    save_png(folder / "masks" / f"{slide}.thumb.png", tissue.thumbnail)
    save_png(folder / "qc" / f"{slide}.png", qc_picture(tissue, x0, y0, geo.size0, colors, cfg.qc_side))
    atomic_write_bytes(folder / "_shards" / f"{slide}.parquet", _table_bytes(rows))
    return {
        "path": str(Path(path).resolve()),
        "width": width,
        "height": height,
        "slide_mpp": slide_mpp,
        "level": level,
        "thumb_scale": tissue.scale,
        "threshold": tissue.threshold,
        "tissue_fraction": tissue.fraction,
        "tiles": n,
        "split": split,
    }


def _fractions(
    source: Any, tissue: TissueMask, fill_id: int | None, x0: int, y0: int, size0: float, size: int
) -> np.ndarray:
    label = source.label_region(x0, y0, size0, size)
    if fill_id is not None:
        label[(label == 0) & tissue.region(x0, y0, size0, size)] = fill_id
    from histosynth.data.composition import label_counts

    return label_counts(label, source.classes.num_classes) / label.size
