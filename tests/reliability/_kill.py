"""Kill a CLI run with SIGKILL at seeded moments, re-run it, and compare artefact folders.

A crash test runs a command once uninterrupted (the reference, which also measures the working
window: from the stage claiming its folder until it exits), then, per seed, runs it into a
fresh folder of the same path and kills it a few times, each time once the run has made
progress of its own plus a delay drawn from a seeded RNG, and finally runs it to the end. The reference is moved aside and the crashed run reuses
its path, so artefacts that record their own location still compare byte for byte.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

CLI = [sys.executable, "-m", "histosynth"]
# One BLAS/OpenMP thread: the reference and the resumed runs do the same float reductions,
# and four engineers share two cores.
ENV = {**os.environ, "HISTOSYNTH_PROGRESS": "0", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
       "MKL_NUM_THREADS": "1"}  # fmt: skip
POLL = 0.005
TIMEOUT = 300.0

# Files that legitimately differ between runs: the manifest's timestamp (compared apart) and the
# journals' per-item timings.
# Bookkeeping, not results: the journals, and the write lock (a kill between the manifest and the
# lock's removal leaves a stale ``.lock`` naming the dead pid, which the next writer takes over).
VOLATILE = ("manifest.json", "_journal.jsonl", "_plan_journal.jsonl", ".lock")


def _started(out: Path) -> bool:
    """The stage has imported its code and claimed the folder."""
    return (out / ".pending.json").is_file() or (out / "manifest.json").is_file()


def _wait(proc: subprocess.Popen, until: Callable[[], bool], limit: float = TIMEOUT) -> None:
    deadline = time.monotonic() + limit
    while proc.poll() is None and not until():
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"{proc.args}: nothing happened within {limit} s")
        time.sleep(POLL)


def _popen(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        [*CLI, *map(str, args)], env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


def run_to_end(args: list[str], out: Path, ok: Iterable[int] = (0,)) -> float:
    """Run the command uninterrupted; return its working window in seconds."""
    proc = _popen(args)
    _wait(proc, lambda: _started(out))
    t0 = time.monotonic()
    _, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode in tuple(ok), f"{args}: exit {proc.returncode}\n{err.decode()[-2000:]}"
    return time.monotonic() - t0


def run_and_kill(args: list[str], out: Path, delay: float, progress: Callable[[Path], int]) -> bool:
    """Start the command, wait until ``progress(out)`` grows, then SIGKILL it ``delay`` s later.

    Waiting for progress (rather than timing from the start) makes every kill land inside this
    run's own work, also on re-runs, which find the folder already claimed.

    Returns
    -------
    bool
        True when the kill landed while the command was still running.
    """
    before = progress(out)
    proc = _popen(args)
    _wait(proc, lambda: progress(out) > before)
    deadline = time.monotonic() + delay
    while proc.poll() is None and time.monotonic() < deadline:
        time.sleep(POLL)
    killed = proc.poll() is None
    if killed:
        proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=TIMEOUT)
    return killed


def digest(folder: Path, skip: Iterable[str] = VOLATILE) -> dict[str, str]:
    """Relative path → SHA-256 of every file under ``folder`` (hidden ones too) except ``skip`` names."""
    skip = set(skip)
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.name not in skip:
            out[p.relative_to(folder).as_posix()] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


# Manifest fields that time a run rather than describe its result.
TIMINGS = ("created", "seconds")


def _drop_timings(obj):
    if isinstance(obj, dict):
        return {k: _drop_timings(v) for k, v in obj.items() if k not in TIMINGS}
    if isinstance(obj, list):
        return [_drop_timings(v) for v in obj]
    return obj


def manifest_body(folder: Path) -> dict:
    """The manifest without its timings (creation time, seconds taken)."""
    return _drop_timings(json.loads((folder / "manifest.json").read_text()))


@dataclass
class CrashReport:
    """What the kills did: how many landed mid-run, and each seed's kill delays."""

    interrupted: int = 0
    delays: dict[int, list[float]] = field(default_factory=dict)


def crash_and_resume(
    args: list[str],
    out: Path,
    seeds: Iterable[int],
    progress: Callable[[Path], int],
    kills: int = 2,
    same: Callable[[Path, Path], None] | None = None,
    skip: Iterable[str] = VOLATILE,
    ok: Iterable[int] = (0,),
) -> CrashReport:
    """Kill ``args`` at seeded moments, resume it, and check it ends equal to an uninterrupted run.

    Parameters
    ----------
    args
        CLI arguments after ``histosynth``; they write ``out``.
    out
        The output folder the arguments name (must not exist yet).
    seeds
        One crashed-and-resumed run per seed.
    progress
        A count that grows as the run finishes work (journal lines, checkpoint step).
    kills
        Kills per seed, each after the run has made some progress of its own.
    same
        Extra comparison ``same(reference, resumed)`` (e.g. weights within tolerance).
    skip
        File names left out of the byte comparison.
    ok
        Exit codes of a finished run (1 where a batch holds a bad item on purpose).
    """
    window = run_to_end(args, out, ok)
    ref = out.with_name(out.name + "-reference")
    shutil.rmtree(ref, ignore_errors=True)
    out.rename(ref)
    want, want_manifest = digest(ref, skip), manifest_body(ref)
    report = CrashReport()
    for seed in seeds:
        rng = np.random.default_rng(seed)
        report.delays[seed] = []
        for k in range(kills):
            delay = float(rng.uniform(0.0, window / 2))  # later kills would often miss the run
            report.delays[seed].append(delay)
            killed = run_and_kill(args, out, delay, progress)
            report.interrupted += killed
            if (out / "manifest.json").is_file():  # looking complete means being complete
                assert digest(out, skip) == want, f"seed {seed} kill {k}: a manifest over an unfinished {out}"
        run_to_end(args, out, ok)
        got = digest(out, skip)
        assert got.keys() == want.keys(), f"seed {seed}: files differ: {sorted(got.keys() ^ want.keys())}"
        changed = [k for k in want if got[k] != want[k]]
        assert not changed, f"seed {seed}: files differ in content after resuming: {changed[:5]}"
        got_manifest = manifest_body(out)
        differ = {k: (want_manifest.get(k), got_manifest.get(k))
                  for k in want_manifest.keys() | got_manifest.keys()
                  if want_manifest.get(k) != got_manifest.get(k)}  # fmt: skip
        assert not differ, f"seed {seed}: manifests differ: {differ}"
        if same is not None:
            same(ref, out)
        shutil.rmtree(out)
    return report


def journal_lines(*names: str) -> Callable[[Path], int]:
    """Progress as the lines of the named journals of the output folder (items finished)."""

    def count(out: Path) -> int:
        total = 0
        for name in names:
            try:
                total += len((out / name).read_text().splitlines())
            except FileNotFoundError:
                continue
        return total

    return count


def checkpoint_step(out: Path) -> int:
    """Progress as the newest checkpoint's step (pruning old ones does not lower it)."""
    steps = [int(p.name.split("-")[1]) for p in (out / "checkpoints").glob("step-*")]
    return max(steps, default=0)
