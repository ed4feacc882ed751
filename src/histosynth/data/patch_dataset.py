"""The patch dataset format shared by real and synthetic data.

::

    <folder>/
      images/<id>.png        RGB uint8
      maps/<id>.png          uint8 class ids (see classes.json)
      classes.json           the class map
      index.parquet          one row per patch (columns below)
      manifest.json          written last: kind "patch-dataset"
      _shards/<key>.parquet  per-slide (or per-batch) rows while the stage runs

Index columns every dataset has: ``id``, ``image``, ``map`` (paths relative to the folder),
``split`` (train/val/test), ``slide``, ``x0``, ``y0`` (level-0 px), ``size0`` (level-0 extent),
``mpp``, ``fractions`` (list of per-class pixel fractions, indexed by class id). Synthetic
datasets add ``seed``, ``map_source``, ``crop_sources`` (JSON), ``sampler``, ``steps``,
``guidance_map`` and ``guidance_crops``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from histosynth.artifacts import (
    ArtifactError,
    Kind,
    atomic_write_bytes,
    read_manifest,
    safe_filename,
    write_manifest,
)
from histosynth.data.classmap import ClassMap
from histosynth.data.png import DEFAULT_PNG_MODE, PNG_MODES, encode_png

if TYPE_CHECKING:
    from histosynth.data.durable_writes import DurableWrites

__all__ = [
    "PatchDataset",
    "PatchDatasetWriter",
    "class_fractions",
    "decode_png",
    "encode_png",
]

REQUIRED_COLUMNS = ("id", "image", "map", "split", "slide", "x0", "y0", "size0", "mpp", "fractions")
# Decoding is refused above this many pixels (a decompression-bomb guard for user folders).
MAX_PIXELS = 16384 * 16384


def decode_png(path: str | Path, mode: str) -> np.ndarray:
    """Read an image as RGB (``mode="RGB"``) or as a label map (``mode="L"``), safely."""
    from PIL import Image

    from histosynth.errors import UnsafeFileError

    try:
        with Image.open(path) as im:
            if im.width * im.height > MAX_PIXELS:
                raise UnsafeFileError(
                    f"{path}: image of {im.width}×{im.height} px is too large to decode safely"
                )
            if mode == "L" and im.mode not in ("L", "P"):
                raise ArtifactError(
                    f"{path}: a label map must be a single-channel 8-bit PNG, got mode {im.mode}"
                )
            return np.asarray(im.convert(mode) if im.mode != mode and mode == "RGB" else im)
    except (UnsafeFileError, ArtifactError):
        raise
    except Image.DecompressionBombError:  # Pillow refuses twice its own limit before our check
        raise UnsafeFileError(f"{path}: image is too large to decode safely") from None
    except FileNotFoundError:
        raise ArtifactError(f"{path}: file not found") from None
    except Exception as exc:  # Pillow raises many types on truncated or foreign files
        raise ArtifactError(f"{path}: cannot decode the image ({type(exc).__name__}: {exc})") from None


def class_fractions(label: np.ndarray, num_classes: int, counts: np.ndarray | None = None) -> list[float]:
    """Fraction of pixels of each class id 0..num_classes-1 (from ``counts``, the label's
    per-class pixel counts, when the caller has them already)."""
    if counts is None:
        from histosynth.data.composition import label_counts

        counts = label_counts(label, num_classes)
    return (counts / max(label.size, 1)).astype(float).tolist()


class PatchDatasetWriter:
    """Writes a patch dataset resumably: patches and per-key row shards, then index + manifest.

    Parameters
    ----------
    folder
        The dataset folder (claimed beforehand with :func:`histosynth.artifacts.prepare_output`).
    classes
        The class map; saved as ``classes.json``.
    png
        How images and maps are encoded (:data:`histosynth.data.png.PNG_MODES`; with
        ``stored`` the maps are written ``fast``): the pixels are the same whichever is chosen,
        so it is not part of the dataset's identity.
    sink
        Where the files go (:class:`~histosynth.data.durable_writes.DurableWrites`: background
        I/O threads); ``None`` writes each file before :meth:`write_patch` returns. Either way
        :meth:`write_shard` records rows only once their files are on disk.
    """

    def __init__(
        self,
        folder: str | Path,
        classes: ClassMap,
        png: str = DEFAULT_PNG_MODE,
        sink: DurableWrites | None = None,
    ) -> None:
        if png not in PNG_MODES:
            raise ValueError(f"unknown PNG mode {png!r}; choose one of {', '.join(PNG_MODES)}")
        self.folder = Path(folder)
        self.classes = classes
        self.png = png
        self.sink = sink
        (self.folder / "images").mkdir(parents=True, exist_ok=True)
        (self.folder / "maps").mkdir(parents=True, exist_ok=True)
        classes.save(self.folder / "classes.json")

    def write_patch(
        self, pid: str, image: np.ndarray, label: np.ndarray, counts: np.ndarray | None = None
    ) -> dict[str, Any]:
        """Write one image/map pair atomically; returns the row fields it fills (``counts``: the
        map's pixels per class id, when known, saves counting them again)."""
        if image.shape[:2] != label.shape:
            raise ValueError(f"patch {pid}: image {image.shape[:2]} and map {label.shape} differ in size")
        img_rel, map_rel = f"images/{pid}.png", f"maps/{pid}.png"
        write = atomic_write_bytes if self.sink is None else self.sink.submit
        write(self.folder / img_rel, encode_png(image, self.png))
        # A label map compresses about 100-fold at almost no cost: "stored" keeps it compressed.
        map_mode = "fast" if self.png == "stored" else self.png
        write(self.folder / map_rel, encode_png(label.astype(np.uint8), map_mode))
        fractions = class_fractions(label, self.classes.num_classes, counts)
        return {"id": pid, "image": img_rel, "map": map_rel, "fractions": fractions}

    def write_shard(self, key: str, rows: Iterable[Mapping[str, Any]]) -> int:
        """Write the rows of one unit of work (a slide, a batch) atomically; returns the count."""
        import io

        import pandas as pd

        df = pd.DataFrame(list(rows))
        if self.sink is not None:
            self.sink.flush()  # a shard marks its patches done: they must be on disk first
        buf = io.BytesIO()
        df.to_parquet(buf, index=False)
        atomic_write_bytes(self.folder / "_shards" / f"{safe_filename(key)}.parquet", buf.getvalue())
        return len(df)

    def finalize(
        self,
        keys: Iterable[str],
        config: Mapping[str, Any],
        inputs: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """Merge the shards of ``keys`` (in that order) into ``index.parquet``; write the manifest."""
        import pandas as pd

        frames = []
        for key in keys:
            shard = self.folder / "_shards" / f"{safe_filename(key)}.parquet"
            if shard.is_file():
                frames.append(pd.read_parquet(shard))
        frames = [f for f in frames if len(f)]
        df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(REQUIRED_COLUMNS))
        buf_path = self.folder / "index.parquet"
        import io

        buf = io.BytesIO()
        df.to_parquet(buf, index=False)
        atomic_write_bytes(buf_path, buf.getvalue())
        counts = {"patches": int(len(df))}
        if len(df) and "split" in df:
            counts.update({f"split_{k}": int(v) for k, v in df["split"].value_counts().items()})
        return write_manifest(
            self.folder, Kind.PATCH_DATASET, config, inputs, counts, classes=self.classes.to_json(), **extra
        )


class PatchDataset:
    """Read a finished patch dataset (real or synthetic).

    Parameters
    ----------
    folder
        A folder written by :class:`PatchDatasetWriter`.
    split
        Keep only rows of this split (``None``: all).

    Raises
    ------
    ArtifactError
        When the folder is incomplete, misses files, or its index points outside the folder.
    """

    def __init__(self, folder: str | Path, split: str | None = None) -> None:
        import pandas as pd

        self.folder = Path(folder).resolve()
        self.manifest = read_manifest(self.folder, Kind.PATCH_DATASET)
        self.classes = ClassMap.from_json(self.folder / "classes.json")
        index = pd.read_parquet(self.folder / "index.parquet")
        missing = [c for c in REQUIRED_COLUMNS if c not in index.columns]
        if missing:
            raise ArtifactError(f"{self.folder / 'index.parquet'}: missing columns {missing}")
        # Every listed file must be inside the folder and present: a dataset with a hole fails
        # here, in one sentence, not hours into training. Unlisted (extra) files are never read.
        absent = [rel for col in ("image", "map") for rel in index[col] if not self._resolve(rel).is_file()]
        if absent:
            raise ArtifactError(
                f"{self.folder}: {len(absent)} file(s) listed in index.parquet are missing, e.g. {absent[0]!r}"
            )
        if split is not None:
            index = index[index["split"] == split].reset_index(drop=True)
        self.index = index
        self.id = self.manifest["id"]

    def _resolve(self, rel: str) -> Path:
        path = (self.folder / rel).resolve()
        if not path.is_relative_to(self.folder):
            raise ArtifactError(f"{self.folder / 'index.parquet'}: path {rel!r} points outside the dataset")
        return path

    def __len__(self) -> int:
        return len(self.index)

    def image(self, i: int) -> np.ndarray:
        """RGB uint8 (H, W, 3) of row ``i``."""
        return decode_png(self._checked(self.index.at[i, "image"]), "RGB")

    def label(self, i: int) -> np.ndarray:
        """Class-id map uint8 (H, W) of row ``i``."""
        return decode_png(self._checked(self.index.at[i, "map"]), "L")

    def _checked(self, rel: str) -> Path:
        path = self._resolve(rel)
        if not path.is_file():
            raise ArtifactError(f"{path}: listed in index.parquet but missing")
        return path

    def __getitem__(self, i: int) -> dict[str, Any]:
        row = self.index.iloc[i].to_dict()
        return {"image": self.image(i), "map": self.label(i), "row": row}

    def __repr__(self) -> str:
        return f"PatchDataset({str(self.folder)!r}, n={len(self)}, classes={self.classes.names})"
