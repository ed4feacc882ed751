"""The one resumable per-item loop every stage reuses.

``run_items`` walks (key, item) pairs, calls ``work(key, item)`` for each, and appends one line
per finished item to a journal (``<folder>/_journal.jsonl``, flushed and fsynced). A re-run
skips keys the journal records as done, retries failed ones, and never stops the batch for one
bad item: the exception's message is recorded as the item's reason and the loop goes on.

``work`` must write its own outputs atomically (see :mod:`histosynth.artifacts`), so an item
that was interrupted midway leaves nothing that looks finished. Items may run in worker
processes or on a Ray cluster (see :mod:`histosynth.distributed.executors`); the journal is
written only by the calling process, and results are journalled in completion order but
returned in input order, so outputs do not depend on the executor or the worker count.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from histosynth.disk import as_disk_full, is_disk_full
from histosynth.progress import progress

if TYPE_CHECKING:
    from histosynth.distributed.executors import Executor

__all__ = ["ItemRecord", "Journal", "RunSummary", "call_item", "run_items"]

JOURNAL = "_journal.jsonl"


@dataclass(frozen=True)
class ItemRecord:
    """Outcome of one item: ``status`` is ``"done"`` or ``"failed"``."""

    key: str
    status: str
    error: str | None = None
    seconds: float = 0.0
    output: Any = None


@dataclass
class RunSummary:
    """What a run did: finished now, finished earlier (skipped), failed with reasons."""

    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[ItemRecord] = field(default_factory=list)
    records: dict[str, ItemRecord] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failed

    def outputs(self) -> dict[str, Any]:
        """Key → output of every item that is done (now or in an earlier run)."""
        return {k: r.output for k, r in self.records.items() if r.status == "done"}

    def describe(self, noun: str = "items") -> str:
        """One line for the end of a command, then one line per failure."""
        lines = [f"{len(self.done)} {noun} done, {len(self.skipped)} already done, {len(self.failed)} failed"]
        lines += [f"  failed: {r.key}: {r.error}" for r in self.failed]
        return "\n".join(lines)


class Journal:
    """Append-only JSON-lines record of finished items; the last line for a key wins."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def load(self) -> dict[str, ItemRecord]:
        records: dict[str, ItemRecord] = {}
        if not self.path.is_file():
            return records
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                rec = ItemRecord(**json.loads(line))
            except (json.JSONDecodeError, TypeError):
                continue  # a line cut by a crash: that item simply runs again
            records[rec.key] = rec
        return records

    def append(self, rec: ItemRecord) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(rec.__dict__, default=str)
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")
            fh.flush()
            os.fsync(fh.fileno())


def call_item(work: Callable[[str, Any], Any], key: str, item: Any) -> ItemRecord:
    """Run one item, turning an exception into a failed record (the batch goes on)."""
    start = time.perf_counter()
    try:
        out = work(key, item)
    except Exception as exc:  # one bad item is reported and skipped; the batch goes on
        if is_disk_full(exc):  # not this item's fault: the whole run stops, to be resumed
            raise as_disk_full(exc) from None
        reason = str(exc) or type(exc).__name__
        if os.environ.get("HISTOSYNTH_DEBUG"):
            reason += "\n" + traceback.format_exc()
        return ItemRecord(key, "failed", reason, time.perf_counter() - start)
    return ItemRecord(key, "done", None, time.perf_counter() - start, out)


def run_items(
    items: Iterable[tuple[str, Any]],
    work: Callable[[str, Any], Any],
    journal: str | Path,
    *,
    desc: str = "items",
    workers: int = 1,
    executor: Executor | None = None,
    retry_failed: bool = True,
    show_progress: bool = True,
) -> RunSummary:
    """Run ``work`` over items, resumably.

    Parameters
    ----------
    items
        ``(key, item)`` pairs; keys are unique, stable strings (slide name, sample index...).
    work
        ``work(key, item) -> output``; the output must be JSON-ready (it is journalled).
        With ``workers > 1`` it must be picklable (a module-level function or a partial).
    journal
        The journal file, or the artefact folder (then ``<folder>/_journal.jsonl``).
    desc
        Progress-bar label.
    workers
        Worker processes of the default local executor; 1 runs in this process.
    executor
        Where items run (:mod:`histosynth.distributed.executors`: local processes or Ray);
        overrides ``workers``. Results are identical whichever executor ran them.
    retry_failed
        Re-run items that failed in an earlier run (default) instead of keeping their failure.

    Returns
    -------
    RunSummary
    """
    path = Path(journal)
    if path.suffix != ".jsonl":
        path = path / JOURNAL
    jr = Journal(path)
    previous = jr.load()
    pairs: Sequence[tuple[str, Any]] = list(items)
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError(f"{desc}: item keys are not unique")
    summary = RunSummary()
    todo = []
    for key, item in pairs:
        rec = previous.get(key)
        if rec is not None and (rec.status == "done" or not retry_failed):
            summary.skipped.append(key)
            summary.records[key] = rec
            if rec.status == "failed":
                summary.failed.append(rec)
        else:
            todo.append((key, item))

    bar = progress(total=len(pairs), desc=desc, initial=len(pairs) - len(todo), disable=not show_progress)

    def finish(rec: ItemRecord) -> None:
        jr.append(rec)
        summary.records[rec.key] = rec
        (summary.done if rec.status == "done" else summary.failed).append(
            rec.key if rec.status == "done" else rec
        )
        bar.update(1)

    from histosynth.distributed.executors import LocalExecutor

    runner = executor if executor is not None else LocalExecutor(workers)
    try:
        if todo:
            runner.run(todo, work, finish)
    finally:
        bar.close()
    order = {k: i for i, k in enumerate(keys)}
    summary.done.sort(key=order.__getitem__)
    summary.failed.sort(key=lambda r: order[r.key])
    return summary
