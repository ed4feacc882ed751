"""The ``tile`` stage over a batch of slides: resumable per slide, bad slides reported.

>>> from histosynth.wsi.tile_stage import run
>>> result = run(["slides/"], "tiles", TileConfig(mpp=1.0, size=64))   # doctest: +SKIP
>>> result.manifest["counts"]["tiles"], result.summary.failed            # doctest: +SKIP

Output folder (artefact kind ``tiles``)::

    tiles.parquet        one row per kept patch (columns: TILE_COLUMNS, slide_mpp[, fractions])
    qc/<slide>.png       thumbnail + kept grid | tissue mask + grid coloured by class
    masks/<slide>.png    the thumbnail tissue mask (255 = tissue), used by ``dataset``
    masks/<slide>.thumb.png   the thumbnail it was computed on
    _shards/<slide>.parquet, _journal.jsonl   per-slide progress (resume)
    manifest.json        written last; ``slides`` holds per-slide facts, ``failed`` the reasons
"""

from __future__ import annotations

import functools
import hashlib
import io
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from histosynth.artifacts import (
    Kind,
    StageResult,
    atomic_write_bytes,
    file_fingerprint,
    prepare_output,
    read_manifest,
    write_manifest,
)
from histosynth.config import ConfigError, config_to_dict
from histosynth.data.splits import assign_splits
from histosynth.jobs import run_items
from histosynth.wsi.tiling import TileConfig, tile_slide

if TYPE_CHECKING:
    from histosynth.distributed.executors import Executor
    from histosynth.wsi.schemes import LabelScheme

__all__ = ["SLIDE_SUFFIXES", "find_slides", "read_tiles", "run"]

SLIDE_SUFFIXES = (
    ".svs",
    ".tif",
    ".tiff",
    ".ndpi",
    ".mrxs",
    ".scn",
    ".vms",
    ".vmu",
    ".bif",
    ".svslide",
    ".png",
    ".jpg",
    ".jpeg",
)
# Files next to slides that are not slides: label masks and generated label pictures.
_NOT_SLIDES = ("_mask.", ".labels.")


def find_slides(inputs: Iterable[str | Path]) -> dict[str, Path]:
    """Slide name (file stem) → path, from files and folders (searched one level deep).

    Raises
    ------
    ConfigError
        When an input does not exist, nothing is found, or two slides share a name.
    """
    found: dict[str, Path] = {}
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            paths = sorted(
                q
                for q in p.iterdir()
                if q.is_file()
                and q.suffix.lower() in SLIDE_SUFFIXES
                and not any(t in q.name for t in _NOT_SLIDES)
            )
        elif p.is_file():
            paths = [p]
        else:
            raise ConfigError(f"{p}: no such slide file or folder")
        for q in paths:
            if q.stem in found and found[q.stem].resolve() != q.resolve():
                raise ConfigError(
                    f"{q}: another slide is also named {q.stem!r} ({found[q.stem]}); names must be unique"
                )
            found[q.stem] = q
    if not found:
        raise ConfigError(
            f"no slides found in {', '.join(map(str, inputs))} (suffixes: {' '.join(SLIDE_SUFFIXES)})"
        )
    return dict(sorted(found.items()))


def _labels_for(width: int, height: int, *, annotations: Path, scheme: Any, slide: str) -> Any:
    from histosynth.wsi.label_sources import find_annotation, load_label_source

    path = find_annotation(annotations, slide)
    if path is None:
        return None
    return load_label_source(path, scheme, (width, height)), scheme.fill_id


def _tile_one(
    slide: str, item: dict[str, str], *, folder: str, cfg: TileConfig, annotations: str | None, scheme: Any
) -> dict[str, Any]:
    labels = None
    if annotations is not None:
        labels = functools.partial(_labels_for, annotations=Path(annotations), scheme=scheme, slide=slide)
    info = tile_slide(slide, item["path"], item["split"], folder, cfg, labels=labels)
    if annotations is not None:
        from histosynth.wsi.label_sources import find_annotation

        found = find_annotation(annotations, slide)
        info["annotation"] = str(found) if found else None
    return info


def run(
    slides: Mapping[str, str | Path] | Iterable[str | Path],
    out: str | Path,
    cfg: TileConfig | None = None,
    *,
    annotations: str | Path | None = None,
    classes: LabelScheme | str | None = None,
    executor: Executor | None = None,
    overwrite: bool = False,
    show_progress: bool = True,
) -> StageResult:
    """Tile every slide into ``out``, resuming a previous run of the same settings.

    Parameters
    ----------
    slides
        Slide name → path, or slide files and folders (see :func:`find_slides`).
    out
        The tiles folder.
    cfg
        Tiling settings (default :class:`~histosynth.wsi.tiling.TileConfig`).
    annotations, classes
        Optional annotation folder and its label scheme (a
        :class:`~histosynth.wsi.schemes.LabelScheme`, a classes.json or a preset name): adds
        class fractions to the table and colours the QC grid.
    executor
        Where slides are tiled (:mod:`histosynth.distributed.executors`; default: here). Each
        slide writes its own shard, merged in slide order, so the table is the same whichever
        executor ran it.
    overwrite
        Replace a folder that holds another artefact.

    Returns
    -------
    StageResult
        The folder, its manifest (``slides`` holds per-slide facts, ``failed`` the reasons) and
        the per-slide outcome.
    """
    cfg = cfg or TileConfig()
    if not isinstance(slides, Mapping):
        slides = find_slides(slides)
    slides = {name: Path(path) for name, path in slides.items()}
    if (annotations is None) != (classes is None):
        raise ConfigError("--annotations and --classes go together: give both or neither")
    scheme = classes
    if isinstance(classes, str):
        from histosynth.wsi.schemes import load_scheme

        scheme = load_scheme(classes)
    splits = assign_splits(slides, cfg.split, cfg.seed)
    config = config_to_dict(cfg)
    if annotations is not None:
        config["labels"] = {
            "annotations": str(Path(annotations).resolve()),
            "classes": scheme.classes.to_json(),
            "aliases": dict(scheme.aliases),
            "fill": scheme.fill,
        }
    # By name and content, not path: moving the slides or the repository keeps the artefact id.
    listing = "\n".join(f"{k}\t{file_fingerprint(v)}" for k, v in sorted(slides.items()))
    inputs = {"slides": "slides-" + hashlib.sha256(listing.encode()).hexdigest()[:16]}
    folder = prepare_output(out, Kind.TILES, config, inputs, overwrite=overwrite).folder
    work = functools.partial(
        _tile_one,
        folder=str(folder),
        cfg=cfg,
        annotations=None if annotations is None else str(annotations),
        scheme=scheme,
    )
    items = [(name, {"path": str(path), "split": splits[name]}) for name, path in slides.items()]
    summary = run_items(items, work, folder, desc="tile", executor=executor, show_progress=show_progress)
    done = summary.outputs()
    n_tiles = _merge_shards(folder, [k for k in slides if k in done])
    manifest = write_manifest(
        folder,
        Kind.TILES,
        config,
        inputs,
        counts={"slides": len(slides), "done": len(done), "failed": len(summary.failed), "tiles": n_tiles},
        slides={k: done[k] for k in slides if k in done},
        failed=[{"slide": r.key, "reason": r.error} for r in summary.failed],
    )
    return StageResult(folder, manifest, summary)


def _merge_shards(folder: Path, keys: list[str]) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    tables = [pq.read_table(folder / "_shards" / f"{k}.parquet") for k in keys]
    if tables:
        table = pa.concat_tables(tables, promote_options="default")
    else:
        table = pa.table({c: pa.array([], t) for c, t in _EMPTY_SCHEMA})
    buf = io.BytesIO()
    pq.write_table(table, buf)
    atomic_write_bytes(folder / "tiles.parquet", buf.getvalue())
    return table.num_rows


_EMPTY_SCHEMA = [
    ("slide", "string"),
    ("slide_path", "string"),
    ("x0", "int64"),
    ("y0", "int64"),
    ("size0", "float64"),
    ("size", "int64"),
    ("mpp", "float64"),
    ("level", "int64"),
    ("tissue", "float64"),
    ("split", "string"),
    ("slide_mpp", "float64"),
]


def read_tiles(tiles: str | Path):
    """The tiles table and manifest of a finished ``tile`` run, as (DataFrame, dict)."""
    import pandas as pd

    manifest = read_manifest(tiles, Kind.TILES)
    return pd.read_parquet(Path(tiles) / "tiles.parquet"), manifest
