"""``histosynth demo``: ``histosynth run`` on the bundled real H&E slide, with the demo's budget.

The demo is a preset plan of :mod:`histosynth.pipeline`: :class:`DemoPlan` is a
:class:`~histosynth.pipeline.config.RunConfig` whose defaults are the demo's, and
:func:`run_demo` plans and runs it on the bundled slide, so every stage it calls is the one the
commands call, and re-running continues where it stopped. Both paths run:

(a) annotated: ``tile`` → ``dataset --derived stain`` (a two-class map derived from the slide
    by colour deconvolution: hematoxylin-dense epithelium vs stroma, a documented stand-in for
    expert annotations) with the paper's 20–80 % rule plus a share of single-class patches;
(b) unannotated (``both_paths``): ``embed`` (handcrafted encoder, no weights) → ``cluster`` →
    ``dataset --pseudo-maps``: pseudo-semantic maps from tissue clusters, with the cluster report.

Then one model trained with the whole training budget on (a) (our ``map+crops-tokens``
variant; ``variants`` names more, and ``make results`` trains the three variants of the
paper's ablation with equal step budgets), a crop bank, a synthetic dataset per model
conditioned on held-out maps and crops from the bank, plus, for a model that can use crops,
one without them (the same model, map only: what the crops add), ``evaluate`` against the
held-out real patches under two offline detectors, and ``report``. The slide is a single
section, so splits are by region of the slide, with patches that straddle two splits dropped.

The time budget (``--minutes``) is split across stages: each variant's training gets an equal
share of what is left when it starts, after keeping ``reserve_minutes`` for sampling,
evaluation and the report, so a slow tiling or embedding on a loaded machine shortens training
instead of overrunning the budget. ``train_steps`` > 0 replaces the time budget by an equal
number of optimiser steps per variant: the budget of ``docs/results.md``, which must not depend
on how busy the machine was.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from histosynth.diffusion.conditioning import SHORT_NAMES as VARIANTS  # short name → variant
from histosynth.pipeline.config import RunConfig

__all__ = ["DemoPlan", "VARIANTS", "run_demo"]


@dataclass(frozen=True)
class DemoPlan(RunConfig):
    """The demo's run settings (the defaults fit 15 minutes on 2 CPU cores); the keys
    ``histosynth demo --set`` takes are :class:`~histosynth.pipeline.config.RunConfig`'s."""

    minutes: float = 15.0
    overlap: int = 48
    # Kept after training for sampling, evaluation and the report: they took 2.7 min on a fresh
    # clone (2-core AMD EPYC, December 2026), so 3.5 leaves ~50 s for a slower machine.
    reserve_minutes: float = 3.5
    min_tissue: float = 0.3
    split: Literal["auto", "slide", "region"] = "region"
    labels: Literal["auto", "annotations", "pseudo", "stain"] = "stain"
    both_paths: bool = True
    max_per_slide: int = 0
    clusters: int = 6


def run_demo(out: str | Path, plan: DemoPlan = DemoPlan(), echo: Callable[[str], None] = print) -> Path:
    """Run (or resume) the demo into ``out``; returns the report's path."""
    from histosynth.pipeline.plan import make_plan
    from histosynth.pipeline.runner import run_plan
    from histosynth.samples import cmu_small_region

    slide = cmu_small_region(verify=True)
    checked = make_plan([slide], out, plan, estimate=False)
    return run_plan(checked, echo=echo, log_name="demo-run.json")
