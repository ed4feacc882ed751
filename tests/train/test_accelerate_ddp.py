"""Two CPU processes under ``accelerate launch`` (DDP, gloo) train like one process.

The same global batch is split over two processes; per-sample draws (histosynth.train.draws)
and the batch plan make both runs see the same samples and the same noise, so losses and
weights agree up to floating-point summation order.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file
from tests.conftest import write_tiny_dataset

ARGS = ["--set", "run.steps=3", "--set", "model.backbone=test", "--set", "model.codec=identity-p2",
        "--set", "optim.batch_size=4", "--set", "run.sample_every=0", "--set", "run.sample_steps=2",
        "--set", "run.grid_rows=2", "--set", "data.workers=0", "--set", "run.threads=1",
        "--set", "run.log_every=1", "--set", "optim.lr=3e-4", "--set", "optim.warmup_steps=100",
        "--mixed-precision", "no"]  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(cmd: list[str]) -> None:
    env = {**os.environ, "HISTOSYNTH_PROGRESS": "0", "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [str(c) for c in cmd], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def _weights(run: Path) -> dict:
    files = sorted((run / "checkpoints").glob("step-*/training_state/denoiser/*.safetensors"))
    return load_file(files[-1])


@pytest.mark.skipif(shutil.which("accelerate", path=str(Path(sys.executable).parent)) is None,
                    reason="needs the accelerate launcher")  # fmt: skip
def test_two_processes_under_accelerate_launch_match_one_process(tmp_path):
    ds = write_tiny_dataset(tmp_path / "ds", n=12, splits=("train",))
    _run([sys.executable, "-m", "histosynth", "train", ds, tmp_path / "one", *ARGS])
    launcher = Path(sys.executable).with_name("accelerate")
    _run([launcher, "launch", "--multi_gpu", "--num_processes", 2, "--num_machines", 1, "--mixed_precision", "no",
          "--dynamo_backend", "no", "--main_process_port", _free_port(), "-m", "histosynth", "train", ds,
          tmp_path / "two", *ARGS])  # fmt: skip
    rows = {
        n: [json.loads(x) for x in (tmp_path / n / "stats.jsonl").read_text().splitlines()]
        for n in ("one", "two")
    }
    assert [r["processes"] for r in rows["one"]] == [1, 1, 1] and [r["processes"] for r in rows["two"]] == [
        2,
        2,
        2,
    ]
    for a, b in zip(rows["one"], rows["two"], strict=True):
        assert a["step"] == b["step"] and a["loss"] == pytest.approx(b["loss"], rel=1e-5, abs=1e-6)
        assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-4, abs=1e-6)
    one, two = _weights(tmp_path / "one"), _weights(tmp_path / "two")
    assert sorted(one) == sorted(two)
    diff = np.concatenate([np.abs(one[k] - two[k]).ravel() for k in one])
    # Adam scales each update to about lr, so a parameter whose true gradient is zero (a conv
    # bias before a norm layer) moves by ±lr on rounding noise alone, differently per run; the
    # rest agree to rounding. lr warms up: 3e-4 · (1, 2, 3) / 100 over the three steps.
    assert np.mean(diff < 1e-7) > 0.9999, np.sort(diff)[-20:]
    assert diff.max() <= 2 * 3e-4 * (1 + 2 + 3) / 100


def test_draws_do_not_depend_on_how_the_global_batch_is_split():
    import torch

    from histosynth.train.data import BatchPlan
    from histosynth.train.draws import draw, sample_generators

    def split(world, accum):
        plans = [BatchPlan(10, 8, accum, world, r, seed=3) for r in range(world)]
        parts = [(p, m) for m in range(accum) for p in plans]
        rows = [row for p, m in parts for row in p.rows(5, m)]
        ds = [
            draw(sample_generators(3, 5, p.positions(m)), (2, 4, 4), 1000, 0.1, 0.1, "cpu") for p, m in parts
        ]
        order = np.argsort([q for p, m in parts for q in p.positions(m)])
        return rows, order, torch.cat([d.noise for d in ds])[order], torch.cat([d.t for d in ds])[order]

    rows1, _, noise1, t1 = split(1, 1)
    for world, accum in ((2, 1), (1, 2), (2, 2), (4, 2)):
        rows, order, noise, t = split(world, accum)
        assert [rows[i] for i in order] == rows1 and torch.equal(noise, noise1) and torch.equal(t, t1)
