"""The trainer skeleton: what every trainer does around its own step.

``histosynth train`` (:mod:`histosynth.train.loop`) and ``histosynth train-codec``
(:mod:`histosynth.train.codec`) differ in the step they take and in what a checkpoint holds;
the rest is here, once:

- :func:`claim_run` claims the run folder, or extends a finished run asked for more steps;
- :class:`Resume` is where a run goes on from: its newest checkpoint, step and saved states;
- :class:`StatsLog` is the run's ``stats.jsonl``, cut back to the checkpoint it resumes from;
- :func:`run_steps` takes the steps, logs, writes sample grids and checkpoints on their
  cadence (:class:`Every`), and stops at the end of a step on a first Ctrl-C, a deadline or a
  callback's request (:class:`StopRequest`), with a checkpoint;
- :func:`histosynth.train.checkpoint.write_checkpoint` writes a checkpoint atomically.

A resumed run ends where an uninterrupted one does as long as its step is a function of
(seed, step) and of the state the checkpoint restores.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from histosynth.artifacts import MANIFEST, atomic_write_text, prepare_output, read_manifest
from histosynth.progress import progress

__all__ = [
    "Every",
    "Resume",
    "StatsLog",
    "StopRequest",
    "TrainSummary",
    "claim_run",
    "finished_run",
    "run_steps",
]


@dataclass(frozen=True)
class TrainSummary:
    """How a call of a trainer ended (the summary of its :class:`~histosynth.artifacts.StageResult`)."""

    step: int  # optimiser steps done
    finished: bool  # reached run.steps (the manifest is written)
    loss: float | None  # mean loss of the last log interval

    # A trainer fails as a whole, by raising, never item by item.
    ok: ClassVar[bool] = True
    failed: ClassVar[tuple] = ()

    def describe(self, noun: str = "steps") -> str:
        if self.finished:
            return f"done at {self.step} {noun}"
        return f"stopped at {self.step} {noun}; re-run the same command to continue"


# ---------------------------------------------------------------------------------- the folder
def claim_run(
    folder: Path,
    kind: str,
    ident: dict[str, Any],
    inputs: dict[str, str],
    steps: int,
    *,
    overwrite: bool = False,
) -> dict[str, Any] | None:
    """Claim ``folder`` for a run of ``steps`` steps.

    Returns
    -------
    dict or None
        The manifest when the folder holds a finished run of at least ``steps`` steps; else
        ``None``, and the folder is a run in progress. A finished run of fewer steps is extended:
        its manifest is removed (run-length settings are not part of a run's identity).
    """
    if not prepare_output(folder, kind, ident, inputs, overwrite=overwrite).complete:
        return None
    manifest = read_manifest(folder, kind)
    if manifest["counts"].get("steps", 0) >= steps:
        return manifest
    (folder / MANIFEST).unlink()  # in progress again
    prepare_output(folder, kind, ident, inputs)
    return None


def finished_run(folder: Path, kind: str, steps: int) -> dict[str, Any] | None:
    """The manifest of a finished run of at least ``steps`` steps in ``folder``, else ``None``
    (what processes other than the one that claimed the folder ask)."""
    try:
        manifest = read_manifest(folder, kind)
    except Exception:
        return None
    return manifest if manifest["counts"].get("steps", 0) >= steps else None


@dataclass(frozen=True)
class Resume:
    """Where a run goes on from: its newest checkpoint (``None``: the start) and the saved states.

    Attributes
    ----------
    checkpoint
        The checkpoint folder, or ``None``.
    step
        Optimiser steps done.
    trainer, optimizer
        ``trainer.pt`` (step, global RNG states, a trainer's extras) and ``optimizer.pt``.
    """

    checkpoint: Path | None = None
    step: int = 0
    trainer: dict[str, Any] = field(default_factory=dict)
    optimizer: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def latest(cls, folder: Path) -> Resume:
        """The newest whole checkpoint under ``folder / "checkpoints"``."""
        from histosynth.train.checkpoint import latest_checkpoint, load_state

        ckpt = latest_checkpoint(folder / "checkpoints")
        if ckpt is None:
            return cls()
        trainer, optimizer = load_state(ckpt)
        return cls(ckpt, int(trainer["step"]), trainer, optimizer)

    def restore_rng(self) -> None:
        """Restore the global RNG states saved with the checkpoint (nothing at the start).

        Call it after everything that draws from the global RNG on every start (building the
        model, creating the data loader), so the run goes on with the state it had.
        """
        from histosynth.train.checkpoint import restore_rng

        if self.trainer:
            restore_rng(self.trainer)


class StatsLog:
    """A run's ``stats.jsonl``: one JSON line per log interval, each with its ``step``."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def rows(self) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        return [json.loads(ln) for ln in self.path.read_text(encoding="utf-8").splitlines() if ln.strip()]

    def truncate(self, step: int) -> None:
        """Drop the lines past ``step`` (a resumed run logs them again), atomically."""
        if not self.path.is_file():
            return
        lines = [ln for ln in self.path.read_text(encoding="utf-8").splitlines() if ln.strip()]
        keep = [ln for ln in lines if json.loads(ln).get("step", 0) <= step]
        atomic_write_text(self.path, "".join(ln + "\n" for ln in keep))

    def append(self, row: dict[str, Any]) -> None:
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")

    def plot(self, path: Path, title: str = "training loss") -> None:
        """The ``loss`` column against the steps, as a PNG."""
        from histosynth.train.grid import loss_curve

        rows = self.rows()
        loss_curve([r["step"] for r in rows], [r["loss"] for r in rows], path, title)


# ---------------------------------------------------------------------------------- the steps
class StopRequest:
    """A stop request: a first Ctrl-C (main thread only) or a deadline ``max_minutes`` from now.

    A second Ctrl-C interrupts at once.
    """

    def __init__(self, max_minutes: float | None) -> None:
        self.flag, self.deadline = False, None if max_minutes is None else time.monotonic() + 60 * max_minutes
        self._old: Any = None

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._on_sigint)
        return self

    def _on_sigint(self, *_: Any) -> None:
        self.flag = True
        signal.signal(signal.SIGINT, self._old)
        print("\nstopping after this step (Ctrl-C again to abort)", flush=True)

    def __exit__(self, *_: Any) -> None:
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)

    def requested(self) -> bool:
        return self.flag or (self.deadline is not None and time.monotonic() > self.deadline)


@dataclass(frozen=True)
class Every:
    """Steps between log lines, checkpoints and sample grids (``sample=0``: at the end only).

    The last step and a stop always log, write a grid and a checkpoint.
    """

    log: int
    checkpoint: int
    sample: int = 0


def run_steps(
    start: int,
    steps: int,
    train_step: Callable[[int], None],
    *,
    every: Every,
    log: Callable[[int], dict[str, str] | None],
    checkpoint: Callable[[int], None],
    sample: Callable[[int], None] | None = None,
    callback: Callable[[int], bool | None] | None = None,
    max_minutes: float | None = None,
    agree: Callable[[bool], bool] = bool,
    desc: str = "train",
    show_progress: bool = True,
) -> int:
    """Take steps ``start .. steps - 1``; return the number of steps done.

    After ``train_step(step)`` come, with ``done = step + 1``: the stop decision, then
    ``log(done)`` (its dict goes to the progress bar), ``sample(done)`` and
    ``checkpoint(done)``, each on its cadence and on the last step or a stop.

    Parameters
    ----------
    start, steps
        The first step to take and the run's length.
    train_step
        One optimiser step, of index ``step`` (a function of the seed and ``step``).
    every
        The cadence of logging, checkpoints and sample grids.
    log, checkpoint, sample
        Called with the steps done. ``sample`` is ``None`` in a process that writes no grids.
    callback
        ``callback(done)`` after each step; a true return stops the run with a checkpoint (as
        Ctrl-C does); an exception aborts it without one.
    max_minutes
        Stop at the end of the first step past this many minutes.
    agree
        Turns this process's stop request into every process's decision (one all-reduce under
        several processes), so all stop at the same step.
    desc, show_progress
        The progress bar.
    """
    bar = progress(total=steps, initial=start, desc=desc, disable=not show_progress)
    done = start
    try:
        with StopRequest(max_minutes) as stop:
            for step in range(start, steps):
                train_step(step)
                done = step + 1
                want = bool(callback(done)) if callback is not None else False
                want = agree(want or stop.requested())
                end = want or done == steps
                if done % every.log == 0 or end:
                    postfix = log(done)
                    if postfix:
                        bar.set_postfix(**postfix)
                if sample is not None and ((every.sample and done % every.sample == 0) or end):
                    sample(done)
                bar.update(1)
                if done % every.checkpoint == 0 or end:
                    checkpoint(done)
                if want:
                    break
    finally:
        bar.close()
    return done
