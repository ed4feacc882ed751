"""``histosynth demo``: the whole method on the bundled real H&E slide, on a laptop CPU.

The demo runs the commands a user would type, in order, into one folder; each is resumable,
so re-running the demo continues where it stopped. Two paths:

(a) annotated: ``tile`` → ``dataset --derived stain`` (a two-class map derived from the slide
    by colour deconvolution: hematoxylin-dense epithelium vs stroma, a documented stand-in for
    expert annotations) with the paper's 20–80 % rule plus a share of single-class patches;
(b) unannotated: ``embed`` (handcrafted encoder, no weights) → ``cluster`` → ``dataset
    --pseudo-maps``: pseudo-semantic maps from tissue clusters, with the cluster report.

Then a crop bank, the three conditioning variants of the paper's ablation trained with equal
budgets on (a), a synthetic dataset per variant conditioned on held-out maps, ``evaluate``
against the held-out real patches under two offline detectors, and ``report``. The slide is a
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
from dataclasses import dataclass, field
from pathlib import Path

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
    sample_steps: int = 20
    sampler: str = "dpm++"
    guidance_map: float = 1.0
    guidance_crops: float = 1.5
    clusters: int = 6
    # DeepLabv3+ steps per TSTR condition: at 25 a real-trained segmenter reached mIoU 0.24 on
    # held-out real patches (vs 0.66 at 80), too short to rank anything; see docs/results.md.
    segmenter_steps: int = 150
    segmenter_seeds: int = 1
    reserve_minutes: float = 4.5  # kept after training: sampling, evaluation, report
    train_steps: int = 0  # > 0: this many steps per variant instead of a share of the time
    seed: int = 0
    variants: tuple[str, ...] = field(default=tuple(VARIANTS))

    def train_minutes(self, elapsed_minutes: float, variants_left: int) -> float:
        """Minutes for the next variant: an equal share of what the budget has left."""
        left = self.minutes - elapsed_minutes - self.reserve_minutes
        return max(0.2, left / max(1, variants_left))


def run_demo(out: str | Path, plan: DemoPlan = DemoPlan(), echo: Callable[[str], None] = print) -> Path:
    """Run (or resume) the demo into ``out``; returns the report's path."""
    from histosynth.artifacts import atomic_write_json
    from histosynth.cli.main import main
    from histosynth.config import config_to_dict
    from histosynth.samples import cmu_small_region

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    slide = str(cmu_small_region(verify=True))
    start = time.monotonic()
    # What ran and how long each step took, one list per invocation (a resumed step takes ~0 s),
    # read by scripts/write_results.py for docs/results.md.
    log_path = out / "demo-run.json"
    previous = json.loads(log_path.read_text()) if log_path.is_file() else {}
    if previous.get("plan") != config_to_dict(plan):
        previous = {}  # another plan: its timings say nothing about this one
    record: dict = {"plan": config_to_dict(plan), "invocations": [*previous.get("invocations", []), []]}

    def step(title: str, *args: str) -> None:
        t0 = time.monotonic()
        echo(f"\n== {title}  [{(t0 - start) / 60:.1f} min]")
        echo("   histosynth " + " ".join(args))
        try:
            main(list(args))
        except SystemExit as exc:
            if exc.code not in (0, None):
                raise RuntimeError(
                    f"demo step failed: histosynth {' '.join(args)} (exit {exc.code})"
                ) from None
        record["invocations"][-1].append({"title": title.strip(), "command": args[0],
                                          "seconds": time.monotonic() - t0})  # fmt: skip
        atomic_write_json(log_path, record)

    s = str
    tiles, real, bank = out / "tiles", out / "dataset", out / "crop-bank"
    step("1/9 tile the real slide (region splits)", "tile", slide, "-o", s(tiles), "--patch-mpp", s(plan.patch_mpp),
         "--size", s(plan.size), "--overlap", s(plan.overlap), "--min-tissue", "0.3", "--seed", s(plan.seed),
         "--set", "split.by=region", "--set", f"split.region_um={plan.region_um}")  # fmt: skip
    step("2/9 annotated path: stain-derived maps, 20-80 % rule", "dataset", s(tiles), "-o", s(real),
         "--derived", "stain", "--max-per-slide", "0", "--homogeneous-share", "0.25", "--seed", s(plan.seed))  # fmt: skip
    # The pseudo-map path needs no overlap: its own non-overlapping tiles keep embedding short.
    step("3/9 unannotated path: tiles, sub-tile embeddings (handcrafted encoder)", "tile", slide, "-o",
         s(out / "tiles-embed"), "--patch-mpp", s(plan.patch_mpp), "--size", s(plan.size), "--min-tissue", "0.3",
         "--seed", s(plan.seed))  # fmt: skip
    step("   embed", "embed", s(out / "tiles-embed"), "-o", s(out / "embeddings"), "--encoder", "handcrafted",
         "--subtile", "16", "--stride", "16")  # fmt: skip
    step("4/9 cluster into tissue types, pseudo-maps", "cluster", s(out / "embeddings"), "-o", s(out / "clusters"),
         "--k", s(plan.clusters), "--per-slide", "20000", "--seed", s(plan.seed))  # fmt: skip
    step("   pseudo-map dataset", "dataset", s(out / "tiles-embed"), "-o", s(out / "dataset-pseudo"),
         "--pseudo-maps", s(out / "clusters"), "--max-per-slide", "0", "--seed", s(plan.seed))  # fmt: skip
    runs: dict[str, Path] = {}
    for i, name in enumerate(plan.variants):
        runs[name] = out / "train" / name
        train = ["train", s(real), s(runs[name]), "--preset", "cpu-tiny", "--conditioning", VARIANTS[name],
                 "--seed", s(plan.seed)]  # fmt: skip
        if plan.train_steps > 0:  # an equal step budget: resumes from the last checkpoint
            step(f"5/9 train variant {name} ({VARIANTS[name]}), {plan.train_steps} steps", *train, "--steps",
                 s(plan.train_steps))  # fmt: skip
            continue
        spent = runs[name] / ".demo-budget-spent"  # a time-budgeted run is done once its budget ran
        if spent.is_file():
            echo(f"\n== 5/9 train variant {name}: trained in an earlier run (its budget is spent)")
            continue
        minutes = plan.train_minutes((time.monotonic() - start) / 60, len(plan.variants) - i)
        step(f"5/9 train variant {name} ({VARIANTS[name]}), {minutes:.1f} min", *train, "--steps", "100000",
             "--max-minutes", f"{minutes:.2f}")  # fmt: skip
        spent.touch()
    syn: dict[str, Path] = {}
    for name in plan.variants:
        syn[name] = out / "synthetic" / name
        step(f"6/9 sample {name}: held-out maps + crops from the bank", "sample", s(runs[name]), s(syn[name]),
             "--crop-bank", s(bank), "--bank-from", s(real), "--maps-from", s(real), "-n", s(plan.n_samples),
             "--sampler", plan.sampler, "--steps", s(plan.sample_steps), "--guidance-map", s(plan.guidance_map),
             "--guidance-crops", s(plan.guidance_crops), "--seed", s(plan.seed), "--batch-size", "16")  # fmt: skip
    ev = out / "evaluation"
    # The cpu preset's segmentation protocol, cut to the demo's budget: one seed, one mix.
    args = ["evaluate", "--real", s(real), "--out", s(ev), "--preset", "cpu", "--set", f"tstr.seeds={plan.segmenter_seeds}",
            "--set", "tstr.mixes=[1.0]", "--set", f"tstr.segmenter.steps={plan.segmenter_steps}",
            "--set", f"tstr.segmenter.crop={plan.size}", "--set", "tstr.segmenter.decoder_channels=32"]  # fmt: skip
    for name in plan.variants:
        args += ["--synthetic", f"{name}={syn[name]}"]
    for det in DETECTORS:
        args += ["--detector", det]
    step("7/9 evaluate against held-out real patches", *args)
    step("8/9 report", "report", s(ev), "--out", s(out / "report.html"))
    echo(f"\n== 9/9 done in {(time.monotonic() - start) / 60:.1f} min")
    echo(f"cluster report: {out / 'clusters' / 'report' / 'index.html'}")
    return out / "report.html"
