"""Training data: order and crops are functions of (seed, step); ranks and accumulation partition a batch."""

import json

import numpy as np
import pytest

from histosynth.config import ConfigError
from histosynth.data.patch_dataset import PatchDataset
from histosynth.train.config import DataConfig
from histosynth.train.data import BatchPlan, Curriculum, StepBatches, TrainData, dihedral


def test_plan_partitions_the_global_batch():
    one = BatchPlan(n=10, global_batch=8, seed=3)
    whole = [one.rows(5, 0)]
    split = [
        BatchPlan(10, 8, accum=2, world=2, rank=r, seed=3).rows(5, a) for a in range(2) for r in range(2)
    ]
    assert sorted(sum(whole, [])) == sorted(sum(split, []))
    epochs = [e for s in range(5) for e, _ in one.rows(s, 0)]
    assert epochs == sorted(epochs) and set(epochs) == {0, 1, 2, 3}  # 40 samples over 10 rows
    rows0 = [i for s in range(5) for e, i in one.rows(s, 0) if e == 1]
    assert sorted(rows0) == list(range(10))  # each epoch is a permutation
    with pytest.raises(ConfigError, match="multiple"):
        BatchPlan(10, 6, accum=4).micro_batch  # noqa: B018


def test_items_are_deterministic_and_augmented(tiny_dataset):
    ds = PatchDataset(tiny_dataset)
    data = TrainData(ds, DataConfig(image_size=32), seed=0)
    batches = StepBatches(data, BatchPlan(len(data), 4, seed=0))
    a, b = batches[3], batches[3]
    assert a.ids == b.ids and (a.images == b.images).all() and (a.crops.pixels == b.crops.pixels).all()
    assert a.images.shape == (4, 3, 32, 32) and a.maps.shape == (4, 32, 32) and a.crops.mask.any()
    assert float(a.images.min()) >= -1 and float(a.images.max()) <= 1
    other = StepBatches(TrainData(ds, DataConfig(image_size=32), seed=1), BatchPlan(len(data), 4, seed=1))[3]
    assert other.ids != a.ids or not (other.images == a.images).all()
    image, label = data.load(0)
    for k in range(8):  # image and map move together
        img_k, lab_k = dihedral(image, k), dihedral(label, k)
        assert img_k.shape == image.shape and np.array_equal(np.sort(lab_k, None), np.sort(label, None))
    smaller = TrainData(ds, DataConfig(image_size=16, preload=False), seed=0)
    assert smaller.load(0)[0].shape == (16, 16, 3) and set(np.unique(smaller.load(0)[1])) <= {0, 1, 2}


def test_curriculum_relabels_coarse_first(tiny_dataset, tmp_path):
    with pytest.raises(ConfigError, match="hierarchy.json"):
        Curriculum(tmp_path, 3, ((2, 10), (3, 0)))
    (tmp_path / "hierarchy.json").write_text(json.dumps({"levels": {"2": [0, 1, 1]}}))
    cur = Curriculum(tmp_path, 3, ((2, 10), (3, 0)))
    assert cur.num_classes == 5  # 3 fine ids, then the 2 coarse ones at 3..4
    assert cur.lut(0)[:3].tolist() == [3, 4, 4] and cur.lut(10)[:3].tolist() == [0, 1, 2]
    (tmp_path / "hierarchy.json").write_text(json.dumps({"levels": {"2": [0, 5, 1]}}))
    with pytest.raises(ConfigError, match="parent ids"):
        Curriculum(tmp_path, 3, ((2, 10), (3, 0)))
