"""The ``cluster`` stage: embeddings → cluster model, per-sub-tile labels and per-slide label grids.

1. Fitting sample: from each slide, at most ``per_slide`` tissue sub-tiles, stratified for
   diversity (:func:`~histosynth.cluster.kmeans.diverse_sample`), seeded per slide.
2. Model: preprocessing + faiss k-means at the finest k, plus nested coarser levels in
   hierarchical mode; saved as ``model.npz``. A model from an earlier run (``model=``) is
   applied instead, so new slides get the same pseudo-classes.
3. Apply, per slide and resumably (:func:`histosynth.jobs.run_items`): labels of every
   sub-tile at every level (0 for sub-tiles below ``min_tissue``) and the painted grids.

Output folder::

    model.npz  hierarchy.json  fit_sample.parquet  assignments.parquet  grids/<slide>.npz  report/
    manifest.json
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from histosynth.artifacts import Kind, StageResult
from histosynth.cluster.model import ClusterModel, Normalize, fit_model
from histosynth.cluster.pseudo_maps import paint_grid
from histosynth.config import ConfigError, config_to_dict, register_presets

__all__ = ["ClusterConfig", "ReportConfig", "annotation_truth", "run"]


@dataclass(frozen=True)
class ReportConfig:
    """What the HTML report computes and shows.

    Attributes
    ----------
    enabled
        Write ``report/index.html``.
    examples
        Example sub-tiles per cluster mosaic.
    stability_seeds
        Extra seeds refitted to measure stability (adjusted Rand index against the model).
    sample
        Vectors used for silhouette and stability (a subsample of the fitting sample).
    overlay_slides
        Slides shown with their pseudo-maps over a thumbnail.
    max_slides
        Slides (a seeded choice) that examples, overlays and purity are drawn from.
    """

    enabled: bool = True
    examples: int = 16
    stability_seeds: int = 3
    sample: int = 5000
    overlay_slides: int = 4
    max_slides: int = 64


@dataclass(frozen=True)
class ClusterConfig:
    """Settings of ``histosynth cluster``.

    Attributes
    ----------
    k
        Clusters at the finest level.
    levels
        Coarser levels of hierarchical mode (e.g. ``(5, 10, 20, 50)``); each must be < ``k``.
    per_slide
        At most this many vectors per slide in the fitting sample.
    strata
        Groups per slide for the diversity-aware sample (1: uniform).
    min_tissue
        Sub-tiles with a lower tissue fraction are background (id 0) and not clustered.
    normalize, pca
        Preprocessing fitted on the sample (``"standardize"`` suits mixed-scale features).
    niter, nredo, seed
        k-means settings.
    train_per_centroid
        k-means trains on at most this many sample vectors per centroid (0: all of them).
    """

    k: int = 100
    levels: tuple[int, ...] = ()
    per_slide: int = 1000
    strata: int = 16
    min_tissue: float = 0.5
    normalize: Normalize = "standardize"
    pca: int = 0
    niter: int = 25
    nredo: int = 1
    seed: int = 0
    train_per_centroid: int = 1024
    report: ReportConfig = field(default_factory=ReportConfig)

    def __post_init__(self) -> None:
        if not 2 <= self.k <= 255:
            raise ValueError(f"k must lie in 2..255 (ids are uint8 map pixels), got {self.k}")
        if any(not 1 <= v < self.k for v in self.levels):
            raise ValueError(f"levels {list(self.levels)} must each lie in 1..k-1 (k={self.k})")
        if self.per_slide < 1 or not 0 <= self.min_tissue <= 1:
            raise ValueError("per_slide must be ≥ 1 and min_tissue in [0, 1]")

    @property
    def all_levels(self) -> tuple[int, ...]:
        return tuple(sorted({*self.levels, self.k}))


register_presets(ClusterConfig, {
    "flat": {"k": 100},
    "hierarchical": {"k": 100, "levels": [5, 10, 20, 50]},
    "small": {"k": 8, "levels": [3], "per_slide": 4000},
})  # fmt: skip


def _fit_sample(store: Any, cfg: ClusterConfig, show_progress: bool) -> tuple[np.ndarray, Any]:
    """The diversity-aware sample: vectors (float32) and their (slide, row)."""
    import pandas as pd

    from histosynth.cluster.kmeans import diverse_sample
    from histosynth.progress import progress
    from histosynth.seeding import item_seed

    xs, refs = [], []
    for slide in progress(store.slides, desc="sample", disable=not show_progress):
        idx = store.slide_index(slide)
        rows = idx["row"].to_numpy()[idx["tissue"].to_numpy() >= cfg.min_tissue]
        if len(rows) == 0:
            continue
        feats = np.asarray(store.features(slide)[np.sort(rows)], np.float32)
        pick = diverse_sample(feats, cfg.per_slide, seed=item_seed(cfg.seed, "sample", slide) % 2**31,
                              strata=cfg.strata)  # fmt: skip
        xs.append(feats[pick])
        refs.append(pd.DataFrame({"slide": slide, "row": np.sort(rows)[pick]}))
    if not xs:
        raise ConfigError(f"cluster: no sub-tile has a tissue fraction ≥ min_tissue={cfg.min_tissue}")
    x = np.concatenate(xs)
    if len(x) < cfg.k:
        raise ConfigError(f"cluster: only {len(x)} tissue vectors for k={cfg.k}; lower k or raise per_slide")
    return x, pd.concat(refs, ignore_index=True)


@dataclass
class _ApplySlide:
    """Per-slide work: labels at every level and the painted grids, written atomically."""

    store: Any
    model: ClusterModel
    cfg: ClusterConfig
    folder: Path

    def __call__(self, slide: str, _: Any) -> dict[str, Any]:
        from histosynth.artifacts import atomic_write_bytes, safe_filename

        idx = self.store.slide_index(slide)
        tissue = idx["tissue"].to_numpy() >= self.cfg.min_tissue
        feats = self.store.features(slide)
        fine = np.full(len(idx), -1, np.int64)
        rows = np.flatnonzero(tissue)
        for i in range(0, len(rows), 65536):  # bounded memory for large slides
            chunk = rows[i : i + 65536]
            fine[chunk] = self.model.predict_fine(np.asarray(feats[chunk], np.float32))
        arrays: dict[str, np.ndarray] = {}
        sizes: dict[str, list[int]] = {}
        stride = int(self.store.manifest["geometry"]["stride"])
        for k in self.model.levels:
            lab = np.zeros(len(idx), np.uint8)
            lab[tissue] = self.model.maps[k][fine[tissue]] + 1
            grid, ox, oy, cell = paint_grid(idx, lab, stride)
            arrays[f"rows_k{k}"], arrays[f"k{k}"] = lab, grid
            sizes[str(k)] = np.bincount(lab, minlength=k + 1).tolist()
        arrays.update(origin_x=np.float64(ox), origin_y=np.float64(oy), cell=np.float64(cell))
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        rel = f"grids/{safe_filename(slide)}.npz"
        atomic_write_bytes(self.folder / rel, buf.getvalue())
        return {"grid": rel, "vectors": len(idx), "tissue": int(tissue.sum()), "sizes": sizes}


def run(
    embeddings: str | Path,
    out: str | Path,
    cfg: ClusterConfig | None = None,
    *,
    model: str | Path | None = None,
    truth: dict[str, Any] | None = None,
    opener: Any = None,
    overwrite: bool = False,
    show_progress: bool = True,
) -> StageResult:
    """Fit (or apply) the cluster model and paint pseudo-maps.

    >>> result = run("embeddings", "clusters", ClusterConfig(k=6))      # doctest: +SKIP
    >>> result.manifest["levels"], result.manifest["report"]["path"]    # doctest: +SKIP

    Parameters
    ----------
    embeddings
        A finished ``histosynth embed`` folder.
    out
        The cluster folder (resumed when it holds an unfinished run of the same config).
    cfg
        Stage settings.
    model
        A ``model.npz`` from an earlier run to apply instead of fitting (same encoder required).
    truth
        Optional slide → :class:`~histosynth.wsi.labels.LabelSource` of real annotations (see
        :func:`annotation_truth`); the report then measures purity against them.
    opener
        ``opener(slide_path, mpp) -> SlideReader`` for the report's pictures (default
        :func:`histosynth.wsi.open_slide`).
    overwrite
        Replace a folder that holds another artefact.

    Returns
    -------
    StageResult
        The folder, its manifest (levels, sizes, grids, report) and the outcome per slide.
    """
    from histosynth.artifacts import file_sha256, prepare_output, read_manifest, write_manifest
    from histosynth.embed.store import EmbeddingStore
    from histosynth.jobs import RunSummary, run_items

    cfg = cfg or ClusterConfig()
    store = EmbeddingStore(embeddings)
    given = ClusterModel.load(model) if model is not None else None
    inputs = {"embeddings": store.id}
    if given is not None:
        _check_compatible(given, store, model)
        inputs["model"] = f"model-{file_sha256(model)[:16]}"
        cfg = _levels_of(given, cfg)
    config = config_to_dict(cfg)
    claim = prepare_output(out, Kind.CLUSTERS, config, inputs, overwrite=overwrite)
    folder = claim.folder
    if claim.complete:
        return StageResult(folder, read_manifest(folder, Kind.CLUSTERS), RunSummary.recorded(folder))
    model_path = folder / "model.npz"
    if given is not None:
        given.save(model_path)
    elif not model_path.is_file():  # fitted already by an interrupted run of this config
        x, refs = _fit_sample(store, cfg, show_progress)
        fitted, _ = fit_model(x, cfg.all_levels, cfg.seed, cfg.niter, cfg.nredo, cfg.normalize, cfg.pca,
                              meta={"encoder": store.encoder["identity"], "embeddings": store.id},
                              train_per_centroid=cfg.train_per_centroid)  # fmt: skip
        _write_parquet(refs, folder / "fit_sample.parquet")
        fitted.save(model_path)
    cmodel = ClusterModel.load(model_path)
    _write_hierarchy(cmodel, folder)
    items = [(s, None) for s in store.slides]
    summary = run_items(items, _ApplySlide(store, cmodel, cfg, folder), folder, desc="cluster",
                        show_progress=show_progress)  # fmt: skip
    outputs = summary.outputs()
    done = [s for s in store.slides if s in outputs]
    _write_assignments(store, cmodel, done, outputs, folder)
    counts = {
        "slides": len(done),
        "failed": len(summary.failed),
        "vectors": int(sum(outputs[s]["vectors"] for s in done)),
        "tissue_vectors": int(sum(outputs[s]["tissue"] for s in done)),
    }
    sizes = {str(k): np.sum([outputs[s]["sizes"][str(k)] for s in done], axis=0).astype(int).tolist()
             for k in cmodel.levels} if done else {}  # fmt: skip
    extra = {
        "levels": list(cmodel.levels),
        "sizes": sizes,
        "encoder": store.encoder,
        "model": {"path": "model.npz", "sha256": file_sha256(model_path), "fitted_here": given is None},
        "grids": {s: outputs[s]["grid"] for s in done},
        "failures": {r.key: r.error for r in summary.failed},
        "background_id": 0,
    }
    if cfg.report.enabled and done:
        from histosynth.cluster.report import write_report

        extra["report"] = write_report(folder, store, cmodel, cfg, done, extra, truth=truth, opener=opener,
                                       show_progress=show_progress)  # fmt: skip
    return StageResult(
        folder, write_manifest(folder, Kind.CLUSTERS, config, inputs, counts, **extra), summary
    )


def annotation_truth(embeddings: str | Path, annotations: str | Path, classes: Any) -> dict[str, Any]:
    """Label sources of the slides of ``embeddings`` that have an annotation file in
    ``annotations`` (as for ``tile`` and ``dataset``), for the report's purity.

    Parameters
    ----------
    classes
        The annotations' label scheme, a classes.json or a preset name.
    """
    from histosynth.embed.store import EmbeddingStore
    from histosynth.embed.subtiles import default_opener
    from histosynth.wsi.label_sources import annotation_labels, find_annotation

    store = EmbeddingStore(embeddings)
    sizes = {}
    for slide in store.slides:
        if find_annotation(annotations, slide) is None:
            continue
        first = store.slide_index(slide).iloc[0]
        with default_opener(str(first.slide_path), float(first.slide_mpp)) as reader:
            sizes[slide] = reader.dimensions
    labels = annotation_labels(sizes, annotations, classes)
    return {slide: load() for slide, load in labels.sources.items()}


def _check_compatible(model: ClusterModel, store: Any, path: Any) -> None:
    if model.dim != store.dim:
        raise ConfigError(
            f"{path}: fitted on {model.dim}-dimensional features, these embeddings have {store.dim}"
        )
    want, have = model.meta.get("encoder"), store.encoder["identity"]
    if want and want != have:
        raise ConfigError(
            f"{path}: fitted on features of encoder {want!r}, these embeddings come from {have!r}"
        )


def _levels_of(model: ClusterModel, cfg: ClusterConfig) -> ClusterConfig:
    """A given model fixes the levels; record them in the config."""
    import dataclasses

    return dataclasses.replace(cfg, k=model.k, levels=tuple(v for v in model.levels if v != model.k))


def _write_assignments(store: Any, model: ClusterModel, done: list[str], outputs: dict, folder: Path) -> None:
    """``assignments.parquet``: slide, row, and the id at every level of every sub-tile (streamed)."""
    from histosynth.cluster.pseudo_maps import assignments_of
    from histosynth.embed.store import merge_parquet

    merge_parquet((assignments_of(folder / outputs[s]["grid"], s, model.levels) for s in done),
                  folder / "assignments.parquet")  # fmt: skip


def _write_hierarchy(model: ClusterModel, folder: Path) -> None:
    """``hierarchy.json``: the parent, at every coarser level, of each fine id (0 → 0: background)."""
    from histosynth.artifacts import atomic_write_json

    atomic_write_json(folder / "hierarchy.json", model.hierarchy())


def _write_parquet(df: Any, path: Path) -> None:
    from histosynth.artifacts import atomic_write_bytes

    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    atomic_write_bytes(path, buf.getvalue())
