import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from tests.conftest import build_bank

from histosynth.config import build_config
from histosynth.data.patch_dataset import PatchDataset
from histosynth.sample.stage import SampleConfig, run
from histosynth.sample.synthesis import Synthesizer


@pytest.fixture(scope="module")
def bank(tiny_dataset, tmp_path_factory):
    return build_bank(tiny_dataset, tmp_path_factory.mktemp("bank") / "b", split="all")


def _cfg(**kw):
    base = {"n": 5, "maps_dir": "", "split": "all", "steps": 3, "sampler": "ddim", "batch_size": 2}
    return SampleConfig(**{**base, **kw})


def test_dataset_roundtrip_maps_equal_conditioning(tiny_checkpoint, tiny_dataset, bank, tmp_path):
    cfg = _cfg(maps_dir=str(tiny_dataset))
    result = run(tiny_checkpoint, tmp_path / "syn", cfg, crop_bank=bank.folder)
    folder = result.folder
    assert result.ok
    syn, real = PatchDataset(folder), PatchDataset(tiny_dataset)
    assert len(syn) == 5 and syn.classes.names == real.classes.names
    for i in range(5):
        row = syn.index.iloc[i]
        src_patch = row["map_source"].split(":")[-1]
        j = int(np.flatnonzero(real.index["id"] == src_patch)[0])
        assert np.array_equal(syn.label(i), real.label(j))  # the exact conditioning map
        assert syn.image(i).shape == (64, 64, 3)
        sources = json.loads(row["crop_sources"])
        assert set(sources) <= {str(c) for c in np.unique(syn.label(i))}
        assert all(set(s) == {"crop", "slide", "patch", "box"} for v in sources.values() for s in v)
    assert {"seed", "sampler", "steps", "guidance_map", "guidance_crops"} <= set(syn.index.columns)
    again = run(tiny_checkpoint, tmp_path / "syn", cfg, crop_bank=bank.folder)
    assert (
        again.folder == folder and again.summary.done == [] and again.manifest is not None
    )  # complete: nothing redone


def test_whole_passes_render_every_map_equally_often(tiny_checkpoint, tiny_dataset, bank, tmp_path):
    maps = len(PatchDataset(tiny_dataset))
    cfg = _cfg(maps_dir=str(tiny_dataset), n=maps + 1, whole_passes=True, batch_size=4)
    syn = PatchDataset(run(tiny_checkpoint, tmp_path / "syn", cfg, crop_bank=bank.folder).folder)
    counts = syn.index["map_source"].value_counts()
    assert len(syn) == 2 * maps and len(counts) == maps and set(counts) == {2}
    plain = run(
        tiny_checkpoint,
        tmp_path / "plain",
        _cfg(maps_dir=str(tiny_dataset), n=maps + 1),
        crop_bank=bank.folder,
    )
    assert len(PatchDataset(plain.folder)) == maps + 1  # off by default: n as asked


def test_per_sample_seeds_independent_of_batch_size(tiny_checkpoint, tiny_dataset, bank, tmp_path):
    a = run(
        tiny_checkpoint, tmp_path / "a", _cfg(maps_dir=str(tiny_dataset), batch_size=1), crop_bank=bank.folder
    )
    b = run(
        tiny_checkpoint, tmp_path / "b", _cfg(maps_dir=str(tiny_dataset), batch_size=4), crop_bank=bank.folder
    )
    a, b = a.folder, b.folder
    da, db = PatchDataset(a), PatchDataset(b)
    for i in range(5):
        diff = np.abs(da.image(i).astype(int) - db.image(i).astype(int))
        assert diff.max() <= 1  # batched float math may round one level differently
        assert da.index.iloc[i]["seed"] == db.index.iloc[i]["seed"]


def test_procedural_maps_and_synthesizer(tiny_checkpoint, bank, tmp_path):
    cfg = _cfg(maps="procedural", fractions=(0.0, 0.5, 0.5), n=2)
    result = run(tiny_checkpoint, tmp_path / "p", cfg, crop_bank=bank.folder)
    ds = PatchDataset(result.folder)
    assert result.ok and all(set(np.unique(ds.label(i))) <= {1, 2} for i in range(2))
    synth = Synthesizer.from_checkpoint(tiny_checkpoint)
    assert synth.classes.names[:2] == ["background", "epithelium"] and synth.image_size == 64
    crops = bank.pick(1, 1, np.random.default_rng(0))
    one = synth.generate(ds.label(0), crops, steps=2, seed=3)
    assert np.array_equal(one, synth.generate(ds.label(0), crops, steps=2, seed=3))


def test_model_with_crops_needs_a_bank(tiny_checkpoint, tiny_dataset, tmp_path):
    with pytest.raises(ValueError, match="crop-bank"):
        run(tiny_checkpoint, tmp_path / "x", _cfg(maps_dir=str(tiny_dataset)))
    cfg = build_config(SampleConfig, preset="paper")
    assert cfg.sampler == "ddim" and cfg.steps == 200 and cfg.eta == 1.0


@pytest.mark.slow
def test_interrupted_sample_resumes_without_redoing(tiny_checkpoint, tiny_dataset, bank, tmp_path):
    out = tmp_path / "resume"
    cmd = [sys.executable, "-m", "histosynth", "sample", str(tiny_checkpoint), str(out), "--crop-bank",
           str(bank.folder), "--maps-from", str(tiny_dataset), "--set", "split=all", "-n", "12", "--steps", "3",
           "--batch-size", "1", "--sampler", "ddim"]  # fmt: skip
    env = {**os.environ, "HISTOSYNTH_PROGRESS": "0"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    journal = out / "_journal.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and (not journal.is_file() or len(journal.read_text().splitlines()) < 3):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "manifest.json").exists()  # never looks complete when it is not
    first = {json.loads(x)["key"] for x in journal.read_text().splitlines()}
    assert 3 <= len(first) < 12
    stamps = {k: (out / "images" / f"syn{int(k.split('-')[1]):06d}.png").stat().st_mtime_ns for k in first}
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    assert (out / "manifest.json").is_file() and len(PatchDataset(out)) == 12
    for k, t in stamps.items():  # finished images were not redone
        assert (out / "images" / f"syn{int(k.split('-')[1]):06d}.png").stat().st_mtime_ns == t
