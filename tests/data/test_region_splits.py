import numpy as np

from histosynth.data.splits import SplitConfig, region_splits


def test_region_splits_share_no_pixels_across_splits():
    xs, ys = np.meshgrid(np.arange(0, 2000, 32), np.arange(0, 1500, 32))  # overlapping 128 px patches
    x0, y0 = xs.ravel(), ys.ravel()
    cfg = SplitConfig(by="region", region_um=100.0)  # 200 level-0 px blocks at 0.5 µm/px
    splits, keep = region_splits("s", x0, y0, 128.0, 0.5, cfg, seed=3)
    assert set(np.asarray(splits)[keep]) == {"train", "val", "test"}
    cover = {s: np.zeros((1700, 2200), bool) for s in ("train", "val", "test")}
    for a, b, s, k in zip(x0, y0, splits, keep, strict=True):
        if k:
            cover[s][b : b + 128, a : a + 128] = True
    assert not (cover["train"] & cover["test"]).any() and not (cover["train"] & cover["val"]).any()
    assert not (cover["val"] & cover["test"]).any()
    again, _ = region_splits("s", x0, y0, 128.0, 0.5, cfg, seed=3)
    assert again == splits and region_splits("s", x0, y0, 128.0, 0.5, cfg, seed=4)[0] != splits
