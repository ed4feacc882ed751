import threading

import numpy as np
import pytest

from histosynth.data.crops import Crop
from histosynth.studio.jobs import GenerateSettings, JobQueue, QueueFullError
from tests.studio.conftest import painted_label

SETTINGS = GenerateSettings(1.0, 1.0, 3, "ddim", 0)


def test_second_request_waits_and_both_finish_in_order(generator):
    generator.gate = threading.Event()
    q = JobQueue(generator)
    try:
        first = q.submit(painted_label(), [], SETTINGS)
        second = q.submit(painted_label(), [Crop(1, np.zeros((8, 8, 3), np.uint8))], SETTINGS)
        assert q.position(second) == 1 and second.state == "queued"
        generator.gate.set()
        assert q.wait(second, 10) and q.wait(first, 10)
        assert first.state == second.state == "done"
        assert (first.step, first.total) == (3, 3)
        assert first.finished <= second.started
        assert np.array_equal(second.image, generator.classes.colorize(painted_label()))
        assert [len(c["crops"]) for c in generator.calls] == [0, 1]
    finally:
        q.close()


def test_failure_is_reported_and_later_jobs_still_run(generator):
    class Broken:
        classes, image_size, samplers = generator.classes, 64, ["ddim"]

        def __init__(self):
            self.n = 0

        def generate(self, label, *args, **kwargs):
            self.n += 1
            if self.n == 1:
                raise RuntimeError("out of memory")
            return np.zeros((5, 5, 3), np.uint8)  # wrong size

    q = JobQueue(Broken())
    try:
        a, b = q.submit(painted_label(), [], SETTINGS), q.submit(painted_label(), [], SETTINGS)
        assert q.wait(b, 10)
        assert a.state == "failed" and a.error == "generation failed: out of memory"
        assert b.state == "failed" and "expected (64, 64, 3) uint8" in b.error
    finally:
        q.close()


def test_full_queue_refuses_and_old_results_are_forgotten(generator):
    generator.gate = threading.Event()
    q = JobQueue(generator, max_waiting=2, keep=1)
    try:
        jobs = [q.submit(painted_label(), [], SETTINGS) for _ in range(2)]
        # the worker may or may not have taken the first one yet; fill to the limit either way
        while True:
            try:
                jobs.append(q.submit(painted_label(), [], SETTINGS))
            except QueueFullError as exc:
                assert "already waiting" in str(exc)
                break
        generator.gate.set()
        assert q.wait(jobs[-1], 10)
        assert q.get(jobs[-1].id) is jobs[-1] and q.get(jobs[0].id) is None
    finally:
        q.close()
    with pytest.raises(QueueFullError, match="shutting down"):
        q.submit(painted_label(), [], SETTINGS)
