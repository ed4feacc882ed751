"""Sampling with the crops of simulated labs: which lab conditioned each image is recorded."""

import json

import numpy as np
import pytest
from tests.conftest import build_bank, train_tiny

from histosynth.data.patch_dataset import PatchDataset
from histosynth.sample.stage import SampleConfig, run


@pytest.fixture(scope="module")
def labs(tiny_dataset, tmp_path_factory):
    from histosynth.domains.stage import DomainsConfig
    from histosynth.domains.stage import run as domains

    return domains(tiny_dataset, tmp_path_factory.mktemp("labs") / "ds", DomainsConfig(labs=2, seed=1)).folder


def _cfg(maps, **kw):
    return SampleConfig(
        **{"n": 4, "maps_dir": str(maps), "split": "all", "steps": 2, "sampler": "ddim", **kw}
    )


def test_bank_of_labs_records_the_lab_and_keeps_a_few_crops(labs, tmp_path):
    bank = build_bank(labs, tmp_path / "all", split="all")
    assert bank.domains() == ["lab-A", "lab-B"]
    crop = bank.pick(bank.class_ids()[0], 1, np.random.default_rng(0), domain="lab-B")[0]
    assert json.loads(crop.source)["domain"] == "lab-B"
    few = build_bank(labs, tmp_path / "few", split="all", domain="lab-B", max_per_class=2)
    assert few.domains() == ["lab-B"] and few.index["class_id"].value_counts().max() <= 2
    with pytest.raises(ValueError, match="no crops of lab"):
        few.pick(1, 1, np.random.default_rng(0), domain="lab-A")


def test_each_lab_renders_the_same_map_and_noise(tiny_checkpoint, tiny_dataset, labs, tmp_path):
    bank = build_bank(labs, tmp_path / "bank", split="all")
    result = run(
        tiny_checkpoint, tmp_path / "syn", _cfg(tiny_dataset, crop_domain="each"), crop_bank=bank.folder
    )
    syn = PatchDataset(result.folder)
    assert syn.index["domain"].tolist() == ["lab-A", "lab-B", "lab-A", "lab-B"]
    assert syn.index["map_source"][0] == syn.index["map_source"][1] != syn.index["map_source"][2]
    assert syn.index["seed"][0] == syn.index["seed"][1]
    for i in range(4):
        sources = json.loads(syn.index["crop_sources"][i])
        assert {s["domain"] for v in sources.values() for s in v} == {syn.index["domain"][i]}
    assert result.manifest["config"]["crop_domain"] == "each"
    plain = run(tiny_checkpoint, tmp_path / "plain", _cfg(tiny_dataset), crop_bank=bank.folder)
    assert "crop_domain" not in plain.manifest["config"]  # a default left out: earlier ids unchanged
    with pytest.raises(ValueError, match="no crops of lab"):
        run(tiny_checkpoint, tmp_path / "x", _cfg(tiny_dataset, crop_domain="lab-Z"), crop_bank=bank.folder)


def test_reference_crops_are_recorded_and_change_no_image(tiny_dataset, labs, tmp_path):
    ckpt = train_tiny(tiny_dataset, tmp_path / "map", conditioning="map")
    bank = build_bank(labs, tmp_path / "bank", split="all")
    bare = PatchDataset(run(ckpt, tmp_path / "bare", _cfg(tiny_dataset)).folder)
    ref = run(
        ckpt,
        tmp_path / "ref",
        _cfg(tiny_dataset, reference_crops=True, crop_domain="lab-A"),
        crop_bank=bank.folder,
    )
    ref = PatchDataset(ref.folder)
    assert "domain" not in bare.index.columns and set(ref.index["domain"]) == {"lab-A"}
    for i in range(4):
        assert np.array_equal(bare.image(i), ref.image(i))
        assert json.loads(bare.index["crop_sources"][i]) == {}
        tissue = set(np.unique(ref.label(i))) - {0}  # the tiny dataset has background-only maps
        assert set(json.loads(ref.index["crop_sources"][i])) == {str(c) for c in tissue}
