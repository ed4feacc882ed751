"""The plan of ``histosynth run``: every check before any work, then the steps and their cost.

:func:`make_plan` opens the slides, matches and reads the annotations, resolves the split,
builds every stage's config (so a wrong key in any stage table is found now, not after hours
of training), checks the encoder's weights and the detectors, and estimates disk and time.
Any problem is a :class:`~histosynth.pipeline.checks.PlanError` of one sentence; what is only
worth knowing is a note in :attr:`Plan.notes`.

>>> from histosynth.samples import cmu_small_region
>>> from histosynth.pipeline.summary import plan_summary
>>> plan = make_plan([cmu_small_region()], "out", RunConfig(train_steps=100))   # doctest: +SKIP
>>> print(plan_summary(plan))                                                  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from histosynth.pipeline.checks import (
    LabelFacts,
    PlanError,
    SlideFacts,
    check_labels,
    check_slides,
    label_source,
)
from histosynth.pipeline.config import RunConfig
from histosynth.pipeline.settings import MIN_SLIDES_BY_SLIDE, split_mode
from histosynth.pipeline.steps import Step, make_steps

__all__ = ["Plan", "make_plan", "name_list"]


@dataclass(frozen=True)
class Plan:
    """What a run will do, checked.

    Attributes
    ----------
    cfg
        The run's settings.
    out
        The run's folder.
    slides
        Slide name → what opening it told.
    skipped
        Slide name → why it was left out (``--skip-bad-slides``).
    labels
        Where the training maps come from, and how annotations matched.
    split_by
        ``slide`` or ``region``.
    steps
        The stage calls, in order.
    estimate
        Disk and time (:class:`~histosynth.pipeline.estimate.Estimate`), or ``None``.
    notes
        Things worth knowing that do not stop the run, one sentence each.
    """

    cfg: RunConfig
    out: Path
    slides: dict[str, SlideFacts]
    skipped: dict[str, str]
    labels: LabelFacts
    split_by: str
    steps: list[Step]
    estimate: Any = None
    notes: list[str] = field(default_factory=list)


def make_plan(
    inputs: Any,
    out: str | Path,
    cfg: RunConfig,
    *,
    annotations: str | Path | None = None,
    classes: str | None = None,
    skip_bad: bool = False,
    estimate: bool = True,
) -> Plan:
    """Check a run and lay out its steps.

    Parameters
    ----------
    inputs
        Slide files and folders, or slide name → file.
    out
        The run's folder (it need not exist).
    cfg
        The run's settings.
    annotations, classes
        The annotation folder and its class map (a classes.json or a preset name), together.
    skip_bad
        Leave out slides that cannot be read, have no mpp or whose annotation is malformed,
        instead of refusing the run.
    estimate
        Estimate disk and time (imports torch to measure this machine's speed).

    Raises
    ------
    PlanError
        The first problem found, in one sentence.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise PlanError(f"{out}: exists and is not a folder; give -o a folder for the run")
    source = label_source(cfg, annotations, classes)
    inputs = list(inputs.values()) if isinstance(inputs, dict) else list(inputs)
    slides, skipped = check_slides(inputs, cfg, skip_bad)
    facts = check_labels(source, slides, annotations, classes, skip_bad)
    skipped.update(facts.skipped)
    if source == "annotations":  # a slide without annotations gives no patch; it would take a split
        slides = {name: s for name, s in slides.items() if name in facts.matched}
    split_by = _split(cfg, len(slides))
    _check_budget(cfg)
    _check_parts(cfg, source)
    paths = {name: s.path for name, s in slides.items()}
    steps = make_steps(cfg, out, paths, source, split_by, labels=(annotations, facts.scheme))
    plan = Plan(cfg, out, slides, skipped, facts, split_by, steps, notes=_notes(cfg, facts, steps))
    if not estimate:
        return plan
    from histosynth.pipeline.estimate import check_disk, estimate_run

    est = estimate_run(plan)
    check_disk(out, est.disk_bytes)
    if cfg.train_steps <= 0 and est.after_training > cfg.reserve_minutes:
        plan.notes.append(
            f"sampling, evaluation and the report should take about {est.after_training:.1f} min here, more than "
            f"reserve_minutes = {cfg.reserve_minutes:g}: the run may overrun its {cfg.minutes:g} min budget"
        )
    return dataclasses.replace(plan, estimate=est)


def _split(cfg: RunConfig, n_slides: int) -> str:
    split_by = split_mode(cfg, n_slides)
    if split_by == "slide" and n_slides < MIN_SLIDES_BY_SLIDE and not cfg.tile.get("split", {}).get("file"):
        raise PlanError(
            f"split = 'slide' needs {MIN_SLIDES_BY_SLIDE} slides or more (train, val, test) and {n_slides} "
            "can be used; split by region instead (--split region)"
        )
    return split_by


def _check_budget(cfg: RunConfig) -> None:
    if cfg.train_steps <= 0 and cfg.minutes <= cfg.reserve_minutes:
        raise PlanError(
            f"a budget of {cfg.minutes:g} min leaves nothing to train after the {cfg.reserve_minutes:g} min "
            "kept for sampling and evaluation; give more --minutes or a --steps budget"
        )


def _check_parts(cfg: RunConfig, source: str) -> None:
    """The encoder (with its weights), the detectors and the sampler exist here."""
    from histosynth.diffusion.pipeline import SAMPLERS
    from histosynth.embed.encoders import ENCODERS
    from histosynth.evaluate.detectors import DETECTORS
    from histosynth.registry import RegistryError

    if source == "pseudo" or cfg.both_paths:
        from histosynth.embed.weights import resolve_weights

        embed = cfg.embed
        try:
            spec = ENCODERS.get(str(embed.get("encoder", cfg.encoder)))
            resolve_weights(spec, embed.get("weights"), None, bool(embed.get("allow_hub", False)))
        except (RegistryError, OSError, ValueError) as exc:
            raise PlanError(f"encoder: {exc}") from None
    for name in cfg.detectors:
        if name not in DETECTORS and name not in ENCODERS:
            raise PlanError(
                f"detectors: unknown detector {name!r}; choose from {DETECTORS.names() + ENCODERS.names()}"
            )
    for where, sampler in (
        ("sampler", cfg.sampler),
        ("[sample] sampler", cfg.sample.get("sampler", cfg.sampler)),
    ):
        if sampler not in SAMPLERS:
            raise PlanError(f"{where}: unknown sampler {sampler!r}; choose from {list(SAMPLERS)}")


def name_list(names: list[str], most: int = 5) -> str:
    """``a, b, c and 2 more``: the first ``most`` names of a list."""
    return ", ".join(names[:most]) + (f" and {len(names) - most} more" if len(names) > most else "")


def _notes(cfg: RunConfig, facts: LabelFacts, steps: list[Step]) -> list[str]:
    notes = []
    if facts.unannotated:
        notes.append(f"slides without an annotation file are left out: {name_list(facts.unannotated)}")
    if facts.orphans:
        notes.append(f"annotation files that match no slide: {name_list(facts.orphans)}")
    missing = [c for c in facts.classes if c not in facts.present and c != "background"]
    if missing:
        notes.append(f"classes drawn in no annotation: {', '.join(missing)}")
    train = next(s for s in steps if s.stage == "train").args[2]
    if train.data.image_size != cfg.size:
        notes.append(f"patches of {cfg.size} px are resized to {train.data.image_size} px for training "
                     f"(train preset {cfg.train_preset})")  # fmt: skip
    return notes
