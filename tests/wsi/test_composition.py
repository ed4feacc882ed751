"""The keep rule: the paper's 20–80 % heterogeneity, caps, balancing, homogeneous share."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from histosynth.data.composition import SamplingConfig, composition, is_heterogeneous, select_patches
from histosynth.seeding import numpy_rng


def _counts(minority_px: np.ndarray, total: int = 256 * 256, background: int = 0) -> np.ndarray:
    """Two-class patches: class 1 has ``minority_px`` pixels, class 2 the rest of the tissue."""
    tissue = total - background
    return np.stack([np.full_like(minority_px, background), minority_px, tissue - minority_px], axis=1)


def test_two_class_rule_is_minority_in_20_to_80_percent():
    tissue = 1000
    px = np.arange(0, tissue + 1)
    sel = select_patches(
        _counts(px, total=tissue), np.ones(len(px)), SamplingConfig(max_per_slide=0), numpy_rng(0)
    )
    kept = px[sel.index]
    # share of class 1 in [0.2, 0.8]  <=>  both classes ≥ 20 % of the tissue
    np.testing.assert_array_equal(kept, np.arange(200, 801))


def test_background_does_not_count_as_a_class():
    # 60 % glass, tissue split 30/70: heterogeneous (the rule is about the tissue in the patch)
    c = np.array([[600, 120, 280], [600, 50, 350], [0, 0, 1000]])
    np.testing.assert_allclose(composition(c)[0], [0, 0.3, 0.7])
    np.testing.assert_array_equal(is_heterogeneous(composition(c)), [True, False, False])


@settings(max_examples=200, deadline=None)
@given(
    counts=st.lists(st.integers(0, 500), min_size=4, max_size=4),
    min_fraction=st.sampled_from([0.1, 0.2, 0.3]),
)
def test_rule_matches_definition(counts, min_fraction):
    c = np.array(counts)
    tissue = c[1:].sum()
    want = tissue > 0 and sum(c[k] / tissue >= min_fraction for k in (1, 2, 3)) >= 2
    got = bool(is_heterogeneous(composition(c), min_fraction))
    assert got == want


def test_min_tissue_and_cap_and_determinism():
    rng = np.random.default_rng(0)
    px = rng.integers(0, 1001, 500)
    tissue = rng.random(500)
    cfg = SamplingConfig(max_per_slide=40, min_tissue=0.5)
    a = select_patches(_counts(px, 1000), tissue, cfg, numpy_rng(7, "select", "s1"))
    b = select_patches(_counts(px, 1000), tissue, cfg, numpy_rng(7, "select", "s1"))
    c = select_patches(_counts(px, 1000), tissue, cfg, numpy_rng(8, "select", "s1"))
    assert len(a.index) == 40 and np.array_equal(a.index, b.index) and not np.array_equal(a.index, c.index)
    assert (np.diff(a.index) > 0).all()
    assert (tissue[a.index] >= 0.5).all() and ((px[a.index] >= 200) & (px[a.index] <= 800)).all()


def test_balance_spreads_over_bins():
    # 90 % of candidates barely mixed (share 0.2–0.3), 10 % evenly mixed (0.4–0.5)
    px = np.r_[np.full(900, 250), np.full(100, 450)]
    cfg = SamplingConfig(max_per_slide=100, balance=True, bins=3)
    sel = select_patches(_counts(px, 1000), np.ones(1000), cfg, numpy_rng(0))
    bins = np.array(sel.bin)
    assert len(sel.index) == 100 and set(bins) == {"1+2:0", "1+2:2"}
    assert (bins == "1+2:2").sum() == 50  # half from the rare bin
    plain = select_patches(_counts(px, 1000), np.ones(1000), SamplingConfig(max_per_slide=100), numpy_rng(0))
    assert (np.array(plain.bin) == "1+2:2").sum() < 30


def test_homogeneous_share():
    px = np.r_[np.full(300, 500), np.full(300, 0)]  # 300 mixed, 300 single-class
    cfg = SamplingConfig(max_per_slide=100, homogeneous_share=0.25)
    sel = select_patches(_counts(px, 1000), np.ones(600), cfg, numpy_rng(0))
    assert len(sel.index) == 100 and sel.homogeneous.sum() == 25
    assert (px[sel.index[sel.homogeneous]] == 0).all() and (px[sel.index[~sel.homogeneous]] == 500).all()
    # no cap: the share still holds
    sel = select_patches(
        _counts(px, 1000), np.ones(600), SamplingConfig(max_per_slide=0, homogeneous_share=0.5), numpy_rng(0)
    )
    assert sel.homogeneous.sum() == (~sel.homogeneous).sum() == 300


def test_rule_any_and_bad_config():
    px = np.array([0, 100, 500])
    sel = select_patches(_counts(px, 1000), np.ones(3), SamplingConfig(rule="any"), numpy_rng(0))
    assert list(sel.index) == [0, 1, 2]
    for bad in (dict(rule="x"), dict(min_fraction=0.7), dict(homogeneous_share=1.0), dict(max_per_slide=-1)):
        with pytest.raises(ValueError):
            SamplingConfig(**bad)


@settings(max_examples=200, deadline=None)
@given(
    num_classes=st.integers(1, 12),
    values=st.integers(1, 14),
    shape=st.tuples(st.integers(0, 9), st.integers(0, 9)),
    seed=st.integers(0, 2**16),
    dtype=st.sampled_from([np.uint8, np.int64]),
)
def test_label_counts_are_bincounts(num_classes, values, shape, seed, dtype):
    from histosynth.data.composition import label_counts

    label = np.random.default_rng(seed).integers(0, values, shape).astype(dtype)
    want = np.bincount(label.ravel(), minlength=num_classes)[:num_classes]
    got = label_counts(label, num_classes)
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)
