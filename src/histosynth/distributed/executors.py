"""Executors: where the items of :func:`histosynth.jobs.run_items` run.

- ``local``: this process (1 worker) or a process pool on this machine; no server.
- ``ray``: tasks on a Ray cluster (``--executor ray --ray-address ADDR``), or on a Ray
  instance started here when no address is given.

An executor only *runs* items: the caller journals each result and writes the artefact, so a
stage's output does not depend on which executor ran it. Both keep a bounded number of items
in flight, so memory stays flat for long item lists. For GPU inference, a work function keeps
its model in a per-process cache (e.g. ``functools.lru_cache`` on the loader): every pool
process or Ray worker then loads one model and reuses it for all the items it runs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any

from histosynth.jobs import ItemRecord, call_item
from histosynth.registry import Registry

__all__ = ["EXECUTORS", "Executor", "LocalExecutor", "RayExecutor", "make_executor"]

Work = Callable[[str, Any], Any]
Finish = Callable[[ItemRecord], None]

EXECUTORS: Registry[type[Executor]] = Registry("executor")


class Executor(ABC):
    """Runs ``work`` over ``(key, item)`` pairs and hands each record to ``finish``."""

    @abstractmethod
    def run(self, todo: list[tuple[str, Any]], work: Work, finish: Finish) -> None: ...

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release workers or cluster connections."""


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
        pool = ProcessPoolExecutor(max_workers=self.workers)
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


@EXECUTORS.register("ray", help="a Ray cluster (--ray-address), or a local Ray instance")
class RayExecutor(Executor):
    """Ray tasks, ``num_cpus``/``num_gpus`` each, at most ``max_in_flight`` at a time.

    A task whose worker dies (node lost, OOM-killed) is retried by Ray up to ``max_retries``
    times; after that it is recorded as failed, and re-running the stage runs it again while
    skipping every item already journalled as done.
    """

    def __init__(
        self,
        address: str | None = None,
        num_cpus: float = 1,
        num_gpus: float = 0,
        max_in_flight: int | None = None,
        max_retries: int = 3,
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
        self._task = ray.remote(num_cpus=num_cpus, num_gpus=num_gpus, max_retries=max_retries)(call_item)

    def run(self, todo: list[tuple[str, Any]], work: Work, finish: Finish) -> None:
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
                    try:
                        finish(ray.get(ref))
                    except ray.exceptions.RayError as exc:  # the worker died: record, go on
                        finish(ItemRecord(key, "failed", f"ray worker lost: {type(exc).__name__}"))
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)

    def close(self) -> None:
        if self._started and self._ray.is_initialized():
            self._ray.shutdown()
            self._started = False


def make_executor(
    name: str = "local", workers: int = 1, address: str | None = None, **kwargs: Any
) -> Executor:
    """Build an executor from CLI-level settings (``--executor``, ``--workers``, ``--ray-address``)."""
    cls = EXECUTORS.get(name)
    if cls is LocalExecutor:
        return LocalExecutor(workers)
    return cls(address=address, **kwargs)
