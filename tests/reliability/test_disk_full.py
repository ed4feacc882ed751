"""A full disk, for real: each stage writes onto a small tmpfs mounted for the test.

Per stage: a straight run on the small file system measures what the stage writes; then the
file system is filled until only half of that is left, and the stage must stop with one
``histosynth: error: … no space left …`` sentence (exit 2), leaving no ``manifest.json``; once
the filler is removed, re-running the same command completes and gives the same files as the
straight run. Mounting needs root (or CAP_SYS_ADMIN); elsewhere the tests skip with the reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.conftest import run_cli

from ._kill import VOLATILE, digest

DISK_MB = 48


@pytest.fixture(scope="module")
def small_disk(tmp_path_factory):
    """A tmpfs of DISK_MB MiB, unmounted after the module's tests."""
    mnt = tmp_path_factory.mktemp("small-disk")
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_MB}m", "tmpfs", str(mnt)],
                       check=True, capture_output=True, text=True)  # fmt: skip
    except (OSError, subprocess.CalledProcessError) as exc:
        reason = getattr(exc, "stderr", None) or exc
        pytest.skip(f"cannot mount a small tmpfs for the disk-full tests ({str(reason).strip()})")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False, capture_output=True)


def _used(folder: Path) -> int:
    """Bytes ``folder`` takes on tmpfs (whole pages per file)."""
    return sum(-(-p.stat().st_size // 4096) * 4096 + 4096 for p in folder.rglob("*"))


def _fill(disk: Path, leave: int) -> Path:
    """A file taking all free space of ``disk`` but ``leave`` bytes."""
    st = os.statvfs(disk)
    free = st.f_bavail * st.f_frsize
    filler = disk / f"filler-{uuid.uuid4().hex[:6]}"
    with open(filler, "wb") as fh:
        os.posix_fallocate(fh.fileno(), 0, max(free - leave, 4096))
    return filler


def full_disk_then_resume(args, out: Path, disk: Path, capsys, skip=VOLATILE) -> str:
    """Straight run, run on a nearly full disk, resume; returns the disk-full sentence."""
    code, text = run_cli(args, capsys)
    assert code == 0, text
    want, need = digest(out, skip), _used(out)
    shutil.rmtree(out)
    filler = _fill(disk, need // 2)
    try:
        code, text = run_cli(args, capsys)
    finally:
        filler.unlink()
    errors = [ln for ln in text.splitlines() if ln.startswith("histosynth: error: ")]
    assert code == 2 and len(errors) == 1 and "Traceback" not in text, text
    assert "no space left on the device" in errors[0] and "re-run the same command" in errors[0], errors[0]
    assert not (out / "manifest.json").exists(), "a folder that ran out of space looks finished"
    code, text = run_cli(args, capsys)
    assert code == 0, text
    got = digest(out, skip)
    assert got.keys() == want.keys(), sorted(got.keys() ^ want.keys())
    assert [k for k in want if got[k] != want[k]] == []
    shutil.rmtree(out)
    return errors[0]


@pytest.fixture(scope="module")
def slides(tmp_path_factory):
    """Two small synthetic slides with GeoJSON annotations, tiled once (inputs stay off the small disk)."""
    from click.testing import CliRunner

    from histosynth.cli.main import cli
    from tests.wsi._helpers import write_annotated_slides

    root = write_annotated_slides(tmp_path_factory.mktemp("full-inputs"), 2)
    for args in (["tile", root / "s", "-o", root / "tiles", "--size", 64],
                 ["embed", root / "tiles", "-o", root / "emb", "--workers", 0, "--set", "batch_size=16"]):  # fmt: skip
        res = CliRunner().invoke(cli, [str(a) for a in args])
        assert res.exit_code == 0, res.output
    return root


def test_tile(slides, small_disk, capsys):
    out = small_disk / "tiles"
    full_disk_then_resume(["tile", slides / "s", "-o", out, "--size", 64], out, small_disk, capsys)


def test_dataset(slides, small_disk, capsys):
    out = small_disk / "ds"
    args = ["dataset", slides / "tiles", "-o", out, "--annotations", slides / "ann", "--classes",
            slides / "classes.json", "--set", "chunk=8"]  # fmt: skip
    full_disk_then_resume(args, out, small_disk, capsys)


def test_embed(slides, small_disk, capsys):
    out = small_disk / "emb"
    args = ["embed", slides / "tiles", "-o", out, "--workers", 0, "--set", "batch_size=16"]
    full_disk_then_resume(args, out, small_disk, capsys)


def test_cluster(slides, small_disk, capsys):
    out = small_disk / "cl"
    full_disk_then_resume(["cluster", slides / "emb", "-o", out, "--k", 4], out, small_disk, capsys)


TRAIN = ["--threads", 1, "--set", "run.steps=4", "--set", "model.backbone=test", "--set", "model.codec=identity-p2",
         "--set", "optim.batch_size=4", "--set", "run.sample_every=0", "--set", "run.sample_steps=2",
         "--set", "run.grid_rows=2", "--set", "run.checkpoint_every=2", "--set", "run.log_every=2"]  # fmt: skip


def test_train(tiny_dataset, small_disk, capsys):
    out = small_disk / "run"
    full_disk_then_resume(["train", tiny_dataset, out, *TRAIN], out, small_disk, capsys,
                          skip=(*VOLATILE, "stats.jsonl", "loss.svg", "loss.png"))  # fmt: skip


def test_sample(tiny_checkpoint, tiny_dataset, small_disk, capsys):
    out = small_disk / "syn"
    args = ["sample", tiny_checkpoint, out, "--maps-from", tiny_dataset, "--bank-from", tiny_dataset,
            "-n", 6, "--steps", 2, "--batch-size", 2, "--crop-bank", small_disk / "bank"]  # fmt: skip
    full_disk_then_resume(args, out, small_disk, capsys)


def test_evaluate(tiny_dataset, small_disk, tmp_path, capsys):
    from tests.conftest import write_tiny_dataset

    other = write_tiny_dataset(tmp_path / "other", n=8, seed=3)
    out = small_disk / "eval"
    args = ["evaluate", "--real", tiny_dataset, "--synthetic", f"x={other}", "--out", out, "--preset", "quick",
            "--detector", "handcrafted", "--set", "bootstrap=0"]  # fmt: skip
    full_disk_then_resume(args, out, small_disk, capsys, skip=(*VOLATILE, "metrics.json"))
