"""The embeddings artefact: float16 features in per-slide ``.npy`` shards plus a parquet index.

::

    <folder>/
      features/<slide>.npy     float16 (n, dim), one shard per slide (memory-mapped on read)
      index/<slide>.parquet    that slide's rows (read slide by slide by the cluster stage)
      index.parquet            all rows, merged: slide, row (into the shard), tile, patch, x0, y0, size0,
                               size, mpp, sx, sy (sub-tile offset, px), subtile, sub_x0, sub_y0,
                               sub_size0 (level-0), tissue, split, slide_path, slide_mpp
      encoder/                 weights fitted by --fit-ssl, if any
      manifest.json            kind "embeddings"; encoder name, identity and weights checksum

A shard is filled through a memory map in a temporary file and renamed when complete, so memory
stays flat for large slides and an interrupted slide leaves nothing that looks finished.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from histosynth.artifacts import ArtifactError, Kind, atomic_write_bytes, read_manifest, safe_filename

__all__ = ["EmbeddingStore", "ShardWriter", "merge_parquet"]
FP16_MAX = float(np.finfo(np.float16).max)


def merge_parquet(parts: Iterable[Any], out: str | Path) -> int:
    """Concatenate parquet files (paths) or DataFrames into ``out``, streaming one part at a time
    (memory stays at one part), then rename into place. Returns the row count."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = Path(out)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    writer, n = None, 0
    try:
        for part in parts:
            table = pa.Table.from_pandas(part, preserve_index=False) if isinstance(part, pd.DataFrame) else (
                pq.read_table(part))  # fmt: skip
            if writer is None:
                writer = pq.ParquetWriter(tmp, table.schema)
            writer.write_table(table.cast(writer.schema))
            n += table.num_rows
        if writer is None:
            pd.DataFrame().to_parquet(tmp, index=False)
        else:
            writer.close()
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return n


class ShardWriter:
    """Fill one slide's float16 shard batch by batch, then publish it and its index atomically."""

    def __init__(self, folder: str | Path, slide: str, n: int, dim: int) -> None:
        self.folder = Path(folder)
        self.slide, self.n, self.dim = slide, n, dim
        self.path = self.folder / "features" / f"{safe_filename(slide)}.npy"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        self.array = np.lib.format.open_memmap(self.tmp, mode="w+", dtype=np.float16, shape=(n, dim))

    def write(self, start: int, feats: np.ndarray) -> None:
        """Rows ``start .. start + len(feats)``; values beyond float16's range are clipped."""
        if feats.shape[1] != self.dim:
            raise ValueError(f"{self.slide}: encoder gave {feats.shape[1]} features, expected {self.dim}")
        self.array[start : start + len(feats)] = np.clip(feats, -FP16_MAX, FP16_MAX)

    def commit(self, index: Any) -> None:
        """Flush the shard, then write the slide's index; the journal marks the slide done after."""
        self.array.flush()
        del self.array
        os.replace(self.tmp, self.path)
        buf = io.BytesIO()
        index.to_parquet(buf, index=False)
        atomic_write_bytes(self.folder / "index" / f"{safe_filename(self.slide)}.parquet", buf.getvalue())

    def abort(self) -> None:
        self.__dict__.pop("array", None)
        self.tmp.unlink(missing_ok=True)


class EmbeddingStore:
    """Read a finished embeddings folder, one slide at a time.

    Attributes
    ----------
    slides
        Finished slides, in the tiles table's order.
    encoder
        The encoder description from the manifest (name, dim, identity, weights checksum).
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.manifest = read_manifest(self.folder, Kind.EMBEDDINGS)
        self.id: str = self.manifest["id"]
        self.encoder: dict[str, Any] = self.manifest["encoder"]
        self.dim = int(self.encoder["dim"])
        self.slides: list[str] = list(self.manifest["slides"])
        self._index: Any = None

    @property
    def index(self) -> Any:
        """The whole parquet index as one DataFrame (loaded on first use; large for big cohorts)."""
        if self._index is None:
            import pandas as pd

            self._index = pd.read_parquet(self.folder / "index.parquet")
        return self._index

    def features(self, slide: str) -> np.ndarray:
        """The slide's float16 shard, memory-mapped read-only."""
        path = self.folder / "features" / f"{safe_filename(slide)}.npy"
        if not path.is_file():
            raise ArtifactError(f"{path}: shard of slide {slide!r} is missing")
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
        if arr.ndim != 2 or arr.shape[1] != self.dim:
            raise ArtifactError(f"{path}: shape {arr.shape}, expected (n, {self.dim})")
        return arr

    def slide_index(self, slide: str) -> Any:
        """The rows of one slide, in shard order (read from that slide's own index file)."""
        import pandas as pd

        path = self.folder / "index" / f"{safe_filename(slide)}.parquet"
        if not path.is_file():
            raise ArtifactError(f"{path}: index of slide {slide!r} is missing")
        return pd.read_parquet(path)

    def __len__(self) -> int:
        return int(self.manifest["counts"]["vectors"])

    def __repr__(self) -> str:
        return f"EmbeddingStore({str(self.folder)!r}, n={len(self)}, encoder={self.encoder['identity']!r})"
