"""Same config and seed, same result, on one machine: clusters, samples and metrics.

Tiles, patch datasets, embeddings and training are compared byte for byte against an
independent uninterrupted run in test_crash_resume.py (the reference run of each test);
k-means alone in tests/cluster/test_cluster_kmeans.py::test_deterministic_for_a_seed, one
generated image in tests/sample/test_sample_stage.py::test_procedural_maps_and_synthesizer.
Here whole stages run twice into two folders and the folders are compared.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from histosynth.cli.main import cli

from ._kill import digest, manifest_body

pytestmark = pytest.mark.slow


def _run(args):
    res = CliRunner().invoke(cli, [str(a) for a in args])
    assert res.exit_code == 0, res.output + repr(res.exception)


def _same_folders(a, b):
    da, db = digest(a), digest(b)
    assert da.keys() == db.keys(), sorted(da.keys() ^ db.keys())
    assert [k for k in da if da[k] != db[k]] == []
    assert manifest_body(a) == manifest_body(b)


def test_cluster_twice_same_model_labels_and_maps(tmp_path):
    from histosynth.samples import write_synthetic_slide

    write_synthetic_slide(tmp_path / "s.tif", size=(1024, 1024), seed=3)
    _run(["tile", tmp_path / "s.tif", "-o", tmp_path / "tiles"])
    _run(["embed", tmp_path / "tiles", "-o", tmp_path / "emb", "--workers", 0])
    for out in ("a", "b"):
        _run(["cluster", tmp_path / "emb", "-o", tmp_path / out, "--k", 4, "--levels", 2,
              "--set", "report.stability_seeds=1", "--set", "report.examples=4"])  # fmt: skip
    _same_folders(tmp_path / "a", tmp_path / "b")


def test_sample_twice_same_images(tiny_checkpoint, tiny_dataset, tmp_path):
    from histosynth.sample.stage import SampleConfig, run
    from tests.conftest import build_bank

    bank = build_bank(tiny_dataset, tmp_path / "bank", split="all")
    cfg = SampleConfig(n=4, maps_dir=str(tiny_dataset), split="all", steps=2, sampler="ddim", batch_size=2)
    for out in ("a", "b"):
        run(tiny_checkpoint, tmp_path / out, cfg, crop_bank=bank.folder)
    _same_folders(tmp_path / "a", tmp_path / "b")


def test_evaluate_twice_same_metrics(tmp_path):
    from histosynth.evaluate.toy import shift_colour, toy_patches, write_patch_dataset

    imgs, labs, _ = toy_patches(20, 64, seed=3)
    real = write_patch_dataset(tmp_path / "real", imgs, labs, splits=["train"] * 14 + ["test"] * 6)
    syn = write_patch_dataset(tmp_path / "syn", shift_colour(imgs[14:], (20, -10, 5)), labs[14:], slide="syn")
    (tmp_path / "cfg.toml").write_text(
        'detectors = ["pixels-32"]\nbootstrap = 5\nkid_subsets = 5\nregion_tile = 32\nregion_min_tiles = 3\n'
        "workers = 1\n[tstr]\nmixes = [1.0]\nseeds = 1\n[tstr.segmenter]\nencoder_depth = 3\n"
        "decoder_channels = 16\ncrop = 32\nbatch_size = 2\nsteps = 2\n"
    )
    metrics = []
    for out in ("a", "b"):
        _run(["evaluate", "--real", real.folder, "--synthetic", f"syn={syn.folder}", "--out", tmp_path / out,
              "--config", tmp_path / "cfg.toml"])  # fmt: skip
        m = json.loads((tmp_path / out / "metrics.json").read_text())
        m.pop("timing")  # seconds taken: the only field allowed to differ
        metrics.append(m)
    assert metrics[0] == metrics[1]
    assert isinstance(metrics[0]["metrics"]["syn"]["fd_pixels-32"], float)
