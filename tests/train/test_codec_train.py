"""``train-codec``: a KL codec trained on a patch dataset, then used by ``train``."""

import json

from click.testing import CliRunner

from histosynth.cli.main import cli
from histosynth.diffusion.codec import KLCodec, load_codec
from histosynth.diffusion.pipeline import HistoSynthPipeline


def test_train_codec_then_train_on_its_latents(tiny_dataset, tmp_path):
    out = tmp_path / "codec"
    args = ["train-codec", str(tiny_dataset), str(out), "--steps", "6", "--batch-size", "4", "--adv-weight", "0.1",
            "--set", "data.image_size=32", "--set", "loss.adv_start=3", "--set", "run.log_every=2"]  # fmt: skip
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kind"] == "codec" and manifest["counts"]["steps"] == 6
    rows = [json.loads(ln) for ln in (out / "stats.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4, 6] and rows[-1]["adv"] != 0.0
    codec = load_codec(out)
    assert isinstance(codec, KLCodec) and codec.config.scaling_factor == manifest["scaling_factor"]
    assert (out / "recon.png").is_file()
    assert CliRunner().invoke(cli, args).exit_code == 0  # finished: a re-run does nothing

    run = tmp_path / "run"
    args = ["train", str(tiny_dataset), str(run), "--backbone", "test", "--codec", str(out), "--steps", "2",
            "--batch-size", "2", "--set", "data.image_size=32", "--set", "run.sample_steps=2",
            "--set", "run.grid_rows=1"]  # fmt: skip
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    pipe = HistoSynthPipeline.from_pretrained(run / "model")
    assert isinstance(pipe.codec, KLCodec) and pipe.denoiser.config.downsample == 4


def test_stopped_and_resumed_codec_equals_a_straight_run(tiny_dataset, tmp_path):
    """The trainer skeleton resumes train-codec as it resumes train: same bytes as a straight run."""
    import torch

    from histosynth.config import build_config
    from histosynth.safe_io import load_training_state
    from histosynth.train.codec import CodecTrainConfig, run

    cfg = build_config(CodecTrainConfig, preset="cpu-tiny", overrides=[
        "run.steps=4", "run.batch_size=2", "data.image_size=32", "loss.adv_weight=0.1", "loss.adv_start=2",
        "run.log_every=1", "run.checkpoint_every=2", "run.keep_checkpoints=3"])  # fmt: skip
    straight = run(tiny_dataset, tmp_path / "a", cfg, show_progress=False)
    stopped = run(tiny_dataset, tmp_path / "b", cfg, callback=lambda step: step == 3, show_progress=False)
    assert stopped.manifest is None and (stopped.summary.step, stopped.summary.finished) == (3, False)
    resumed = run(tiny_dataset, tmp_path / "b", cfg, show_progress=False)
    assert (
        resumed.summary.finished and resumed.manifest["scaling_factor"] == straight.manifest["scaling_factor"]
    )

    a, b = tmp_path / "a", tmp_path / "b"
    for name in ("codec/config.json", "codec/diffusion_pytorch_model.safetensors", "recon.png"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name  # no load path in the config either
    ckpt = "checkpoints/step-00000004/training_state"
    state_a, state_b = (load_training_state(f / ckpt / "trainer.pt") for f in (a, b))
    assert torch.equal(state_a["torch_rng"], state_b["torch_rng"])  # restored after the loader's draw
    drop_time = lambda rows: [{k: v for k, v in r.items() if k != "step_time"} for r in rows]  # noqa: E731
    rows_a, rows_b = ([json.loads(ln) for ln in (f / "stats.jsonl").read_text().splitlines()] for f in (a, b))
    assert [r["step"] for r in rows_b] == [1, 2, 3, 4] and drop_time(rows_b) == drop_time(rows_a)
