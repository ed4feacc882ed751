"""Run a plan's steps in order, each a resumable stage; log what ran and how long it took.

Every stage resumes by itself, so re-running a plan continues where it stopped: finished
stages return at once, an interrupted one picks up its journal or its last checkpoint. A
variant trained on a time budget is done once its budget has run (a ``.budget-spent`` file in
its folder); stopped before that, it resumes from its last checkpoint with a fresh share of
what the budget has left. The log (``run-log.json``; the demo's ``demo-run.json``) holds the
settings and one list of ``{title, command, seconds}`` per invocation; another settings'
timings are dropped, as they say nothing about these.
"""

from __future__ import annotations

import dataclasses
import json
import math
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from histosynth.artifacts import StageResult, atomic_write_json, atomic_write_text
from histosynth.config import config_to_dict
from histosynth.pipeline import settings
from histosynth.pipeline.plan import Plan
from histosynth.pipeline.steps import PHASES, LazyLabels, Step

__all__ = ["BUDGET_SPENT", "StepFailed", "few_steps_advice", "run_plan"]

BUDGET_SPENT = ".budget-spent"  # in a training folder: its time budget has run


class StepFailed(RuntimeError):
    """A stage reported failed items (its reasons were printed); re-running resumes it."""


class _Log:
    """The run's log file: settings, and per invocation the steps that ran with their seconds."""

    def __init__(self, path: Path, settings_dict: dict[str, Any]) -> None:
        self.path = path
        previous = json.loads(path.read_text()) if path.is_file() else {}
        if previous.get("plan") != settings_dict:
            previous = {}  # other settings: their timings say nothing about these
        self.record = {"plan": settings_dict, "invocations": [*previous.get("invocations", []), []]}

    def add(self, title: str, stage: str, seconds: float) -> None:
        self.record["invocations"][-1].append({"title": title, "command": stage, "seconds": seconds})
        atomic_write_json(self.path, self.record)


def run_plan(
    plan: Plan,
    echo: Callable[[str], None] = print,
    log_name: str = "run-log.json",
    executor: Any = None,
    overwrite: bool = False,
) -> Path:
    """Run (or resume) every step of ``plan``; returns the report's path.

    Parameters
    ----------
    plan
        A checked plan (:func:`~histosynth.pipeline.plan.make_plan`).
    echo
        Where progress lines go.
    log_name
        The log's file name in the run's folder.
    executor
        Where the items of the stages that take one run (default: in this process).
    overwrite
        Replace stage folders that hold another artefact (after a change of settings) instead
        of refusing them.

    Raises
    ------
    StepFailed
        When a stage reports failed items (the run stops there; re-running resumes it).
    """
    from histosynth.pipeline.print_config import config_toml

    out = plan.out
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "run.toml", config_toml(plan.cfg))
    log = _Log(out / log_name, config_to_dict(plan.cfg))
    start = time.monotonic()
    phases = [p for p in PHASES if any(s.phase == p for s in plan.steps)]
    label = {p: f"{i}/{len(phases) + 1}" for i, p in enumerate(phases, 1)}
    budgeted = [s for s in plan.steps if s.variant is not None]
    notes: list[str] = []
    for step in plan.steps:
        elapsed = (time.monotonic() - start) / 60
        if step.variant is not None:
            timed = _with_budget(plan, step, elapsed, len(budgeted) - budgeted.index(step))
            if timed is None:
                echo(f"\n== {label['train']} train variant {step.variant}: trained in an earlier run "
                     "(its budget is spent)")  # fmt: skip
                continue
            step = timed
        title = f"{label[step.phase]} {step.title}"
        t0 = time.monotonic()
        echo(f"\n== {title}  [{elapsed:.1f} min]")
        result = _call(step, executor, overwrite)
        echo(f"   {step.stage}: {result.folder}")
        if not result.ok:
            raise StepFailed(f"step failed: {title}: {result.summary.describe()}")
        if _interrupted(step, result, time.monotonic() - t0):
            echo(f"   {result.summary.describe()}")
            raise KeyboardInterrupt  # Ctrl-C stopped training at a checkpoint: the run stops there too
        log.add(title, step.stage, time.monotonic() - t0)
        if step.variant is not None:
            atomic_write_text(step.folder / BUDGET_SPENT, _budget_key(step))
            if (advice := _budget_advice(plan, step, result, len(budgeted))) is not None:
                echo(f"   note: {advice}")
                notes.append(advice)
    echo(f"\n== {len(phases) + 1}/{len(phases) + 1} done in {(time.monotonic() - start) / 60:.1f} min")
    if notes:  # again at the end: training's note has scrolled away by now
        echo(f"note: {notes[-1]}")
    if any(s.stage == "cluster" for s in plan.steps):
        echo(f"cluster report: {out / 'clusters' / 'report' / 'index.html'}")
    return out / "report.html"


def few_steps_advice(backbone: str, steps: int, s_per_step: float, minutes: float, variants: int,
                     bf16: bool = True) -> str | None:  # fmt: skip
    """What to do when a time budget bought a ``backbone`` too few steps for tissue (``None``: enough).

    ``steps`` and ``s_per_step``: one variant's training; ``minutes``: the run's budget, shared
    by ``variants`` models. The advice names the budget that buys the steps at which the model
    draws tissue (:data:`histosynth.train.config.TISSUE_STEPS`), at this machine's step time.
    """
    from histosynth.train.config import TISSUE_STEPS

    if backbone not in TISSUE_STEPS or steps >= TISSUE_STEPS[backbone][0]:
        return None
    speckle, tissue = TISSUE_STEPS[backbone]
    budget = math.ceil((minutes + variants * (tissue - steps) * s_per_step / 60) / 5) * 5  # whole 5 minutes
    why = "" if bf16 else "; this CPU has no native bf16, which makes steps 1.5-1.8x faster where present"
    return (f"the {minutes:g} min budget bought {steps:,} training steps of the {backbone} model here ({s_per_step:.2f} s a "
            f"step{why}): below about {speckle:,} steps its images are colour speckle rather than tissue. "
            f"About {tissue:,} steps draw tissue: run again with --minutes {budget} and a new --out "
            f"folder (a re-run into this one keeps the model trained here)")  # fmt: skip


def _budget_advice(plan: Plan, step: Step, result: StageResult, variants: int) -> str | None:
    """:func:`few_steps_advice` for a time-budgeted training step that has just run."""
    from histosynth.train.loop import cpu_has_native_bf16
    from histosynth.train.skeleton import StatsLog

    times = [r["step_time"] for r in StatsLog(result.folder / "stats.jsonl").rows() if "step_time" in r]
    if not times or step.args[2].run.max_minutes is None:
        return None
    gpu = plan.cfg.device != "cpu"
    return few_steps_advice(step.args[2].model.backbone, result.summary.step, statistics.median(times),
                            plan.cfg.minutes, variants, bf16=gpu or cpu_has_native_bf16())  # fmt: skip


def _interrupted(step: Step, result: StageResult, seconds: float) -> bool:
    """A training step that stopped before its steps, and not because its time budget ran out
    (a first Ctrl-C stops a trainer at a checkpoint and returns)."""
    if step.stage != "train" or getattr(result.summary, "finished", True):
        return False
    budget = step.args[2].run.max_minutes
    return step.variant is None or budget is None or seconds < 0.9 * budget * 60


def _budget_key(step: Step) -> str:
    """What a time-budgeted model was trained as: its identity (config without run length) and
    its dataset. A ``.budget-spent`` file holding another key is not this model's."""
    from histosynth.artifacts import read_manifest
    from histosynth.train.config import identity_config

    dataset, _, cfg = step.args
    return json.dumps(
        {"model": identity_config(cfg), "dataset": read_manifest(dataset)["id"]}, sort_keys=True
    )


def _with_budget(plan: Plan, step: Step, elapsed: float, left: int) -> Step | None:
    """A time-budgeted training step with its minutes: an equal share of what is left; ``None``
    when an earlier invocation spent the budget of this same model."""
    spent = step.folder / BUDGET_SPENT
    if spent.is_file() and spent.read_text() == _budget_key(step):
        return None
    if (step.folder / ".demo-budget-spent").is_file():  # the demo's marker before `histosynth run`
        return None
    minutes = plan.cfg.train_minutes(elapsed, left)
    cfg = settings.train_config(plan.cfg, step.variant, minutes)
    title = step.title.replace("a share of the time budget", f"{minutes:.1f} min")
    return dataclasses.replace(step, title=title, args=(*step.args[:2], cfg))


def _call(step: Step, executor: Any, overwrite: bool = False) -> StageResult:
    import inspect

    from histosynth.stages import STAGES

    stage = STAGES.get(step.stage)
    kwargs = {k: v.make() if isinstance(v, LazyLabels) else v for k, v in step.kwargs.items()}
    if executor is not None and step.parallel:
        kwargs["executor"] = executor
    if overwrite and "overwrite" in inspect.signature(stage).parameters:
        kwargs["overwrite"] = True
    return stage(*step.args, **kwargs)
