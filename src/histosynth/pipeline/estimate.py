"""What a run should cost here: disk, and minutes per phase on this machine.

Costs are per unit of work (a slide, a tile, a training step...) measured on a reference
machine (:data:`REFERENCE`), scaled by how fast this machine runs a small fixed convolution
against the reference's time for it: the machine's speed when a run gets its cores, so a
machine busy with other work takes longer than the estimate. Before tiling, the number of tiles is estimated from
each slide's size assuming half of it is tissue; once the tiles exist, their count is used.
The figures are estimates (within a factor of two on a quiet machine), meant to tell minutes
from hours and megabytes from gigabytes before a run starts.
"""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from histosynth.pipeline.checks import PlanError

__all__ = ["COSTS", "REFERENCE", "Estimate", "check_disk", "estimate_run", "free_bytes", "machine_speed"]

# The machine COSTS come from, and its time for machine_speed's probe.
REFERENCE = {"machine": "2 logical cores (Xeon, AVX512-BF16), idle", "probe_seconds": 0.0106}

# Seconds per unit on the reference machine, from quiet runs of the demo on the bundled slide
# (its run-log.json and manifests), README ("about 500 steps in 3.4 min"), docs/sampling.md
# (dpm++ 20 steps, two guidance branches: 1.92 img/s) and docs/results.md (the evaluation of
# the ablation: 11.2 min); size-dependent ones at 64 px. scripts/measure_run_costs.py measures
# them again on a quiet machine.
COSTS: dict[str, Any] = {
    "tile_slide": 0.5,  # thumbnail, tissue mask, QC picture of one slide
    "tile_megapixel": 0.05,  # per level-0 megapixel (the thumbnail read)
    "dataset_tile": 0.001,  # maps of every tile, pixels of the kept ones
    "embed_subtile": 0.0007,  # the handcrafted encoder; a network encoder costs EMBED_NETWORK times more
    "cluster": 2.0,  # k-means, label grids, the cluster report
    "crop_bank_patch": 0.004,
    "train_step": {"test": 0.03, "dit-test": 0.03, "cpu-tiny": 0.41, "dit-tiny": 0.47},  # batch 16 at 64 px
    "sample_image_step": {
        "test": 0.002,
        "dit-test": 0.002,
        "cpu-tiny": 0.026,
        "dit-tiny": 0.03,
    },  # 2 branches
    "large_window_step": 0.005,  # windows evaluated in batches
    "evaluate_image": 0.01,  # per detector: features, PRDC, memorisation
    "segmenter_run": 8.0,  # building, testing one DeepLabv3+ (ResNet-18) of TSTR
    "segmenter_step": 0.1,  # one of its training steps at 64 px, batch 8
    "c2st_step": 0.02,
    "report": 5.0,
}
EMBED_NETWORK = 40
# Parameters (millions) of the backbones, for checkpoint sizes and unmeasured step times.
PARAMS_M = {"test": 0.05, "dit-test": 0.05, "cpu-tiny": 7.6, "dit-tiny": 8.0, "cpu-small": 30.0, "dit-small": 22.0,
            "paper": 373.0, "dit-paper": 357.0, "large": 700.0}  # fmt: skip
TISSUE_SHARE = 0.5


@dataclass(frozen=True)
class Estimate:
    """A run's estimated cost.

    Attributes
    ----------
    tiles, patches
        Tiles of the slides and patches of the training dataset (upper bound).
    disk_bytes, free_bytes
        Space the run's folder needs and what its disk has free.
    minutes
        Phase → minutes on this machine.
    speed
        This machine's speed relative to the reference (2 = twice as fast).
    """

    tiles: int
    patches: int
    disk_bytes: int
    free_bytes: int
    minutes: dict[str, float]
    speed: float

    @property
    def total(self) -> float:
        return sum(self.minutes.values())

    @property
    def after_training(self) -> float:
        """Minutes of the phases that come after training."""
        return sum(
            v for k, v in self.minutes.items() if k in ("crops", "sample", "large", "evaluate", "report")
        )


def machine_speed(repeats: int = 9) -> float:
    """This machine's speed relative to :data:`REFERENCE`: the fastest of ``repeats`` timings of a
    fixed small convolution on one thread (several threads on a shared machine wait on each
    other, and the slowest timings say more about the moment's load than about the machine)."""
    import torch

    x = torch.randn(8, 48, 32, 32, generator=torch.Generator().manual_seed(0))
    conv = torch.nn.Conv2d(48, 48, 3, padding=1)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    best = math.inf
    try:
        with torch.no_grad():
            conv(x)
            for _ in range(repeats):
                t0 = time.perf_counter()
                for _ in range(4):
                    conv(x)
                best = min(best, time.perf_counter() - t0)
    finally:
        torch.set_num_threads(threads)
    return REFERENCE["probe_seconds"] / max(best, 1e-6)


def free_bytes(out: str | Path) -> int:
    """Free bytes on the disk that holds (or will hold) ``out``."""
    where = Path(out).absolute()
    while not where.exists():
        where = where.parent
    return shutil.disk_usage(where).free


def check_disk(out: str | Path, need: int) -> None:
    """Refuse a run whose ``need`` bytes do not fit the free space of its disk."""
    free = free_bytes(out)
    if need > free:
        raise PlanError(
            f"{out}: the run needs about {need / 1e9:.1f} GB and its disk has {free / 1e9:.1f} GB free; "
            "free some space or choose another folder"
        )


def _tiles(plan: Any) -> int:
    """Tiles of the slides: the finished tiles' count, else from the slides' sizes."""
    from histosynth.artifacts import is_complete, read_manifest

    cfg = plan.cfg
    if is_complete(plan.out / "tiles"):
        return int(read_manifest(plan.out / "tiles")["counts"]["tiles"])
    n = 0.0
    for s in plan.slides.values():
        stride_um = (cfg.size - cfg.overlap) * cfg.patch_mpp
        n += (s.width * s.mpp / stride_um) * (s.height * s.mpp / stride_um) * TISSUE_SHARE
    return int(n)


def estimate_run(plan: Any) -> Estimate:
    """The disk and minutes of ``plan`` (a :class:`~histosynth.pipeline.plan.Plan`)."""
    cfg, steps = plan.cfg, plan.steps
    tiles = _tiles(plan)
    cap = cfg.max_per_slide * len(plan.slides) if cfg.max_per_slide > 0 else tiles
    patches = min(tiles, cap)
    train = next(s for s in steps if s.stage == "train").args[2]
    backbone, image = train.model.backbone, train.data.image_size
    area = (cfg.size / 64) ** 2
    sets = sum(s.stage == "sample" for s in steps)
    speed = machine_speed()
    megapixels = sum(s.width * s.height for s in plan.slides.values()) / 1e6
    tile_seconds = len(plan.slides) * COSTS["tile_slide"] + megapixels * COSTS["tile_megapixel"]
    seconds = {
        "tile": tile_seconds,
        "labels": tiles * COSTS["dataset_tile"] * area,
        "unannotated": _unannotated_seconds(cfg, steps, tiles, tile_seconds),
        "crops": patches * COSTS["crop_bank_patch"],
        "sample": sets
        * cfg.n_samples
        * cfg.sample_steps
        * _per(COSTS["sample_image_step"], backbone)
        * (image / 64) ** 2,
        "large": _large_seconds(cfg, backbone),
        "evaluate": _evaluate_seconds(steps, sets, cfg, patches),
        "report": COSTS["report"],
    }
    minutes = {k: v / 60 / speed for k, v in seconds.items()}
    per_step = _per(COSTS["train_step"], backbone) * train.optim.batch_size / 16 * (image / 64) ** 2 / speed
    if cfg.train_steps > 0:
        minutes["train"] = len(cfg.variants) * cfg.train_steps * per_step / 60
    else:
        before = minutes["tile"] + minutes["labels"] + minutes["unannotated"]
        minutes["train"] = max(0.2 * len(cfg.variants), cfg.minutes - before - cfg.reserve_minutes)
    order = ("tile", "labels", "unannotated", "train", "crops", "sample", "large", "evaluate", "report")
    minutes = {k: minutes[k] for k in order}
    disk = _disk_bytes(cfg, steps, tiles, patches, sets, train, backbone)
    return Estimate(tiles, patches, int(disk), free_bytes(plan.out), minutes, speed)


def _per(table: dict[str, float], backbone: str) -> float:
    """A backbone's cost; unmeasured ones scale cpu-tiny's by their parameters."""
    if backbone in table:
        return table[backbone]
    return table["cpu-tiny"] * PARAMS_M.get(backbone, 100.0) / PARAMS_M["cpu-tiny"]


def _unannotated_seconds(cfg: Any, steps: list, tiles: int, tile_seconds: float) -> float:
    """Embeddings, clusters and the pseudo-map dataset (and tiles of their own, when made)."""
    embed = next((s.args[2] for s in steps if s.stage == "embed"), None)
    if embed is None:
        return 0.0
    per_tile = (cfg.size // embed.stride) ** 2 * COSTS["embed_subtile"]
    if embed.encoder != "handcrafted":
        per_tile *= EMBED_NETWORK
    own_tiles = any(s.stage == "tile" and s.phase == "unannotated" for s in steps)
    return (
        tiles * (per_tile + COSTS["dataset_tile"]) + COSTS["cluster"] + (tile_seconds if own_tiles else 0.0)
    )


def _large_seconds(cfg: Any, backbone: str) -> float:
    windows = math.ceil(cfg.large_size / (cfg.size * 0.75)) ** 2
    scale = _per(COSTS["sample_image_step"], backbone) / COSTS["sample_image_step"]["cpu-tiny"]
    return (
        len(cfg.variants) * cfg.large_images * windows * cfg.sample_steps * COSTS["large_window_step"] * scale
    )


def _evaluate_seconds(steps: list, sets: int, cfg: Any, patches: int) -> float:
    """Features of every image under every detector, the TSTR segmenters, the C2ST folds."""
    ev = next(s.args[2] for s in steps if s.stage == "evaluate")
    seconds = (sets * cfg.n_samples + patches) * len(ev.detectors) * COSTS["evaluate_image"]
    if ev.tstr.enabled:
        runs = ev.tstr.seeds * (1 + sets * (1 + len(ev.tstr.mixes)))
        per_step = COSTS["segmenter_step"] * (ev.tstr.segmenter.crop / 64) ** 2
        seconds += runs * (COSTS["segmenter_run"] + ev.tstr.segmenter.steps * per_step)
    if ev.c2st:
        seconds += sets * 2 * ev.c2st_steps * COSTS["c2st_step"]
    return seconds


def _disk_bytes(
    cfg: Any, steps: list, tiles: int, patches: int, sets: int, train: Any, backbone: str
) -> float:
    pixels = cfg.size * cfg.size
    patch = pixels * 3 + pixels * 0.3  # PNG of tissue compresses little; maps compress well
    embed = next((s.args[2] for s in steps if s.stage == "embed"), None)
    vectors = tiles * (cfg.size // embed.stride) ** 2 if embed is not None else 0
    params = PARAMS_M.get(backbone, 100.0) * 1e6
    # A checkpoint: weights, EMA and the optimiser's two moments (4 × float32); the final model: 2.
    model = params * 4 * (4 * train.run.keep_checkpoints + 2)
    large = cfg.large_images * len(cfg.variants) * cfg.large_size**2 * 1.5
    return (len(steps) * 20e3 + 1e6 + tiles * 200 + patches * patch + vectors * 1024 * 2
            + len(cfg.variants) * model + sets * cfg.n_samples * patch + large + 50e6)  # fmt: skip
