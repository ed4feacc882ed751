"""Executors: where the items of :func:`histosynth.jobs.run_items` run.

- ``local``: this process (1 worker) or a process pool on this machine; no server.
- ``ray``: tasks on a Ray cluster (``--executor ray --ray-address ADDR``), or on a Ray
  instance started here when no address is given.

An executor only *runs* items, each through :func:`call_item`, which turns the work's output or
exception into an :class:`ItemRecord`: the caller journals each record and writes the artefact,
so a stage's output does not depend on which executor ran it. Both keep a bounded number of items
in flight, so memory stays flat for long item lists.

For model inference (``embed``, ``sample``) a work function takes its model from
:func:`histosynth.distributed.cache.per_worker`, so every pool process or Ray worker loads one
model and reuses it for all the items it runs. On Ray, ``actors=N`` runs items on N
long-lived actors (one GPU each with ``num_gpus=1``) instead of tasks: Ray gives a GPU task a
fresh process each time (``max_calls=1``), which would reload the model per item.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
import traceback
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from histosynth.disk import as_disk_full, is_disk_full
from histosynth.registry import Registry

__all__ = [
    "EXECUTORS",
    "Executor",
    "ItemRecord",
    "LocalExecutor",
    "RayExecutor",
    "call_item",
    "item_cores",
    "make_executor",
]

Work = Callable[[str, Any], Any]


@dataclass(frozen=True)
class ItemRecord:
    """Outcome of one item: ``status`` is ``"done"`` or ``"failed"``."""

    key: str
    status: str
    error: str | None = None
    seconds: float = 0.0
    output: Any = None


def call_item(work: Work, key: str, item: Any) -> ItemRecord:
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


Finish = Callable[[ItemRecord], None]

EXECUTORS: Registry[type[Executor]] = Registry("executor")


class Executor(ABC):
    """Runs ``work`` over ``(key, item)`` pairs and hands each record to ``finish``; as a context
    manager, it closes itself on leaving."""

    @abstractmethod
    def run(self, todo: list[tuple[str, Any]], work: Work, finish: Finish) -> None: ...

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release workers or cluster connections."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


@EXECUTORS.register("local", help="this machine: in-process, or a pool of worker processes")
class LocalExecutor(Executor):
    """In-process (``workers <= 1``) or a process pool of ``workers`` processes."""

    def __init__(self, workers: int = 1) -> None:
        self.workers = max(1, int(workers))

    def run(self, todo: list[tuple[str, Any]], work: Work, finish: Finish) -> None:
        if self.workers == 1 or len(todo) == 1:
            for key, item in todo:
                finish(call_item(work, key, item))
            return
        # On interrupt, pending futures are cancelled; running ones finish into nothing
        # because every output is written atomically.
        # Fresh (spawned) processes: a forked child of a process whose torch or OpenMP
        # threads are running can deadlock, and each worker should load its own model.
        pool = ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(_import_root(work), max(1, (os.cpu_count() or 1) // self.workers)),
        )
        pending: set[Future[ItemRecord]] = set()
        it = iter(todo)
        try:
            while True:
                while len(pending) < 2 * self.workers and (nxt := next(it, None)) is not None:
                    pending.add(pool.submit(call_item, work, *nxt))
                if not pending:
                    break
                finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in finished:
                    finish(fut.result())
        finally:
            for fut in pending:
                fut.cancel()
            pool.shutdown(wait=True, cancel_futures=True)


def _import_root(work: Work) -> str | None:
    """The folder from which ``work``'s module is imported (a spawned worker unpickles it by
    name, and the module may come from a folder that is not on ``sys.path``, e.g. tests)."""
    fn = getattr(work, "func", work)  # functools.partial
    name = getattr(fn, "__module__", None) or type(fn).__module__
    file = getattr(sys.modules.get(name), "__file__", None)
    if not file or name == "__main__":
        return None
    root = Path(file).resolve().parent
    for _ in range(name.count(".") + (Path(file).name == "__init__.py")):
        root = root.parent
    return str(root)


_WORKER_CORES = 0  # a pool worker's share of the cores (0: not a pool worker)


def item_cores() -> int:
    """Cores an item may keep busy with its own threads, where it runs.

    A local pool worker's share of the machine; elsewhere ``OMP_NUM_THREADS`` when set (Ray
    sets it to a task's ``num_cpus``), else the CPUs this process may run on.
    """
    if _WORKER_CORES:
        return _WORKER_CORES
    try:
        return max(1, int(os.environ["OMP_NUM_THREADS"]))
    except (KeyError, ValueError):
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _init_worker(root: str | None, threads: int) -> None:
    """Make ``work`` importable, and share the cores: N workers each using every core (torch's
    default) run several times slower than one worker, as OpenMP threads wait on each other."""
    global _WORKER_CORES
    _WORKER_CORES = threads
    if root and root not in sys.path:
        sys.path.append(root)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(threads))
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


@EXECUTORS.register("ray", help="a Ray cluster (--ray-address), or a local Ray instance")
class RayExecutor(Executor):
    """Ray tasks (or ``actors`` long-lived actors), ``num_cpus``/``num_gpus`` each.

    Tasks: at most ``max_in_flight`` at a time; a task whose worker dies (node lost,
    OOM-killed) is retried by Ray up to ``max_retries`` times, then recorded as failed.
    Actors: each runs one item at a time and keeps its model between items; an actor that
    dies fails its item and is replaced (``max_retries`` replacements in all). Either way,
    re-running the stage runs the failed items again and skips every item journalled as done.
    """

    def __init__(
        self,
        address: str | None = None,
        num_cpus: float = 1,
        num_gpus: float = 0,
        max_in_flight: int | None = None,
        max_retries: int = 3,
        actors: int | None = None,
        init_kwargs: dict[str, Any] | None = None,
    ) -> None:
        try:
            import ray
        except ImportError:
            raise RuntimeError("the ray executor needs Ray: pip install 'histosynth[ray]'") from None
        self._ray = ray
        self._started = False
        if not ray.is_initialized():
            ray.init(address=address, logging_level="ERROR", log_to_driver=False, **(init_kwargs or {}))
            self._started = True
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.max_in_flight = max_in_flight or max(2, 2 * int(cpus // max(num_cpus, 1e-9)))
        self.max_retries = max_retries
        self.actors = actors
        self._resources = {"num_cpus": num_cpus, "num_gpus": num_gpus}
        self._task = ray.remote(num_cpus=num_cpus, num_gpus=num_gpus, max_retries=max_retries)(call_item)

    def run(self, todo: list[tuple[str, Any]], work: Work, finish: Finish) -> None:
        if self.actors:
            self._run_actors(todo, work, finish)
        else:
            self._run_tasks(todo, work, finish)

    def _run_tasks(self, todo: list[tuple[str, Any]], work: Work, finish: Finish) -> None:
        ray = self._ray
        work_ref = ray.put(work)  # shipped once, not once per item
        pending: dict[Any, str] = {}
        it = iter(todo)
        try:
            while True:
                while len(pending) < self.max_in_flight and (nxt := next(it, None)) is not None:
                    pending[self._task.remote(work_ref, *nxt)] = nxt[0]
                if not pending:
                    break
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    key = pending.pop(ref)
                    finish(self._record(ref, key))
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)

    def _run_actors(self, todo: list[tuple[str, Any]], work: Work, finish: Finish) -> None:
        ray = self._ray
        actor_cls = ray.remote(**self._resources)(_ItemActor)
        work_ref = ray.put(work)
        free = deque(actor_cls.remote() for _ in range(min(int(self.actors or 1), len(todo))))
        replacements = self.max_retries
        pending: dict[Any, tuple[str, Any]] = {}
        queue = deque(todo)
        try:
            while queue or pending:
                while free and queue:
                    actor, (key, item) = free.popleft(), queue.popleft()
                    pending[actor.run.remote(work_ref, key, item)] = (key, actor)
                if not pending:  # every actor is gone: what is left fails, a re-run retries it
                    for key, _ in queue:
                        finish(ItemRecord(key, "failed", "ray: no actors left"))
                    break
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    key, actor = pending.pop(ref)
                    rec = self._record(ref, key)
                    if rec.status == "failed" and (rec.error or "").startswith("ray worker lost"):
                        ray.kill(actor, no_restart=True)
                        actor = actor_cls.remote() if replacements > 0 else None
                        replacements -= 1
                    if actor is not None:
                        free.append(actor)
                    finish(rec)
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)
            for actor in [*free, *(a for _, a in pending.values())]:
                ray.kill(actor)

    def _record(self, ref: Any, key: str) -> ItemRecord:
        try:
            return self._ray.get(ref)
        except self._ray.exceptions.RayError as exc:  # the worker died: record, go on
            return ItemRecord(key, "failed", f"ray worker lost: {type(exc).__name__}")

    def close(self) -> None:
        if self._started and self._ray.is_initialized():
            self._ray.shutdown()
            self._started = False


class _ItemActor:
    """A long-lived Ray worker: its process keeps the models its items load (see cache.py)."""

    def run(self, work: Work, key: str, item: Any) -> ItemRecord:
        return call_item(work, key, item)


def make_executor(
    name: str = "local",
    workers: int | None = None,
    address: str | None = None,
    *,
    models: bool = False,
    gpus_per_worker: float = 0,
    **kwargs: Any,
) -> Executor:
    """Build an executor from CLI-level settings (``--executor``, ``--workers``, ``--ray-address``).

    Parameters
    ----------
    name
        ``"local"`` or ``"ray"``.
    workers
        Local: worker processes (default 1). Ray with ``models``: actors (default: as many as
        the cluster has GPUs, or CPUs, for them); Ray otherwise: ignored (tasks fill the cluster).
    address
        The Ray cluster's address (``None``: start a Ray instance here).
    models
        The work loads a model: on Ray, run it on long-lived actors that keep it.
    gpus_per_worker
        GPUs each Ray task or actor reserves.
    """
    cls = EXECUTORS.get(name)
    if cls is LocalExecutor:
        return LocalExecutor(workers or 1)
    if cls is RayExecutor and models:
        ex = RayExecutor(address=address, num_gpus=gpus_per_worker, actors=1, **kwargs)
        ex.actors = workers or _cluster_slots(ex, gpus_per_worker)
        return ex
    return cls(address=address, num_gpus=gpus_per_worker, **kwargs)


def _cluster_slots(ex: RayExecutor, gpus_per_worker: float) -> int:
    """How many workers of this size the cluster holds (at least one)."""
    res = ex._ray.cluster_resources()
    if gpus_per_worker > 0:
        return max(1, int(res.get("GPU", 0) // gpus_per_worker))
    return max(1, int(res.get("CPU", 1)))
