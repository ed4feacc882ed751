"""Tiles in, sub-tiles out: reading the tiles table and cutting each patch into a grid of sub-tiles.

A patch's pseudo-map needs spatial variation, so each patch (``size`` px at the tiles' ``mpp``)
is cut into sub-tiles of ``subtile`` px every ``stride`` px, row-major, and every sub-tile is
embedded. The map is later painted on the ``stride`` lattice: each ``stride × stride`` cell of a
patch takes the label of the sub-tile whose centre is nearest, so overlapping sub-tiles
(``subtile > stride``) still cover the patch exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from histosynth.config import ConfigError
from histosynth.embed.handcrafted import tissue_fraction

__all__ = ["TILE_COLUMNS", "SlidePatches", "cut_subtiles", "read_tiles", "subtile_offsets"]

TILE_COLUMNS = ("slide", "slide_path", "x0", "y0", "size0", "size", "mpp")


def subtile_offsets(size: int, subtile: int, stride: int) -> np.ndarray:
    """``(S, 2)`` pixel offsets ``(sx, sy)`` of the sub-tiles of a ``size`` px patch, row-major.

    Raises
    ------
    ConfigError
        When the sizes cannot tile the patch (the painting lattice needs ``size % stride == 0``).
    """
    if not 0 < subtile <= size or stride <= 0:
        raise ConfigError(
            f"embed: subtile ({subtile}) must lie in 1..{size} (the patch size) and stride be > 0"
        )
    if size % stride:
        raise ConfigError(
            f"embed: stride {stride} does not divide the {size}-px patches; choose a divisor (e.g. {size // 4})"
        )
    pos = np.arange(0, size - subtile + 1, stride)
    sy, sx = np.meshgrid(pos, pos, indexing="ij")
    return np.stack([sx.ravel(), sy.ravel()], axis=1).astype(np.int32)


def cut_subtiles(patch: np.ndarray, offsets: np.ndarray, subtile: int) -> np.ndarray:
    """``(S, subtile, subtile, 3)`` views of ``patch`` at ``offsets`` (copied, contiguous)."""
    return np.stack([patch[y : y + subtile, x : x + subtile] for x, y in offsets])


def read_tiles(folder: str | Path) -> tuple[Any, str]:
    """The tiles table of a ``histosynth tile`` folder (or a ``tiles.parquet`` path) and its id.

    Raises
    ------
    ArtifactError
        When the folder is unfinished or the table lacks a required column.
    """
    import pandas as pd

    from histosynth.artifacts import ArtifactError, Kind, file_sha256, read_manifest

    path = Path(folder)
    if path.is_dir():
        manifest = read_manifest(path, Kind.TILES)
        table = path / "tiles.parquet"
        tiles_id = str(manifest.get("id"))
    else:  # a bare table: its content hash stands in for an artefact id
        table = path
        if not table.is_file():
            raise ArtifactError(f"{table}: tiles table not found")
        tiles_id = f"tiles-file-{file_sha256(table)[:16]}"
    df = pd.read_parquet(table)
    missing = [c for c in TILE_COLUMNS if c not in df.columns]
    if missing:
        raise ArtifactError(f"{table}: missing columns {missing} (written by `histosynth tile`)")
    df = df.reset_index(drop=True)
    df["tile"] = np.arange(len(df), dtype=np.int64)
    if "split" not in df:
        df["split"] = "train"
    return df, tiles_id


def default_opener(path: str, mpp: float | None) -> Any:
    """Open a slide with :func:`histosynth.wsi.open_slide` (imported lazily)."""
    from histosynth.wsi import open_slide

    return open_slide(path, mpp=mpp)


class SlidePatches:
    """A map-style dataset over the patches of one slide, yielding their sub-tiles.

    Item ``i`` is ``(subtiles uint8 (S, s, s, 3), tissue float32 (S,), i)``. The slide opens
    lazily in whichever process reads first (DataLoader workers each open their own handle).

    Parameters
    ----------
    slide_path
        The slide file.
    rows
        ``(n, 4)`` array of ``x0, y0, size, mpp`` (level-0 origin, patch px, target mpp).
    slide_mpp
        Level-0 mpp passed to the opener (``mpp * size / size0`` of the tiles table).
    offsets, subtile
        From :func:`subtile_offsets`.
    opener
        ``opener(path, mpp) -> SlideReader``; picklable when DataLoader workers are used.
    """

    def __init__(self, slide_path: str, rows: np.ndarray, slide_mpp: float | None, offsets: np.ndarray,
                 subtile: int, opener: Callable[[str, float | None], Any] = default_opener) -> None:  # fmt: skip
        self.slide_path, self.rows, self.slide_mpp = slide_path, rows, slide_mpp
        self.offsets, self.subtile, self.opener = offsets, subtile, opener
        self._reader: Any = None

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray, int]:
        if self._reader is None:
            self._reader = self.opener(self.slide_path, self.slide_mpp)
        x0, y0, size, mpp = self.rows[i]
        patch = self._reader.read_at_mpp(int(x0), int(y0), int(size), float(mpp))
        subs = cut_subtiles(patch, self.offsets, self.subtile)
        return subs, tissue_fraction(subs), i

    def __getstate__(self) -> dict[str, Any]:  # workers open their own handle
        return {**self.__dict__, "_reader": None}
