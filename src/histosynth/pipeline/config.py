"""The settings of ``histosynth run``: one flat table of the method's choices, plus one table per stage.

The top-level keys are the choices a user makes about the whole method (patch size and
resolution, where the maps come from, which variants to train, the budget, how much to
sample and how to evaluate). :mod:`histosynth.pipeline.settings` turns them into each stage's
config; a stage table (``[tile]``, ``[train]``...) holds any of that stage's own settings and
wins over what the top-level keys imply. A TOML file for ``--config`` mirrors this::

    variants = ["map", "tokens"]
    minutes = 60
    n_samples = 256

    [train]            # any `histosynth train` setting, over the train preset
    optim.lr = 5e-4

    [evaluate]
    bootstrap = 50

Presets (:data:`RUN_PRESETS`, the ``--preset`` choices) name where a run is meant to go:
``cpu`` (the defaults: 64 px patches at 1 µm/px and the ``cpu-tiny`` model, which learns
tissue in minutes on a laptop), ``paper`` (the paper's 256 px at 0.5 µm/px and its UNet, for a
GPU) and ``test`` (seconds: the plumbing only, no learning).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from histosynth.config import register_presets
from histosynth.sample import DEFAULT_SAMPLER

__all__ = ["RUN_PRESETS", "STAGE_TABLES", "RunConfig"]

# The stage tables of a run config: table name → the stage (a name in histosynth.stages.STAGES).
STAGE_TABLES: dict[str, str] = {
    "tile": "tile",
    "dataset": "dataset",
    "embed": "embed",
    "cluster": "cluster",
    "crop_bank": "crop-bank",
    "train": "train",
    "sample": "sample",
    "sample_large": "sample-large",
    "evaluate": "evaluate",
    "report": "report",
}


@dataclass(frozen=True)
class RunConfig:
    """Everything ``histosynth run`` does, in one place (``histosynth run --print-config``).

    Attributes
    ----------
    minutes
        Wall-time budget of the whole run on this machine; each variant trains for an equal
        share of what is left when it starts, after ``reserve_minutes``. Ignored when
        ``train_steps`` > 0.
    reserve_minutes
        Kept for sampling, large images, evaluation and the report.
    train_steps
        > 0: this many optimiser steps per variant instead of a share of the time.
    seed
        Seed of every stage (splits, patch selection, training, sampling, evaluation).
    patch_mpp, size, overlap, min_tissue
        Patches: resolution (µm/px), side (px), overlap (px) and the tissue share they need.
    slide_mpp
        Level-0 µm/px for slides whose files do not say (plain images); overrides metadata.
    split
        ``slide`` (whole slides to train, val and test), ``region`` (blocks of ``region_um``
        µm within each slide) or ``auto`` (by slide from three slides up, else by region).
    region_um
        Block side of the region split.
    labels
        Where the training maps come from: ``annotations`` (``--annotations`` and
        ``--classes``), ``pseudo`` (embeddings → clusters → pseudo-maps), ``stain`` (a
        two-class map derived from the slide's colours, the demo's stand-in) or ``auto``
        (annotations when given, else pseudo-maps).
    both_paths
        Also build the unannotated path (pseudo-maps and their cluster report) when the model
        trains on other maps; nothing trains on it (the demo shows both paths).
    max_per_slide, homogeneous_share
        Patch selection of the training dataset: cap per slide (0: none) and the share of
        single-class patches added to the mixed ones (the paper's 20–80 % rule).
    encoder, clusters, levels
        The unannotated path: tile encoder (a name of ``histosynth doctor``'s list; the default
        needs no weights), tissue types, and coarser levels of the cluster hierarchy.
    variants
        Conditioning variants to train, by short name (``map``, ``spatial``, ``tokens``).
    train_preset
        The ``histosynth train`` preset every variant starts from.
    n_samples, sample_steps, sampler, guidance_map, guidance_crops
        The synthetic dataset: patches per variant (on held-out maps, crops from the training
        split's crop bank; rounded up to whole passes over the held-out maps, so the set has
        their class mix), sampler steps and name, and the guidance scales.
    without_crops
        Also sample each crop-using model without crops (``<variant>-no-crops``): what the
        crops add.
    large_images, large_size
        Large images per variant (procedural maps, seam-free, pyramidal TIFF + labels +
        QuPath GeoJSON) and their side in pixels; 0 makes none.
    detectors, evaluate_preset, segmenter_steps, segmenter_seeds, c2st_steps
        Evaluation against the held-out real patches: feature detectors (offline ones by
        default), the ``histosynth evaluate`` preset, and the cost of its trained parts.
    device
        Where sampling runs (``cpu``, ``cuda``); training uses what ``accelerate`` finds.
    tile, dataset, embed, cluster, crop_bank, train, sample, sample_large, evaluate, report
        Stage tables: any of that stage's settings (see its command's ``--help`` and
        ``docs/architecture.md``), applied over what the keys above imply.
    """

    # budget
    minutes: float = 60.0
    reserve_minutes: float = 4.5
    train_steps: int = 0
    seed: int = 0
    # patches and splits
    patch_mpp: float = 1.0
    size: int = 64
    overlap: int = 0
    min_tissue: float = 0.5
    slide_mpp: float | None = None
    split: Literal["auto", "slide", "region"] = "auto"
    region_um: float = 250.0
    # maps
    labels: Literal["auto", "annotations", "pseudo", "stain"] = "auto"
    both_paths: bool = False
    max_per_slide: int = 1000
    homogeneous_share: float = 0.25
    encoder: str = "handcrafted"
    clusters: int = 8
    levels: tuple[int, ...] = ()
    # model
    variants: tuple[str, ...] = ("tokens",)
    train_preset: str = "cpu-tiny"
    # synthesis
    n_samples: int = 64
    # 20 DPM-Solver++ steps on Karras noise levels, no crop guidance. With plain dpm++ 40 steps
    # beat 20 (demo model: speckle 0.73 -> 0.76, random-init-cnn FD/floor 2.71 -> 2.41); on
    # Karras levels 20 steps are as good as 40-80 and better than plain dpm++ 40 (3,000-step
    # model, two seeds: speckle 0.81-0.83 -> 0.86-0.88, rcnn 1.21-1.26 -> 1.06-1.11; docs/model.md).
    sample_steps: int = 20
    sampler: str = DEFAULT_SAMPLER
    guidance_map: float = 1.0
    guidance_crops: float = 1.0
    without_crops: bool = True
    large_images: int = 0
    large_size: int = 1024
    # evaluation
    detectors: tuple[str, ...] = ("handcrafted", "random-init-cnn")
    evaluate_preset: str = "cpu"
    # DeepLabv3+ steps per TSTR condition: at 25 a real-trained segmenter reached mIoU 0.24 on
    # held-out real patches (vs 0.66 at 80), too short to rank anything; see docs/results.md.
    segmenter_steps: int = 150
    segmenter_seeds: int = 1
    c2st_steps: int = 300  # training steps of each C2ST fold's CNN (histosynth.evaluate.c2st)
    device: str = "cpu"
    # stage tables
    tile: dict[str, Any] = field(default_factory=dict)
    dataset: dict[str, Any] = field(default_factory=dict)
    embed: dict[str, Any] = field(default_factory=dict)
    cluster: dict[str, Any] = field(default_factory=dict)
    crop_bank: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    sample: dict[str, Any] = field(default_factory=dict)
    sample_large: dict[str, Any] = field(default_factory=dict)
    evaluate: dict[str, Any] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.minutes <= 0 and self.train_steps <= 0:
            raise ValueError("give a budget: minutes > 0 or train_steps > 0")
        if not self.variants:
            raise ValueError("variants: name at least one conditioning variant to train")
        for name in ("n_samples", "large_images", "train_steps", "segmenter_seeds"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)}")

    def train_minutes(self, elapsed_minutes: float, variants_left: int) -> float:
        """Minutes for the next variant: an equal share of what the budget has left."""
        left = self.minutes - elapsed_minutes - self.reserve_minutes
        return max(0.2, left / max(1, variants_left))

    def stage_table(self, name: str) -> dict[str, Any]:
        """The stage table ``name`` (a key of :data:`STAGE_TABLES`)."""
        return dict(getattr(self, name))


RUN_PRESETS: dict[str, dict[str, Any]] = {
    # The defaults: learns tissue in minutes on 2 CPU cores (docs/model.md), offline encoders.
    "cpu": {},
    # The paper's patches and UNet (256 px at 0.5 µm/px, KL-f4 latents): a GPU, hours to days.
    "paper": {
        "patch_mpp": 0.5, "size": 256, "minutes": 0.0, "train_steps": 200_000, "train_preset": "paper",
        "clusters": 20, "levels": [5, 10], "n_samples": 1000, "evaluate_preset": "gpu", "device": "cuda",
        "segmenter_steps": 5000, "segmenter_seeds": 3, "c2st_steps": 1000,
    },
    # The plumbing in seconds (a mechanics-only model that learns nothing): tests, a first try.
    "test": {
        "minutes": 0.0, "train_steps": 2, "min_tissue": 0.3, "clusters": 4, "n_samples": 4, "sample_steps": 2,
        "detectors": ["handcrafted"], "evaluate_preset": "quick", "segmenter_steps": 2, "c2st_steps": 0,
        "without_crops": False, "large_size": 64,
        "train": {"model": {"backbone": "test"}, "optim": {"batch_size": 4}, "run": {"sample_every": 0,
                  "sample_steps": 2, "grid_rows": 2}},
        "evaluate": {"c2st": False, "bootstrap": 0},
    },
}  # fmt: skip
register_presets(RunConfig, RUN_PRESETS)
