"""The DiT family through the same commands: train, resume exactly, load, sample."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from histosynth.config import build_config
from histosynth.train.checkpoint import load_denoiser
from histosynth.train.config import TrainConfig
from histosynth.train.loop import run

DIT = [
    "model.backbone=dit-test", "model.codec=identity-p2", "data.image_size=32", "optim.batch_size=4",
    "optim.warmup_steps=3", "optim.lr=1e-3", "run.log_every=2", "run.sample_every=0", "run.sample_steps=2",
    "run.grid_rows=2", "data.workers=0",
]  # fmt: skip


def _cfg(*extra):
    return build_config(TrainConfig, preset="cpu-tiny", overrides=[*DIT, *extra])


def test_a_dit_run_resumes_exactly_and_samples(tiny_dataset, tmp_path):
    from histosynth.sample.synthesis import Synthesizer

    cfg = _cfg("run.steps=8", "run.checkpoint_every=4", "run.keep_checkpoints=3")
    straight = run(tiny_dataset, tmp_path / "a", cfg, show_progress=False)
    assert straight.summary.finished and straight.summary.step == 8
    stopped = run(tiny_dataset, tmp_path / "b", cfg, callback=lambda s: s == 3, show_progress=False)
    assert stopped.summary.step == 3

    def crash(step):
        if step == 6:
            raise RuntimeError("simulated crash")

    with pytest.raises(RuntimeError, match="simulated"):  # resumed from 3, dies at 6: the newest is 4
        run(tiny_dataset, tmp_path / "b", cfg, callback=crash, show_progress=False)
    assert run(tiny_dataset, tmp_path / "b", cfg, show_progress=False).summary.finished

    ckpt = "checkpoints/step-00000008"
    for part in ("training_state/denoiser", "denoiser"):  # raw weights, then the EMA's
        a, b = (load_denoiser(tmp_path / r / ckpt / part).state_dict() for r in ("a", "b"))
        assert a.keys() == b.keys() and any(k.startswith("dit.blocks.0.") for k in a)
        for name in a:
            torch.testing.assert_close(b[name], a[name], atol=1e-6, rtol=1e-5)
    final = load_denoiser(tmp_path / "a" / ckpt / "training_state" / "denoiser").dit.final_layer.linear.weight
    assert final.abs().sum() > 0  # trained away from its zero start

    synth = Synthesizer.from_checkpoint(tmp_path / "a")
    assert type(synth.pipe.denoiser).__name__ == "DiTDenoiser"
    label = np.zeros((32, 32), np.uint8)
    label[:, 16:] = 1
    crops = [(1, np.full((10, 12, 3), 200, np.uint8))]
    image = synth.generate(label, crops, guidance_crops=1.5, steps=2, seed=0)
    assert image.shape == (32, 32, 3) and image.dtype == np.uint8
    np.testing.assert_array_equal(synth.generate(label, crops, guidance_crops=1.5, steps=2, seed=0), image)


def test_cli_trains_a_dit_backbone(tiny_dataset, tmp_path):
    from histosynth.cli.main import cli

    args = ["train", str(tiny_dataset), str(tmp_path / "run"), "--backbone", "dit-test", "--steps", "2",
            "--batch-size", "2", *[f"--set={o}" for o in DIT if not o.startswith(("optim.batch", "model.backbone"))]]  # fmt: skip
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["config"]["model"]["backbone"] == "dit-test"
    index = json.loads((tmp_path / "run" / "model" / "model_index.json").read_text())
    assert index["denoiser"] == ["histosynth.diffusion.denoiser", "DiTDenoiser"]
