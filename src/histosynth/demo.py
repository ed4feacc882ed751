"""``histosynth demo``: the whole method on the bundled real H&E slide, on a laptop CPU.

The demo calls the stages (:mod:`histosynth.stages`) the commands call, with the settings a
user would type, in order, into one folder; each is resumable, so re-running the demo
continues where it stopped. Two paths:

(a) annotated: ``tile`` → ``dataset --derived stain`` (a two-class map derived from the slide
    by colour deconvolution: hematoxylin-dense epithelium vs stroma, a documented stand-in for
    expert annotations) with the paper's 20–80 % rule plus a share of single-class patches;
(b) unannotated: ``embed`` (handcrafted encoder, no weights) → ``cluster`` → ``dataset
    --pseudo-maps``: pseudo-semantic maps from tissue clusters, with the cluster report.

Then a crop bank, one model trained with the whole training budget on (a) (our
``map+crops-tokens`` variant; ``variants`` names more, and ``make results`` trains the three
variants of the paper's ablation with equal step budgets), a synthetic dataset per model
conditioned on held-out maps and crops from the bank, plus, for a model that can use crops,
one without them (the same model, map only: what the crops add), ``evaluate`` against the
held-out real patches under two offline detectors, and ``report``. The slide is a
single section, so splits are by region of the slide (``split.by = region``), with patches
that straddle two splits dropped.

The time budget (``--minutes``) is split across stages: each variant's training gets an equal
share of what is left when it starts, after keeping ``reserve_minutes`` for sampling,
evaluation and the report, so a slow tiling or embedding on a loaded machine shortens training
instead of overrunning the budget. ``train_steps`` > 0 replaces the time budget by an equal
number of optimiser steps per variant: the budget of ``docs/results.md``, which must not depend
on how busy the machine was.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from histosynth.artifacts import StageResult
from histosynth.diffusion.conditioning import CONDITIONINGS
from histosynth.diffusion.conditioning import SHORT_NAMES as VARIANTS  # short name → variant

__all__ = ["DemoPlan", "VARIANTS", "run_demo"]

DETECTORS = ("handcrafted", "random-init-cnn")


@dataclass(frozen=True)
class DemoPlan:
    """Sizes and budget of the demo (the defaults fit 15 minutes on 2 CPU cores)."""

    minutes: float = 15.0
    patch_mpp: float = 1.0
    size: int = 64
    overlap: int = 48
    region_um: float = 250.0
    n_samples: int = 64
    # 40 DPM-Solver++ steps and no crop guidance: on the demo's model (fresh clone, 1,981 steps)
    # 20 steps at crop guidance 1.5 gave speckle 0.73, FD/floor 1.60 / 2.71 (handcrafted /
    # random-init-cnn); 40 steps at 1.0 gave 0.76, 1.53 / 2.41, for ~20 s more (docs/model.md).
    sample_steps: int = 40
    sampler: str = "dpm++"
    guidance_map: float = 1.0
    guidance_crops: float = 1.0
    clusters: int = 6
    # DeepLabv3+ steps per TSTR condition: at 25 a real-trained segmenter reached mIoU 0.24 on
    # held-out real patches (vs 0.66 at 80), too short to rank anything; see docs/results.md.
    segmenter_steps: int = 150
    segmenter_seeds: int = 1
    c2st_steps: int = 300  # training steps of each C2ST fold's CNN (histosynth.evaluate.c2st)
    # Kept after training for sampling, evaluation and the report: they took 2.7 min on a fresh
    # clone (2-core AMD EPYC, December 2026), so 3.5 leaves ~50 s for a slower machine.
    reserve_minutes: float = 3.5
    train_steps: int = 0  # > 0: this many steps per variant instead of a share of the time
    seed: int = 0
    # One model gets the whole budget: a 2-core CPU learns tissue in ~10 minutes, not in a third
    # of that (docs/model.md). `make results` sets the paper's three variants.
    variants: tuple[str, ...] = ("tokens",)
    without_crops: bool = True  # also sample crop-using models map-only ("<variant>-no-crops")

    def train_minutes(self, elapsed_minutes: float, variants_left: int) -> float:
        """Minutes for the next variant: an equal share of what the budget has left."""
        left = self.minutes - elapsed_minutes - self.reserve_minutes
        return max(0.2, left / max(1, variants_left))


def run_demo(out: str | Path, plan: DemoPlan = DemoPlan(), echo: Callable[[str], None] = print) -> Path:
    """Run (or resume) the demo into ``out``; returns the report's path."""
    from histosynth.artifacts import atomic_write_json
    from histosynth.cluster.pseudo_maps import pseudo_labels
    from histosynth.cluster.stage import ClusterConfig
    from histosynth.config import build_config, config_to_dict
    from histosynth.data.build import DatasetConfig
    from histosynth.data.derived_labels import stain_labels
    from histosynth.embed.stage import EmbedConfig
    from histosynth.evaluate.config import EvaluateConfig
    from histosynth.sample.stage import SampleConfig
    from histosynth.samples import cmu_small_region
    from histosynth.stages import STAGES
    from histosynth.train.config import TrainConfig
    from histosynth.wsi.tiling import TileConfig

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    slide = cmu_small_region(verify=True)
    start = time.monotonic()
    # What ran and how long each step took, one list per invocation (a resumed step takes ~0 s),
    # read by scripts/write_results.py for docs/results.md.
    log_path = out / "demo-run.json"
    previous = json.loads(log_path.read_text()) if log_path.is_file() else {}
    if previous.get("plan") != config_to_dict(plan):
        previous = {}  # another plan: its timings say nothing about this one
    record: dict = {"plan": config_to_dict(plan), "invocations": [*previous.get("invocations", []), []]}

    def step(title: str, stage: str, *args: Any, **kwargs: Any) -> StageResult:
        """Run the stage ``stage`` (a name in :data:`~histosynth.stages.STAGES`) and log it."""
        t0 = time.monotonic()
        echo(f"\n== {title}  [{(t0 - start) / 60:.1f} min]")
        result = STAGES.get(stage)(*args, **kwargs)
        echo(f"   {stage}: {result.folder}")
        if not result.ok:
            raise RuntimeError(f"demo step failed: {title.strip()}: {result.summary.describe()}")
        record["invocations"][-1].append({"title": title.strip(), "command": stage,
                                          "seconds": time.monotonic() - t0})  # fmt: skip
        atomic_write_json(log_path, record)
        return result

    def cfg(cls: type, preset: str | None = None, **values: Any) -> Any:
        return build_config(cls, preset=preset, values=values)

    p = plan
    tiles, real, bank = out / "tiles", out / "dataset", out / "crop-bank"
    tiling = {"mpp": p.patch_mpp, "size": p.size, "min_tissue": 0.3, "seed": p.seed}
    regions = {"by": "region", "region_um": p.region_um}
    step("1/9 tile the real slide (region splits)", "tile", [slide], tiles,
         cfg(TileConfig, **tiling, overlap=p.overlap, split=regions))  # fmt: skip
    step("2/9 annotated path: stain-derived maps, 20-80 % rule", "dataset", tiles, real,
         cfg(DatasetConfig, seed=p.seed, sampling={"max_per_slide": 0, "homogeneous_share": 0.25}),
         labels=stain_labels(tiles))  # fmt: skip
    # The pseudo-map path needs no overlap: its own non-overlapping tiles keep embedding short.
    step("3/9 unannotated path: tiles, sub-tile embeddings (handcrafted encoder)", "tile", [slide],
         out / "tiles-embed", cfg(TileConfig, **tiling))  # fmt: skip
    step("   embed", "embed", out / "tiles-embed", out / "embeddings",
         cfg(EmbedConfig, encoder="handcrafted", subtile=16, stride=16))  # fmt: skip
    step("4/9 cluster into tissue types, pseudo-maps", "cluster", out / "embeddings", out / "clusters",
         cfg(ClusterConfig, k=p.clusters, per_slide=20000, seed=p.seed))  # fmt: skip
    step("   pseudo-map dataset", "dataset", out / "tiles-embed", out / "dataset-pseudo",
         cfg(DatasetConfig, seed=p.seed, sampling={"max_per_slide": 0}), labels=pseudo_labels(out / "clusters"))  # fmt: skip
    runs: dict[str, Path] = {}
    for i, name in enumerate(p.variants):
        runs[name] = out / "train" / name
        model = {"conditioning": VARIANTS[name]}
        if p.train_steps > 0:  # an equal step budget: resumes from the last checkpoint
            step(f"5/9 train variant {name} ({VARIANTS[name]}), {p.train_steps} steps", "train", real, runs[name],
                 cfg(TrainConfig, "cpu-tiny", model=model, run={"steps": p.train_steps, "seed": p.seed}))  # fmt: skip
            continue
        spent = runs[name] / ".demo-budget-spent"  # a time-budgeted run is done once its budget ran
        if spent.is_file():
            echo(f"\n== 5/9 train variant {name}: trained in an earlier run (its budget is spent)")
            continue
        minutes = p.train_minutes((time.monotonic() - start) / 60, len(p.variants) - i)
        budget = {"steps": 100000, "seed": p.seed, "max_minutes": float(f"{minutes:.2f}")}
        step(f"5/9 train variant {name} ({VARIANTS[name]}), {minutes:.1f} min", "train", real, runs[name],
             cfg(TrainConfig, "cpu-tiny", model=model, run=budget))  # fmt: skip
        spent.touch()
    STAGES.get("crop-bank")(real, bank)  # the crops every variant is conditioned on
    sampling = cfg(SampleConfig, n=p.n_samples, sampler=p.sampler, steps=p.sample_steps, guidance_map=p.guidance_map,
                   guidance_crops=p.guidance_crops, seed=p.seed, batch_size=16, maps="dataset", maps_dir=str(real))  # fmt: skip
    syn: dict[str, Path] = {}
    for name in p.variants:
        syn[name] = out / "synthetic" / name
        step(f"6/9 sample {name}: held-out maps + crops from the bank", "sample", runs[name], syn[name], sampling,
             crop_bank=bank)  # fmt: skip
        if p.without_crops and CONDITIONINGS.get(VARIANTS[name]).uses_crops:
            syn[f"{name}-no-crops"] = out / "synthetic" / f"{name}-no-crops"
            step(f"6/9 sample {name} without crops: the same model, map only", "sample", runs[name],
                 syn[f"{name}-no-crops"], replace(sampling, crops="none"))  # fmt: skip
    ev = out / "evaluation"
    # The cpu preset's segmentation protocol, cut to the demo's budget: one seed, one mix.
    segmenter = {"steps": p.segmenter_steps, "crop": p.size, "decoder_channels": 32}
    tstr = {"seeds": p.segmenter_seeds, "mixes": [1.0], "segmenter": segmenter}
    step("7/9 evaluate against held-out real patches", "evaluate", syn, ev,
         cfg(EvaluateConfig, "cpu", detectors=list(DETECTORS), tstr=tstr, c2st_steps=p.c2st_steps), real=real)  # fmt: skip
    step("8/9 report", "report", ev, out / "report.html")
    echo(f"\n== 9/9 done in {(time.monotonic() - start) / 60:.1f} min")
    echo(f"cluster report: {out / 'clusters' / 'report' / 'index.html'}")
    return out / "report.html"
