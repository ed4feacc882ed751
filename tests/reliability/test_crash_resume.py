"""SIGKILL at seeded moments, re-run, and the artefact equals an uninterrupted run.

`sample` has its own kill-and-resume test (tests/sample/test_sample_stage.py::
test_interrupted_sample_resumes_without_redoing); these cover `tile`, `dataset`, `embed` and
`train`, each through the CLI in a subprocess (see ``_kill.py``).
"""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from histosynth.cli.main import cli

from ._kill import VOLATILE, checkpoint_step, crash_and_resume, journal_lines

SEEDS = (11, 12)
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def slides(tmp_path_factory):
    """Four small synthetic slides with ground-truth GeoJSON, tiled once."""
    from tests.wsi._helpers import write_annotated_slides

    root = write_annotated_slides(tmp_path_factory.mktemp("crash"), 4)
    res = CliRunner().invoke(cli, ["tile", str(root / "s"), "-o", str(root / "tiles"), "--size", "64"])
    assert res.exit_code == 0, res.output
    return root


def test_tile_killed_and_resumed_equals_a_straight_run(slides, tmp_path):
    out = tmp_path / "tiles"
    args = ["tile", slides / "s", "-o", out, "--size", 64, "--annotations", slides / "ann",
            "--classes", slides / "classes.json"]  # fmt: skip
    report = crash_and_resume(args, out, SEEDS, journal_lines("_journal.jsonl"))
    assert report.interrupted >= 1


def test_dataset_killed_and_resumed_equals_a_straight_run(slides, tmp_path):
    out = tmp_path / "ds"
    args = ["dataset", slides / "tiles", "-o", out, "--annotations", slides / "ann",
            "--classes", slides / "classes.json", "--set", "chunk=8"]  # fmt: skip
    report = crash_and_resume(args, out, SEEDS, journal_lines("_plan_journal.jsonl", "_journal.jsonl"))
    assert report.interrupted >= 1


def test_embed_killed_and_resumed_equals_a_straight_run(slides, tmp_path):
    out = tmp_path / "emb"
    args = ["embed", slides / "tiles", "-o", out, "--workers", 0, "--set", "batch_size=16"]
    report = crash_and_resume(args, out, SEEDS, journal_lines("_journal.jsonl"))
    assert report.interrupted >= 1


TRAIN = ["--threads", 1, "--set", "run.steps=12", "--set", "model.backbone=test", "--set",
         "model.codec=identity-p2", "--set", "optim.batch_size=4", "--set", "run.sample_every=0",
         "--set", "run.sample_steps=2", "--set", "run.grid_rows=2", "--set", "run.checkpoint_every=2",
         "--set", "run.log_every=2", "--set", "run.keep_checkpoints=2"]  # fmt: skip


def _same_training(ref, got):
    """Equal step, raw weights, EMA weights, optimiser state and logged losses."""
    final = "checkpoints/step-00000012"
    for part in ("training_state/denoiser", "denoiser"):  # raw weights, then the EMA
        a = load_file(ref / final / part / "diffusion_pytorch_model.safetensors")
        b = load_file(got / final / part / "diffusion_pytorch_model.safetensors")
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), part
    ta = torch.load(ref / final / "training_state" / "trainer.pt", weights_only=True)
    tb = torch.load(got / final / "training_state" / "trainer.pt", weights_only=True)
    assert ta["step"] == tb["step"] == 12
    losses = [
        [(r["step"], r["loss"]) for r in map(json.loads, (f / "stats.jsonl").read_text().splitlines())]
        for f in (ref, got)
    ]
    assert losses[0] == losses[1] and [s for s, _ in losses[0]] == list(range(2, 13, 2))


def test_train_killed_and_resumed_equals_a_straight_run(tiny_dataset, tmp_path):
    out = tmp_path / "run"
    report = crash_and_resume(
        ["train", tiny_dataset, out, *TRAIN],
        out,
        SEEDS,
        checkpoint_step,
        same=_same_training,
        skip=(*VOLATILE, "stats.jsonl"),  # stats carry timings; their losses are compared
    )
    assert report.interrupted >= 1
