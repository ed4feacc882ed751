"""Transfer baselines: stain normalisation, HED-jitter augmentation, the transfer table."""

import numpy as np
import pytest

from histosynth.domains.labs import HedJitter, Lab, apply_lab
from histosynth.domains.normalize import make_normalizer

STRONG = Lab("lab-B", h_scale=1.4, e_scale=0.7)  # a lab far from the reference: stain strength only


@pytest.fixture(scope="module")
def tissue(cmu_slide):
    from histosynth.wsi import open_slide

    with open_slide(cmu_slide) as reader:
        region = reader.read_region(800, 1200, 0, 256, 256)
    return [region[i : i + 64, j : j + 64] for i in range(0, 256, 64) for j in range(0, 256, 64)]


def test_reinhard_matches_the_reference_statistics_in_lab_space(tissue):
    from histosynth.domains.normalize import _to_lab

    other = [apply_lab(t, STRONG) for t in tissue]
    norm = make_normalizer("reinhard", tissue, other)  # lab-level: statistics pooled over the lab's images
    done = np.concatenate([_to_lab(norm(im)) for im in other])
    ref = np.concatenate([_to_lab(t) for t in tissue])
    assert np.allclose(done.mean(0), ref.mean(0), atol=0.01) and np.allclose(
        done.std(0), ref.std(0), atol=0.01
    )
    assert (make_normalizer("reinhard", tissue, tissue)(tissue[3]) == tissue[3]).all()


def test_macenko_removes_a_stain_strength_difference(tissue):
    other = [apply_lab(t, STRONG) for t in tissue]
    to_ref, from_ref = make_normalizer("macenko", tissue, other), make_normalizer("macenko", tissue, tissue)

    def gap(a, b):
        return np.mean([np.abs(x.astype(float) - y).mean() for x, y in zip(a, b, strict=True)])

    assert gap([to_ref(im) for im in other], [from_ref(t) for t in tissue]) < gap(other, tissue) / 1.5
    per_image = make_normalizer("macenko", tissue)  # no adapt(): each image's own statistics
    assert per_image(other[0]).shape == other[0].shape and per_image(other[0]).dtype == np.uint8
    with pytest.raises(ValueError, match="one of"):
        make_normalizer("vahadane", tissue)


def test_hed_jitter_is_seeded_and_changes_only_stain(tissue):
    jitter = HedJitter(0.2, 0.05)
    a = jitter(tissue[0], np.random.default_rng(4))
    assert (a == jitter(tissue[0], np.random.default_rng(4))).all() and not (a == tissue[0]).all()
    assert (HedJitter(0.0, 0.0)(tissue[0], np.random.default_rng(4)) == tissue[0]).all()


def test_transfer_table_has_every_condition(tmp_path):
    from histosynth.domains.transfer import TransferConfig, run_transfer
    from histosynth.evaluate.config import SegmenterConfig
    from histosynth.evaluate.toy import toy_patches, write_patch_dataset

    imgs, labs, _ = toy_patches(8, 32, seed=2)
    images = [apply_lab(im, lab) for lab in (Lab("lab-A"), STRONG) for im in imgs]
    split = (["train"] * 5 + ["test"] * 3) * 2
    ds = write_patch_dataset(tmp_path / "labs", np.stack(images), np.concatenate([labs, labs]), splits=split,
                             ids=[f"p{i}" for i in range(16)], extra={"domain": ["lab-A"] * 8 + ["lab-B"] * 8})  # fmt: skip
    syn = write_patch_dataset(tmp_path / "syn", np.stack(images[8:13]), labs[:5], slide="syn")
    seg = SegmenterConfig(encoder_depth=3, decoder_channels=16, crop=32, batch_size=2, steps=2)
    cfg = TransferConfig(seeds=1, segmenter=seg)
    res = run_transfer(ds.folder, {"tokens": syn.folder}, tmp_path / "t", cfg)
    names = [r["condition"] for r in res["table"]]
    assert names == ["a-real", "a-real/norm-macenko", "a-real/norm-reinhard", "a-real+hed-jitter",
                     "a-real+synthetic:tokens", "b-real"]  # fmt: skip
    assert all(r["seeds"] == 1 and 0 <= r["miou_mean"] <= 1 for r in res["table"])
    assert res["test_images"] == 3 and res["train_images"] == 5
    again = run_transfer(ds.folder, {"tokens": syn.folder}, tmp_path / "t", cfg)  # resumed from its journal
    assert again["table"] == res["table"]
