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
