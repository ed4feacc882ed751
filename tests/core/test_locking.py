"""One writer per output folder: a second process is refused by name; a killed holder's lock is taken over."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from tests.conftest import run_cli

from histosynth.artifacts import prepare_output, write_manifest
from histosynth.locking import LOCK, FolderBusyError, acquire, held, release

ENV = {**os.environ, "HISTOSYNTH_PROGRESS": "0", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def _holder_pid(folder, limit: float = 120.0) -> int:
    """The pid written into ``folder``'s lock file, once a process has taken it."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            return int(json.loads((folder / LOCK).read_text())["pid"])
        except (FileNotFoundError, ValueError, KeyError):
            time.sleep(0.01)
    raise AssertionError(f"no process took the lock of {folder} within {limit} s")


def test_claim_holds_the_lock_until_the_manifest(tmp_path):
    out = tmp_path / "a"
    claim = prepare_output(out, "toy", {"x": 1})
    assert not claim.complete and (out / LOCK).is_file() and out.resolve() in held()
    assert json.loads((out / LOCK).read_text())["pid"] == os.getpid()
    prepare_output(out, "toy", {"x": 1})  # the same process again: re-entrant
    write_manifest(out, "toy", {"x": 1})
    assert not (out / LOCK).exists() and out.resolve() not in held()
    assert prepare_output(out, "toy", {"x": 1}).complete and not (out / LOCK).exists()


def test_second_train_into_the_same_folder_is_refused_naming_the_first(tiny_dataset, tmp_path, capsys):
    run = tmp_path / "run"
    args = ["train", tiny_dataset, run, "--preset", "cpu-tiny", "--steps", "100000", "--set", "run.checkpoint_every=100000"]  # fmt: skip
    first = subprocess.Popen([sys.executable, "-m", "histosynth", *map(str, args)], env=ENV,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    try:
        import histosynth.train.loop  # noqa: F401  (while the first one starts: the imports overlap)

        assert _holder_pid(run) == first.pid
        code, text = run_cli(args, capsys)
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=60)
    errors = [ln for ln in text.splitlines() if ln.startswith("histosynth: error: ")]
    assert code == 2 and len(errors) == 1 and "Traceback" not in text, text
    assert f"pid {first.pid}" in errors[0] and "histosynth train" in errors[0], errors[0]
    assert "another process is writing this folder" in errors[0]
    assert run.resolve() not in held()  # the refused command left nothing held

    # The killed run left its lock file behind; the kernel dropped the lock itself.
    assert _holder_pid(run) == first.pid
    acquire(run)
    try:
        assert _holder_pid(run) == os.getpid()
    finally:
        release(run)


def test_stale_lock_of_a_killed_tile_run_is_taken_over(tmp_path, capsys):
    from histosynth.samples import write_synthetic_slide

    (tmp_path / "s").mkdir()
    for i in range(4):
        write_synthetic_slide(tmp_path / "s" / f"s{i}.tif", size=(1024, 768), seed=i)
    out = tmp_path / "tiles"
    args = ["tile", tmp_path / "s", "-o", out, "--size", "64"]
    proc = subprocess.Popen([sys.executable, "-m", "histosynth", *map(str, args)], env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    pid = _holder_pid(out)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert pid == proc.pid and not (out / "manifest.json").exists()
    code, text = run_cli(args, capsys)
    assert code == 0, text
    assert (out / "manifest.json").is_file() and not (out / LOCK).exists()


def test_busy_error_is_a_user_error():
    from histosynth.errors import USER_ERRORS

    assert issubclass(FolderBusyError, USER_ERRORS)


@pytest.mark.parametrize("argv0", ["/usr/bin/histosynth", "/x/histosynth/__main__.py"])
def test_the_command_is_named_as_typed(monkeypatch, argv0):
    from histosynth.locking import _command

    monkeypatch.setattr(sys, "argv", [argv0, "tile", "my slides", "-o", "out"])
    assert _command() == "histosynth tile 'my slides' -o out"
