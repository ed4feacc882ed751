"""The ``dataset`` stage: tiles + label sources → a patch dataset of heterogeneous patches.

Two resumable passes, both through :func:`histosynth.jobs.run_items`:

1. *plan*, per slide: rasterise every tissue tile's map at the target mpp (labels only, no
   pixels read), measure its class composition and choose the patches to keep
   (:func:`~histosynth.data.composition.select_patches`); the choice goes to
   ``_plan/<slide>.parquet`` and the slide's QC picture to ``qc/<slide>.png``.
2. *extract*, per chunk of planned patches (so one large slide still uses every worker):
   read each kept patch at the target mpp, rasterise its map, write both with
   :class:`~histosynth.data.patch_dataset.PatchDatasetWriter` and the rows as a shard.

When a fill class is set, tissue that no annotation covers takes that class: in the plan it
comes from the thumbnail tissue mask, in the written map from the patch's own pixels (the
slide's saturation threshold), so map borders follow the tissue at full resolution.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import pickle
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from histosynth.artifacts import (
    Kind,
    StageResult,
    atomic_write_bytes,
    atomic_write_json,
    prepare_output,
    safe_filename,
)
from histosynth.config import ConfigError, config_to_dict, register_presets
from histosynth.data.classmap import ClassMap
from histosynth.data.composition import SamplingConfig, composition, label_counts, select_patches
from histosynth.data.durable_writes import DurableWrites
from histosynth.data.patch_dataset import PatchDatasetWriter
from histosynth.data.png import DEFAULT_PNG_MODE
from histosynth.distributed.cache import per_worker
from histosynth.heap import trim
from histosynth.jobs import RunSummary, run_items
from histosynth.seeding import numpy_rng

if TYPE_CHECKING:
    from histosynth.distributed.executors import Executor
    from histosynth.wsi.labels import LabelSet

__all__ = ["DatasetConfig", "run"]

# I/O threads per extraction chunk: enough concurrent fsyncs that one journal commit serves
# many files (16: 0.5 ms per file on ext4, against 4 ms synced one at a time).
IO_THREADS = 16
SourceLike = Any  # a LabelSource, or a zero-argument callable returning one (loaded per slide)


@dataclass(frozen=True)
class DatasetConfig:
    """The ``dataset`` stage's settings.

    Attributes
    ----------
    sampling
        The keep rule, caps and balancing.
    fill
        Class name for tissue that no label covers (``None``: it stays class 0).
    seed
        Seeds each slide's patch selection.
    chunk
        Patches per extraction work item (resume granularity, load balance).
    """

    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    fill: str | None = None
    seed: int = 0
    chunk: int = 128

    def __post_init__(self) -> None:
        if self.chunk < 1:
            raise ValueError(f"chunk must be at least 1, got {self.chunk}")


register_presets(
    DatasetConfig,
    {
        "paper": {},
        "balanced": {"sampling": {"balance": True}},
        "with-homogeneous": {"sampling": {"homogeneous_share": 0.2}},
        "all": {"sampling": {"rule": "any"}},
    },
)


def _source(key: str, source: SourceLike) -> Any:
    """Resolve a lazy source once per process (extraction chunks of a slide share it).

    ``key`` names the artefact and the slide, so a later build in the same process (other
    annotations for a slide of the same name) never sees a stale source.
    """
    if hasattr(source, "label_region"):
        return source
    return per_worker(("label-source", key), source)


def _parquet(path: Path, rows: Mapping[str, Any]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    buf = io.BytesIO()
    pq.write_table(pa.table(dict(rows)), buf)
    atomic_write_bytes(path, buf.getvalue())


# ----------------------------------------------------------------------------------- plan
def _plan_slide(
    slide: str,
    item: dict[str, Any],
    *,
    folder: str,
    config_id: str,
    tiles: str,
    source: SourceLike,
    num_classes: int,
    fill_id: int | None,
    cfg: DatasetConfig,
    colors: np.ndarray,
) -> dict[str, Any]:
    from histosynth.wsi.qc import qc_picture
    from histosynth.wsi.tiling import load_tissue_mask, save_png

    src = _source(f"{folder}:{config_id}:{slide}", source)
    tissue = load_tissue_mask(tiles, slide, item["info"])
    x0, y0 = np.asarray(item["x0"]), np.asarray(item["y0"])
    size0, size = float(item["size0"]), int(item["size"])
    counts = np.zeros((len(x0), num_classes), np.int64)
    for i in range(len(x0)):
        label = src.label_region(int(x0[i]), int(y0[i]), size0, size)
        if fill_id is not None:
            label[(label == 0) & tissue.region(int(x0[i]), int(y0[i]), size0, size)] = fill_id
        counts[i] = label_counts(label, num_classes)
    sel = select_patches(
        counts, np.asarray(item["tissue"]), cfg.sampling, numpy_rng(cfg.seed, "select", slide)
    )
    k = sel.index
    _parquet(
        Path(folder) / "_plan" / f"{safe_filename(slide)}.parquet",
        {
            "x0": x0[k],
            "y0": y0[k],
            "tissue": np.asarray(item["tissue"])[k],
            "split": np.asarray(item["split"])[k],
            "homogeneous": sel.homogeneous,
            "bin": sel.bin,
        },
    )
    comp = composition(counts[k])
    dominant = colors[comp[:, 1:].argmax(1) + 1] if len(k) else np.zeros((0, 3), np.uint8)
    save_png(
        Path(folder) / "qc" / f"{safe_filename(slide)}.png", qc_picture(tissue, x0[k], y0[k], size0, dominant)
    )
    het = int((~sel.homogeneous).sum())
    return {"candidates": len(x0), "kept": len(k), "heterogeneous": het, "homogeneous": len(k) - het}


# -------------------------------------------------------------------------------- extract
def _extract_chunk(
    key: str,
    item: dict[str, Any],
    *,
    folder: str,
    config_id: str,
    classes: ClassMap,
    source: SourceLike,
    fill_id: int | None,
    max_brightness: float,
    png: str = DEFAULT_PNG_MODE,
) -> int:
    import itertools
    from collections import deque
    from concurrent.futures import Future

    from histosynth.data.durable_writes import shared_pool
    from histosynth.distributed.executors import item_cores
    from histosynth.wsi.readers import open_slide

    slide = item["slide"]
    src = _source(f"{folder}:{config_id}:{slide}", source)
    keys = ("x0", "y0", "tissue", "homogeneous", "bin", "split")
    # Reading (OpenSlide, tifffile) and PNG encoding release the GIL, so threads keep this
    # process's cores busy without the start-up of more processes; one thread more than cores
    # covers the moments a thread holds the GIL. The files go to a wide pool of I/O threads
    # whose fsyncs share journal commits (histosynth.data.durable_writes): synced one by one
    # they cost twice the read. Bounded queues keep memory flat; rows are gathered in patch
    # order, so the shard is the same whatever the thread counts.
    threads = item_cores() + 1
    rows: list[dict[str, Any]] = []
    in_flight: deque[Future] = deque()
    patches = zip(*(item[k] for k in keys), strict=True)
    with (
        DurableWrites(IO_THREADS) as sink,
        open_slide(item["path"], mpp=item["slide_mpp"], reader=item["reader"]) as rd,
    ):
        writer = PatchDatasetWriter(folder, classes, png=png, sink=sink)
        args = (rd, src, writer, item, fill_id, max_brightness)
        # The first patch here, alone: sources build their index or open their file on first
        # use, which threads must not race to do.
        rows += [_extract_patch(*args, *first) for first in itertools.islice(patches, 1)]
        pool = shared_pool(threads, "extract")  # the same threads for every chunk (see shared_pool)
        try:
            for values in patches:
                in_flight.append(pool.submit(_extract_patch, *args, *values))
                if len(in_flight) >= 2 * threads:
                    rows.append(in_flight.popleft().result())
            rows += [fut.result() for fut in in_flight]
        finally:  # a failed patch: the others end before the reader closes under them
            for fut in in_flight:
                fut.cancel() or fut.exception()
        count = writer.write_shard(key, rows)
    trim()  # the threads' arenas keep what they freed: without this a slide's chunks pile up
    return count


def _extract_patch(
    rd: Any,
    src: Any,
    writer: PatchDatasetWriter,
    item: dict[str, Any],
    fill_id: int | None,
    max_brightness: float,
    x0: int,
    y0: int,
    tissue: float,
    homogeneous: bool,
    bin_: int,
    split: str,
) -> dict[str, Any]:
    """Read, label and write one planned patch; returns its index row."""
    from histosynth.wsi.tissue import tissue_mask

    slide, n = item["slide"], writer.classes.num_classes
    size0, size, mpp = float(item["size0"]), int(item["size"]), float(item["mpp"])
    image = rd.read_at_mpp(x0, y0, size, mpp)
    label = src.label_region(x0, y0, size0, size)
    if fill_id is not None:
        tissue_px = tissue_mask(image, item["threshold"], max_brightness, item["window"])
        label[(label == 0) & tissue_px] = fill_id
    counts = label_counts(label, n)
    comp = composition(counts)
    return {
        **writer.write_patch(safe_filename(f"{slide}_{x0}_{y0}"), image, label, counts),
        "split": split,
        "slide": slide,
        "x0": x0,
        "y0": y0,
        "size0": size0,
        "mpp": mpp,
        "tissue": tissue,
        "composition": comp.tolist(),
        "homogeneous": homogeneous,
        "bin": bin_,
    }


# ---------------------------------------------------------------------------------- stage
def run(
    tiles: str | Path,
    out: str | Path,
    cfg: DatasetConfig | None = None,
    *,
    labels: LabelSet,
    splits: Mapping[str, str] | None = None,
    executor: Executor | None = None,
    overwrite: bool = False,
    show_progress: bool = True,
    png: str = DEFAULT_PNG_MODE,
) -> StageResult:
    """Build a patch dataset from a finished ``tile`` run and a set of per-slide labels.

    >>> from histosynth.data.derived_labels import stain_labels
    >>> result = run("tiles", "dataset", labels=stain_labels("tiles"))    # doctest: +SKIP

    Parameters
    ----------
    tiles
        Output of ``histosynth tile``.
    out
        The dataset folder (resumed when it holds the same build).
    cfg
        Sampling rule, fill class, seed (default :class:`DatasetConfig`); without a fill class
        of its own, the label set's applies.
    labels
        The label sources (:class:`~histosynth.wsi.labels.LabelSet`: annotations, stain-derived
        maps or pseudo-maps). Slides of the tiles table without a source are skipped and listed
        in the manifest under ``unlabelled``.
    splits
        Slide → split overriding the tiles table's.
    executor
        Where the items of both passes run (:mod:`histosynth.distributed.executors`; default:
        here). Every item writes its own files and shard, merged in item order, so the dataset
        is the same whichever executor ran it.
    overwrite
        Replace a folder that holds another artefact.
    png
        How patches are encoded (:mod:`histosynth.data.png`): ``fast`` (the default),
        ``compat`` (the bytes of releases before ``fast`` became the default, same size, about
        4× slower to encode) or ``stored`` (no compression). The pixels are the same, so the
        choice is not part of the dataset's identity.

    Returns
    -------
    StageResult
        The folder, its manifest and the outcome per slide (failures carry the reason).
    """
    from histosynth.data.png import PNG_MODES
    from histosynth.wsi.tile_stage import read_tiles

    if png not in PNG_MODES:
        raise ConfigError(f"unknown PNG mode {png!r}; choose one of {', '.join(PNG_MODES)}")
    cfg = cfg or DatasetConfig()
    if cfg.fill is None and labels.fill is not None:
        cfg = dataclasses.replace(cfg, fill=labels.fill)
    classes, sources = labels.classes, labels.sources
    table, tiles_manifest = read_tiles(tiles)
    info = tiles_manifest.get("slides", {})
    fill_id = None if cfg.fill is None else classes.id_of(cfg.fill, where=f"{classes.source}: fill class")
    config = {**config_to_dict(cfg), "classes": classes.to_json()}
    groups = {s: g for s, g in table.groupby("slide", sort=False)}
    slides = [s for s in groups if s in sources]
    unlabelled = [s for s in groups if s not in sources]
    if splits is not None:
        missing = [s for s in slides if s not in splits]
        if missing:
            raise ConfigError(f"split file: no split given for slide {missing[0]!r} ({len(missing)} missing)")
        config["splits"] = {s: splits[s] for s in slides}
    inputs = {"tiles": tiles_manifest["id"], "labels": labels.id}
    claim = prepare_output(out, Kind.PATCH_DATASET, config, inputs, overwrite=overwrite)
    folder = str(claim.folder)
    if executor is not None and not _picklable(sources):
        executor = None  # label sources that cannot cross processes are used in this process
    lut = np.zeros((256, 3), np.uint8)
    for c in classes.classes:
        lut[c.id] = c.color
    split_of = {s: (splits or {}).get(s, str(groups[s]["split"].iloc[0])) for s in slides}
    plan_items = [(s, _plan_item(groups[s], info[s])) for s in slides]
    plan_kw = dict(
        folder=folder,
        config_id=claim.id,
        tiles=str(tiles),
        num_classes=classes.num_classes,
        fill_id=fill_id,
        cfg=cfg,
        colors=lut,
    )
    work = functools.partial(_plan_in_worker, sources=sources, kwargs=plan_kw)
    plan = run_items(
        plan_items,
        work,
        claim.folder / "_plan_journal.jsonl",
        desc="plan",
        executor=executor,
        show_progress=show_progress,
    )
    planned = plan.outputs()
    reader = tiles_manifest["config"].get("reader", "auto")
    chunks = _chunks(
        [s for s in slides if s in planned],
        folder,
        groups,
        info,
        split_of,
        cfg.chunk,
        reader,
        splits is not None,
    )
    max_b = float(tiles_manifest["config"].get("tissue", {}).get("max_brightness", 245.0))
    extract_kw = dict(
        folder=folder, config_id=claim.id, classes=classes, fill_id=fill_id, max_brightness=max_b, png=png
    )
    work = functools.partial(_extract_in_worker, sources=sources, kwargs=extract_kw)
    extract = run_items(
        chunks,
        work,
        claim.folder,
        desc="extract",
        executor=executor,
        show_progress=show_progress,
    )
    summary = _merge(plan, extract)
    writer = PatchDatasetWriter(claim.folder, classes)
    for name, obj in labels.files.items():
        atomic_write_json(claim.folder / name, obj)
    manifest = writer.finalize(
        [k for k, _ in chunks if k in extract.outputs()],
        config,
        inputs,
        slides={s: planned[s] for s in slides if s in planned and s not in {r.key for r in summary.failed}},
        failed=[{"slide": r.key, "reason": r.error} for r in summary.failed],
        unlabelled=unlabelled,
    )
    return StageResult(claim.folder, manifest, summary)


def _plan_in_worker(
    key: str, item: dict[str, Any], *, sources: Mapping[str, SourceLike], kwargs: dict
) -> Any:
    return _plan_slide(key, item, source=sources[key], **kwargs)


def _extract_in_worker(
    key: str, item: dict[str, Any], *, sources: Mapping[str, SourceLike], kwargs: dict
) -> Any:
    return _extract_chunk(key, item, source=sources[item["slide"]], **kwargs)


def _picklable(obj: Any) -> bool:
    try:
        pickle.dumps(obj)
    except Exception:  # any pickling failure means: stay in this process
        return False
    return True


def _plan_item(g: Any, info: Mapping[str, Any]) -> dict[str, Any]:
    """The plan pass's input for one slide: its tiles and the tile stage's facts."""
    return {
        "x0": g["x0"].tolist(),
        "y0": g["y0"].tolist(),
        "tissue": g["tissue"].tolist(),
        "split": g["split"].astype(str).tolist(),
        "size0": float(g["size0"].iloc[0]),
        "size": int(g["size"].iloc[0]),
        "info": info,
    }


def _chunks(
    slides: list[str],
    folder: str,
    groups: Mapping[str, Any],
    info: Mapping[str, Any],
    split_of: Mapping[str, str],
    chunk: int,
    reader: str,
    forced: bool = False,
) -> list[tuple[str, dict[str, Any]]]:
    """Extraction work items: the planned patches of each slide, ``chunk`` at a time."""
    import pyarrow.parquet as pq

    out = []
    for s in slides:
        plan = pq.read_table(Path(folder) / "_plan" / f"{safe_filename(s)}.parquet").to_pydict()
        g = groups[s]
        mpp = float(g["mpp"].iloc[0])
        base = {
            "slide": s,
            "path": str(g["slide_path"].iloc[0]),
            "slide_mpp": float(g["slide_mpp"].iloc[0]),
            "size0": float(g["size0"].iloc[0]),
            "size": int(g["size"].iloc[0]),
            "mpp": mpp,
            "threshold": float(info[s]["threshold"]),
            "reader": reader,
            # the thumbnail pixel's footprint in patch pixels (see tissue_mask)
            "window": max(1, round(info[s]["thumb_scale"] * info[s]["slide_mpp"] / mpp)),
        }
        for j, start in enumerate(range(0, len(plan["x0"]), chunk)):
            part = {k: v[start : start + chunk] for k, v in plan.items()}
            # per-patch splits (region splits) unless a split file decides the slide's split
            if forced or "split" not in part:
                part["split"] = [split_of[s]] * len(part["x0"])
            out.append((f"{s}#{j:05d}", {**base, **part}))
    return out


def _merge(plan: RunSummary, extract: RunSummary) -> RunSummary:
    """Per-slide outcome: a slide failed when its plan or any of its chunks failed."""
    from histosynth.distributed.executors import ItemRecord

    merged = RunSummary(done=list(plan.done), skipped=list(plan.skipped), failed=list(plan.failed))
    seen = {r.key for r in merged.failed}
    for r in extract.failed:
        slide = r.key.rsplit("#", 1)[0]
        if slide not in seen:
            merged.failed.append(ItemRecord(slide, "failed", r.error))
            seen.add(slide)
    merged.done = [k for k in merged.done if k not in seen]
    merged.skipped = [k for k in merged.skipped if k not in seen]
    merged.records = {**plan.records}
    return merged
