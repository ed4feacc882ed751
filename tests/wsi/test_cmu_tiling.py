"""Tiling the real CMU H&E slide: kept patches' tissue agrees with the QC mask and the pixels."""

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from histosynth.wsi import open_slide
from histosynth.wsi.tile_stage import run
from histosynth.wsi.tiling import TileConfig, load_tissue_mask
from histosynth.wsi.tissue import tissue_mask


def _pixel_tissue(patch: np.ndarray, factor: int, threshold: float) -> float:
    """Tissue fraction of a patch's pixels at the thumbnail's scale (the mask's own scale)."""
    n = patch.shape[0] // factor
    small = patch[: n * factor, : n * factor].reshape(n, factor, n, factor, 3).mean(axis=(1, 3))
    return float(tissue_mask(small.astype(np.uint8), threshold).mean())


@pytest.mark.parametrize("mpp", [0.5, 1.0])
def test_cmu_patches_match_qc_mask(cmu_slide, tmp_path, mpp):
    cfg = TileConfig(mpp=mpp, size=128, min_tissue=0.5)
    result = run([cmu_slide], tmp_path, cfg, show_progress=False)
    manifest = result.manifest
    assert result.ok
    tiles = pd.read_parquet(tmp_path / "tiles.parquet")
    info = manifest["slides"]["cmu_small_region"]
    qc = np.asarray(Image.open(tmp_path / "qc" / "cmu_small_region.png"))
    assert qc.ndim == 3 and qc.shape[1] > qc.shape[0]  # two panels side by side
    assert len(tiles) >= 30 and (tiles["tissue"] >= 0.5).all()
    assert tiles["size0"].iloc[0] == pytest.approx(128 * mpp / 0.499)
    assert (tiles["level"] == 0).all()  # single-level slide
    mask = load_tissue_mask(tmp_path, "cmu_small_region", info)
    factor = max(1, round(info["thumb_scale"] * 0.499 / mpp))  # patch pixels per mask pixel
    diffs = []
    with open_slide(cmu_slide) as s:
        for row in tiles.itertuples():
            patch = s.read_at_mpp(row.x0, row.y0, 128, mpp)
            assert patch.shape == (128, 128, 3)
            # The table's tissue fraction is the QC mask's coverage of the patch.
            assert mask.region(row.x0, row.y0, row.size0, 64).mean() == pytest.approx(row.tissue, abs=0.06)
            px = _pixel_tissue(patch, factor, info["threshold"])
            assert px >= 0.15, (row.x0, row.y0, px)  # no kept patch is glass
            diffs.append(row.tissue - px)
        # Closing and hole filling make the mask cover loose dermis gaps, so it may exceed the
        # pixel count; on average the two agree.
        assert np.mean(np.abs(diffs)) < 0.25 and min(diffs) > -0.1
        # Patches the mask calls glass hold (almost) no tissue pixels.
        size0 = tiles["size0"].iloc[0]
        glass = [
            (x, y)
            for x in range(0, int(info["width"] - size0), int(size0))
            for y in range(0, int(info["height"] - size0), int(size0))
            if mask.region(x, y, size0, 32).mean() == 0
        ]
        assert len(glass) >= 8
        for x, y in glass[:: max(1, len(glass) // 12)]:
            assert _pixel_tissue(s.read_at_mpp(x, y, 128, mpp), factor, info["threshold"]) < 0.1
