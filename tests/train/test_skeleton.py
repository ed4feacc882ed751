"""The trainer skeleton: cadence, stopping (callback, deadline, Ctrl-C), stats, claiming, checkpoints."""

import signal

import pytest
import torch

from histosynth.artifacts import MANIFEST, PENDING, Kind, write_manifest
from histosynth.train.checkpoint import checkpoints, latest_checkpoint, write_checkpoint
from histosynth.train.skeleton import Every, Resume, StatsLog, claim_run, run_steps


def _recorder(events, **kw):
    """``run_steps`` keyword arguments that record what the skeleton calls, in order."""
    return dict(
        log=lambda done: events.append(("log", done)),
        checkpoint=lambda done: events.append(("checkpoint", done)),
        sample=lambda done: events.append(("sample", done)),
        show_progress=False,
        **kw,
    )


def test_steps_log_sample_and_checkpoint_on_their_cadence_and_at_a_stop():
    events = []
    done = run_steps(0, 7, lambda s: events.append(("step", s)), every=Every(log=3, checkpoint=5),
                     **_recorder(events, callback=lambda done: done == 4))  # fmt: skip
    assert done == 4
    assert events == [("step", 0), ("step", 1), ("step", 2), ("log", 3), ("step", 3),
                      ("log", 4), ("sample", 4), ("checkpoint", 4)]  # fmt: skip

    events.clear()  # resumed from step 4: the cadence counts steps of the run, not of this call
    assert (
        run_steps(4, 7, lambda s: None, every=Every(log=3, checkpoint=5, sample=2), **_recorder(events)) == 7
    )
    assert events == [
        ("checkpoint", 5),
        ("log", 6),
        ("sample", 6),
        ("log", 7),
        ("sample", 7),
        ("checkpoint", 7),
    ]
    assert run_steps(7, 7, lambda s: None, every=Every(1, 1), **_recorder(events)) == 7  # nothing left to do


def test_a_deadline_stops_at_the_end_of_the_step_in_progress():
    events = []
    assert run_steps(2, 100, lambda s: None, every=Every(10, 10), **_recorder(events, max_minutes=0)) == 3
    assert events == [("log", 3), ("sample", 3), ("checkpoint", 3)]


@pytest.fixture
def python_ctrl_c():
    """Python's own Ctrl-C handler for the test, whatever an earlier test in this process left
    installed (one that does not raise made the second Ctrl-C below a no-op in a full run)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_first_ctrl_c_stops_with_a_checkpoint_and_a_second_interrupts(python_ctrl_c):
    before = signal.getsignal(signal.SIGINT)
    events = []

    def step(s):
        if s == 1:
            signal.raise_signal(signal.SIGINT)

    assert run_steps(0, 5, step, every=Every(10, 10), **_recorder(events)) == 2
    assert events[-1] == ("checkpoint", 2) and signal.getsignal(signal.SIGINT) is before

    def twice(s):
        signal.raise_signal(signal.SIGINT)
        signal.raise_signal(signal.SIGINT)

    events.clear()
    with pytest.raises(KeyboardInterrupt):
        run_steps(0, 5, twice, every=Every(10, 10), **_recorder(events))
    assert events == [] and signal.getsignal(signal.SIGINT) is before


def test_stats_are_cut_back_to_the_checkpoint_a_run_resumes_from(tmp_path):
    stats = StatsLog(tmp_path / "stats.jsonl")
    stats.truncate(0)  # no file yet: nothing to do
    for step in range(1, 6):
        stats.append({"step": step, "loss": 1 / step})
    stats.truncate(3)
    assert [r["step"] for r in stats.rows()] == [1, 2, 3]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stats.jsonl"]  # replaced atomically, no leftovers
    stats.plot(tmp_path / "loss.png")
    assert (tmp_path / "loss.png").stat().st_size > 0


def test_claim_run_returns_a_finished_run_and_extends_a_shorter_one(tmp_path):
    ident, inputs = {"lr": 1}, {"dataset": "d"}
    assert claim_run(tmp_path, Kind.CODEC, ident, inputs, 5) is None  # a fresh folder: in progress
    write_manifest(tmp_path, Kind.CODEC, ident, inputs, {"steps": 5})
    assert claim_run(tmp_path, Kind.CODEC, ident, inputs, 5)["counts"]["steps"] == 5
    assert claim_run(tmp_path, Kind.CODEC, ident, inputs, 8) is None  # more steps: in progress again
    assert not (tmp_path / MANIFEST).exists() and (tmp_path / PENDING).is_file()


def test_checkpoints_are_whole_or_absent_and_the_newest_are_kept(tmp_path):
    root = tmp_path / "checkpoints"

    def write(folder):
        torch.save({"w": torch.ones(2)}, folder / "training_state" / "optimizer.pt")

    for step in (2, 4, 6):
        write_checkpoint(root, step, write, extra={"note": "x"}, keep=2)
    assert [p.name for p in checkpoints(root)] == ["step-00000004", "step-00000006"]

    def fail(folder):
        write(folder)
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_checkpoint(root, 8, fail, keep=2)
    assert latest_checkpoint(root).name == "step-00000006"  # the half-written step 8 is not one
    resume = Resume.latest(tmp_path)
    assert (resume.step, resume.trainer["note"], resume.optimizer["w"].tolist()) == (6, "x", [1.0, 1.0])
    assert Resume.latest(tmp_path / "elsewhere") == Resume()


def test_a_removal_killed_midway_leaves_nothing_behind_after_the_next_checkpoint(tmp_path):
    # CI caught this: a kill inside the pruning of an old checkpoint left a half step-* folder
    # that no later run removed, so a resumed run's folder differed from a straight run's.
    root = tmp_path / "checkpoints"

    def write(folder):
        torch.save({"w": torch.ones(2)}, folder / "training_state" / "optimizer.pt")

    for step in (2, 4):
        write_checkpoint(root, step, write, keep=2)
    (root / "step-00000002" / "training_state" / "trainer.pt").unlink()  # removal cut short in place
    (root / ".step-00000004.removing").mkdir()  # or cut short after the rename
    write_checkpoint(root, 6, write, keep=2)
    assert sorted(p.name for p in root.iterdir()) == ["step-00000004", "step-00000006"]
