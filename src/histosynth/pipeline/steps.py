"""The stage calls of a run, in order: one :class:`Step` per stage folder.

The list is made before anything runs, so the plan can show it and check every stage's
config first. Folders (in ``out``)::

    tiles/                  the slides' patches (split by slide, or by region of one slide)
    dataset/                the training patches: maps from annotations, pseudo-maps or stain
    tiles-embed/            tiles without overlap for the embeddings, when ``tiles`` overlap
    embeddings/, clusters/  the unannotated path (clusters/report/index.html: the tissue types)
    dataset-pseudo/         the unannotated path's patches beside an annotated run (both_paths)
    train/<variant>/        one model per conditioning variant
    crop-bank/              exemplar crops of the training split
    synthetic/<set>/        patches sampled on held-out maps (``<variant>-no-crops``: map only)
    large/<variant>/<i>/    large images (pyramidal TIFF, labels, QuPath GeoJSON)
    evaluation/, report.html

Each is the folder the single-stage command would write from the same settings, so any
command accepts it (``histosynth sample out/train/tokens ...``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from histosynth.diffusion.conditioning import CONDITIONINGS
from histosynth.diffusion.conditioning import SHORT_NAMES as VARIANTS
from histosynth.pipeline import settings
from histosynth.pipeline.config import RunConfig

__all__ = ["PHASES", "Step", "make_steps"]

# The phases of a run, in order: what the numbers of the step titles count.
PHASES = ("tile", "labels", "unannotated", "train", "crops", "sample", "large", "evaluate", "report")


@dataclass(frozen=True)
class Step:
    """One stage call.

    Attributes
    ----------
    phase
        One of :data:`PHASES`.
    title
        What the step does, as the run prints it.
    stage
        A name in :data:`histosynth.stages.STAGES`.
    folder
        What it writes (for ``report``, the page).
    args, kwargs
        The stage's positional arguments (its inputs, ``folder`` and its config) and its
        keyword options.
    variant
        For a training step on a time budget: the variant whose minutes are set when it starts.
    parallel
        The stage takes an ``executor`` (its items can run in worker processes).
    """

    phase: str
    title: str
    stage: str
    folder: Path
    args: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)
    variant: str | None = None
    parallel: bool = False


def make_steps(
    cfg: RunConfig, out: Path, slides: dict[str, Path], source: str, split_by: str, labels: Any = None
) -> list[Step]:
    """Every stage call of a run, in order.

    Parameters
    ----------
    cfg
        The run's settings.
    out
        The run's folder.
    slides
        Slide name → file.
    source
        Where the training maps come from: ``annotations``, ``pseudo`` or ``stain``.
    split_by
        ``slide`` or ``region``.
    labels
        For ``annotations``: ``(annotations folder, label scheme)``.

    Raises
    ------
    ConfigError
        When a stage table holds a wrong key or value, or a variant is unknown.
    """
    tiling = settings.tiling(cfg, split_by)
    tiles, real = out / "tiles", out / "dataset"
    how = "by region" if split_by == "region" else "by slide"
    tile_kwargs: dict[str, Any] = {}
    if source == "annotations":
        tile_kwargs = {"annotations": labels[0], "classes": labels[1]}
    steps = [Step("tile", f"tile the slides (split {how})", "tile", tiles, (slides, tiles, tiling), tile_kwargs,
                  parallel=True)]  # fmt: skip
    if source in ("annotations", "stain"):
        what = "stain-derived maps" if source == "stain" else f"maps from {labels[0]}"
        steps.append(
            _dataset(f"annotated path: {what}, 20-80 % rule", "labels", tiles, real, cfg, source, labels)
        )
    if source == "pseudo":
        steps += _unannotated(cfg, out, slides, (tiles, tiling), real, side=False)
    elif cfg.both_paths:
        steps += _unannotated(cfg, out, slides, (tiles, tiling), out / "dataset-pseudo", side=True)
    runs = {name: out / "train" / name for name in cfg.variants}
    share = cfg.train_minutes(0.0, len(runs)) if cfg.train_steps <= 0 else None  # set again when each starts
    for name, run in runs.items():
        budget = f"{cfg.train_steps} steps" if cfg.train_steps > 0 else "a share of the time budget"
        steps.append(Step("train", f"train variant {name} ({VARIANTS.get(name, '?')}), {budget}", "train", run,
                          (real, run, settings.train_config(cfg, name, share)),
                          variant=name if cfg.train_steps <= 0 else None))  # fmt: skip
    bank = out / "crop-bank"
    steps.append(Step("crops", "crop bank of the training split", "crop-bank", bank,
                      (real, bank, settings.crop_bank_config(cfg))))  # fmt: skip
    steps += _sampling(cfg, out, runs, real, bank)
    syn = {s.folder.name: s.folder for s in steps if s.stage == "sample"}
    ev = out / "evaluation"
    steps.append(Step("evaluate", "evaluate against held-out real patches", "evaluate", ev,
                      (syn, ev, settings.evaluate_config(cfg)), {"real": real}))  # fmt: skip
    steps.append(Step("report", "report", "report", out / "report.html",
                      (ev, out / "report.html", settings.report_config(cfg))))  # fmt: skip
    return steps


def _dataset(title: str, phase: str, tiles: Path, ds: Path, cfg: RunConfig, source: str, labels: Any,
             side: bool = False) -> Step:  # fmt: skip
    """A ``dataset`` step; its label set is made when it runs (it reads the finished tiles)."""
    return Step(phase, title, "dataset", ds, (tiles, ds, settings.dataset_config(cfg, side=side)),
                {"labels": LazyLabels(source, tiles, labels)}, parallel=True)  # fmt: skip


def _unannotated(
    cfg: RunConfig, out: Path, slides: dict[str, Path], tiles: tuple[Path, Any], ds: Path, side: bool
) -> list[Step]:
    """Embeddings → clusters → pseudo-map dataset; ``tiles`` is the run's (folder, config).

    The embeddings need tiles without overlap: the run's own when they have none, else their
    own ``tiles-embed``. Beside an annotated run (``side``) the pseudo-map dataset is cut from
    those too, as nothing trains on it.
    """
    import dataclasses

    folder, tiling = tiles
    emb_tiles = folder
    steps = []
    if side or tiling.overlap > 0:
        emb_tiles = out / "tiles-embed"
        tiling = settings.side_tiling(cfg) if side else dataclasses.replace(tiling, overlap=0)
        steps.append(Step("unannotated", "unannotated path: tiles without overlap", "tile", emb_tiles,
                          (slides, emb_tiles, tiling), parallel=True))  # fmt: skip
    emb, clusters = out / "embeddings", out / "clusters"
    embed = settings.embed_config(cfg)
    steps.append(Step("unannotated", f"unannotated path: sub-tile embeddings ({embed.encoder} encoder)", "embed",
                      emb, (emb_tiles, emb, embed), parallel=True))  # fmt: skip
    steps.append(Step("unannotated", "unannotated path: cluster into tissue types", "cluster", clusters,
                      (emb, clusters, settings.cluster_config(cfg))))  # fmt: skip
    steps.append(_dataset("unannotated path: pseudo-map dataset", "unannotated", emb_tiles if side else folder, ds,
                          cfg, "pseudo", clusters, side=side))  # fmt: skip
    return steps


def _sampling(cfg: RunConfig, out: Path, runs: dict[str, Path], real: Path, bank: Path) -> list[Step]:
    """Synthetic patches per variant (and map-only ones), then the large images."""
    import dataclasses

    sampling = settings.sample_config(cfg, real)
    steps = []
    for name, run in runs.items():
        syn = out / "synthetic" / name
        steps.append(Step("sample", f"sample {name}: held-out maps + crops from the bank", "sample", syn,
                          (run, syn, sampling), {"crop_bank": bank, "device": cfg.device}, parallel=True))  # fmt: skip
        if cfg.without_crops and CONDITIONINGS.get(VARIANTS[name]).uses_crops:
            bare = out / "synthetic" / f"{name}-no-crops"
            steps.append(Step("sample", f"sample {name} without crops: the same model, map only", "sample", bare,
                              (run, bare, dataclasses.replace(sampling, crops="none")), {"device": cfg.device},
                              parallel=True))  # fmt: skip
    for name, run in runs.items():
        for i in range(cfg.large_images):
            big = out / "large" / name / f"{i:03d}"
            steps.append(Step("large", f"large image {i + 1}/{cfg.large_images} of {name} ({cfg.large_size} px)",
                              "sample-large", big, (run, big, settings.large_config(cfg, i)),
                              {"crop_bank": bank, "device": cfg.device}))  # fmt: skip
    return steps


@dataclass(frozen=True)
class LazyLabels:
    """A dataset step's label set, made when the step runs: it reads the finished tiles (or
    clusters), which do not exist when the plan is made."""

    source: str
    tiles: Path
    labels: Any  # (annotations folder, scheme) | the clusters folder | None

    def make(self) -> Any:
        """The :class:`~histosynth.wsi.labels.LabelSet` of this step."""
        if self.source == "annotations":
            from histosynth.wsi.label_sources import annotation_labels

            return annotation_labels(self.tiles, *self.labels)
        if self.source == "stain":
            from histosynth.data.derived_labels import stain_labels

            return stain_labels(self.tiles)
        from histosynth.cluster.pseudo_maps import pseudo_labels

        return pseudo_labels(self.labels)
