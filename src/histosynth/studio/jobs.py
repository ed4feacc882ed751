"""Background generation: one worker thread runs requests one at a time, in arrival order.

A request sent while another runs waits in the queue (it is never dropped); the page polls a
job for its state, queue position and step progress. Finished jobs keep their result in
memory, the oldest forgotten past ``keep``.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from histosynth.data.classmap import ClassMap
from histosynth.data.crops import Crop

__all__ = ["Generator", "GenerateSettings", "Job", "JobQueue", "QueueFullError"]

log = logging.getLogger(__name__)


class Generator(Protocol):
    """What the studio needs of a model (``histosynth.sample.synthesis.Synthesizer`` provides it)."""

    classes: ClassMap
    image_size: int
    samplers: list[str]

    def generate(
        self,
        label: np.ndarray,
        crops: list[Crop],
        guidance_map: float,
        guidance_crops: float,
        steps: int,
        sampler: str,
        seed: int,
        progress: Callable[[int, int], None] | None = None,
    ) -> np.ndarray: ...


class QueueFullError(RuntimeError):
    """Too many requests are waiting already."""


@dataclass(frozen=True)
class GenerateSettings:
    """The knobs of one generation (validated by the caller)."""

    guidance_map: float
    guidance_crops: float
    steps: int
    sampler: str
    seed: int


@dataclass
class Job:
    """One generation request and, once done, its result.

    Attributes
    ----------
    state
        ``queued``, ``running``, ``done`` or ``failed``.
    step, total
        Sampler progress as reported by the generator.
    image
        RGB uint8 ``(H, W, 3)`` once done.
    error
        One sentence when failed.
    """

    id: str
    label: np.ndarray
    crops: list[Crop]
    settings: GenerateSettings
    state: str = "queued"
    step: int = 0
    total: int = 0
    image: np.ndarray | None = None
    error: str | None = None
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    cache: dict[str, Any] = field(default_factory=dict)

    def crop_sources(self) -> list[dict[str, Any]]:
        """Class and provenance of every exemplar crop used."""
        return [{"class_id": c.class_id, "source": c.source} for c in self.crops]


class JobQueue:
    """A FIFO of generation jobs served by one daemon thread.

    Parameters
    ----------
    generator
        The model; called from the worker thread only, so it needs no locking.
    max_waiting
        Most jobs that may wait at once; one more is refused with :class:`QueueFullError`.
    keep
        Finished jobs kept for download.
    """

    def __init__(self, generator: Generator, max_waiting: int = 16, keep: int = 32) -> None:
        self.generator = generator
        self.max_waiting = max_waiting
        self.keep = keep
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._waiting: deque[Job] = deque()
        self._cond = threading.Condition()
        self._ids = itertools.count(1)
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="studio-generate", daemon=True)
        self._thread.start()

    def submit(self, label: np.ndarray, crops: list[Crop], settings: GenerateSettings) -> Job:
        """Queue a request; it runs after every request queued before it."""
        with self._cond:
            if self._closed:
                raise QueueFullError("the studio is shutting down")
            if len(self._waiting) >= self.max_waiting:
                raise QueueFullError(
                    f"{len(self._waiting)} requests are already waiting; try again when one has finished"
                )
            job = Job(f"job{next(self._ids)}", label, crops, settings)
            self._jobs[job.id] = job
            self._waiting.append(job)
            self._forget_old()
            self._cond.notify_all()
            return job

    def get(self, job_id: str) -> Job | None:
        """The job of that id, or ``None`` when unknown or forgotten."""
        with self._cond:
            return self._jobs.get(job_id)

    def position(self, job: Job) -> int:
        """How many jobs run or wait before ``job`` (0: it runs now or has finished)."""
        with self._cond:
            if job.state != "queued":
                return 0
            running = any(j.state == "running" for j in self._jobs.values())
            return int(running) + next((i for i, j in enumerate(self._waiting) if j is job), 0)

    def wait(self, job: Job, timeout: float | None = None) -> bool:
        """Block until ``job`` has finished or failed; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: job.state in ("done", "failed"), timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Stop taking jobs; the worker finishes the running one and exits."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout)

    # ------------------------------------------------------------------ worker
    def _forget_old(self) -> None:
        finished = [k for k, j in self._jobs.items() if j.state in ("done", "failed")]
        for k in finished[: max(0, len(finished) - self.keep)]:
            del self._jobs[k]

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._waiting or self._closed)
                if self._closed:
                    return
                job = self._waiting.popleft()
                job.state, job.started = "running", time.time()
            image, error = self._execute(job)
            with self._cond:
                job.image, job.error, job.finished = image, error, time.time()
                job.state = "failed" if error else "done"
                self._forget_old()
                self._cond.notify_all()

    def _execute(self, job: Job) -> tuple[np.ndarray | None, str | None]:
        def progress(step: int, total: int) -> None:
            job.step, job.total = int(step), int(total)

        s = job.settings
        try:
            image = self.generator.generate(
                job.label,
                job.crops,
                guidance_map=s.guidance_map,
                guidance_crops=s.guidance_crops,
                steps=s.steps,
                sampler=s.sampler,
                seed=s.seed,
                progress=progress,
            )
            image = np.asarray(image)
            if image.dtype != np.uint8 or image.shape != (*job.label.shape, 3):
                raise ValueError(
                    f"the model returned an image of shape {image.shape} and type {image.dtype}, "
                    f"expected {(*job.label.shape, 3)} uint8"
                )
            return image, None
        except Exception as exc:  # the page shows it; the worker keeps serving later jobs
            log.exception("generation %s failed", job.id)
            return None, f"generation failed: {exc}"
