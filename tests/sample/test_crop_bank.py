import json

import numpy as np
import pytest
from tests.conftest import build_bank

from histosynth.data.patch_dataset import PatchDataset
from histosynth.sample.crop_bank import CropBank


def test_build_pick_and_provenance(tiny_dataset, tmp_path):
    bank = build_bank(tiny_dataset, tmp_path / "bank", split="all", min_area_frac=0.02)
    assert len(bank) > 0 and 0 not in bank.class_ids()
    ds = PatchDataset(tiny_dataset)
    # every crop is a real piece of its source patch, taken from inside its class region
    for row in bank.index.itertuples():
        i = int(np.flatnonzero(ds.index["id"] == row.patch)[0])
        src = ds.image(i)[row.y : row.y + row.h, row.x : row.x + row.w]
        assert np.array_equal(bank.load(row.crop_id), src)
        assert (ds.label(i)[row.y : row.y + row.h, row.x : row.x + row.w] == row.class_id).mean() > 0.5
    rng = np.random.default_rng(0)
    cls = bank.class_ids()[0]
    crops = bank.pick(cls, 3, rng)
    assert len(crops) == 3 and all(c.class_id == cls and c.pixels.dtype == np.uint8 for c in crops)
    prov = json.loads(crops[0].source)
    assert set(prov) == {"crop", "slide", "patch", "box"}
    # reopening gives the same bank; a re-run resumes as complete
    again = build_bank(tiny_dataset, tmp_path / "bank", split="all", min_area_frac=0.02)
    assert again.id == bank.id and len(again) == len(bank)


def test_strategies(tiny_dataset, tmp_path):
    bank = build_bank(tiny_dataset, tmp_path / "b", split="all", min_area_frac=0.02)
    cls = bank.class_ids()[0]
    rows = bank.index[bank.index["class_id"] == cls]
    slide = rows["slide"].iloc[0]
    same = bank.pick(cls, 4, np.random.default_rng(1), "same-slide", slide=slide)
    assert {json.loads(c.source)["slide"] for c in same} == {slide}
    target = tuple(rows[["r", "g", "b"]].iloc[0])
    near = bank.pick(cls, 1, np.random.default_rng(1), "nearest-colour", colour=target)
    assert json.loads(near[0].source)["crop"] == rows["crop_id"].iloc[0]
    assert bank.pick(99, 2, np.random.default_rng(0)) == []
    with pytest.raises(ValueError, match="crop strategy"):
        bank.pick(cls, 1, np.random.default_rng(0), "closest")
    assert isinstance(CropBank(tmp_path / "b"), CropBank)
