import numpy as np

from histosynth.data.derived_labels import StainLabelSource, derive_stain_labels
from histosynth.samples import make_label_grid, render_region
from histosynth.wsi.base import ArrayReader


def test_separates_hematoxylin_dense_from_eosin_tissue():
    grid = make_label_grid(24, 32, num_classes=3, layout="blocks")  # 1 epithelium, 2 stroma
    img = render_region(grid, 16, 0, 0, 512, 384)
    truth = np.repeat(np.repeat(grid, 16, 0), 16, 1)
    lab = derive_stain_labels(img, um_per_px=2.0, smooth_um=8.0, min_um2=400)
    for cls in (0, 1, 2):
        assert (lab[truth == cls] == cls).mean() > 0.8, cls


def test_label_source_regions_match_grid():
    src = StainLabelSource(np.array([[0, 1], [2, 1]], np.uint8), cell=100.0)
    out = src.label_region(50, 50, 100, 4)  # straddles all four cells
    assert out.tolist() == [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 1, 1], [2, 2, 1, 1]]
    assert src.label_region(500, 500, 100, 2).tolist() == [[0, 0], [0, 0]]  # outside: background


def test_cmu_slide_has_epidermis_and_dermis(cmu_slide):
    import openslide

    with openslide.OpenSlide(str(cmu_slide)) as s:
        img = np.asarray(s.get_thumbnail((1110, 1484)).convert("RGB"))
    src = StainLabelSource.from_reader(ArrayReader(img, mpp=0.499 * 2220 / img.shape[1]))
    frac = np.bincount(src.grid.ravel(), minlength=3) / src.grid.size
    tissue = frac[1] + frac[2]
    assert 0.2 < tissue < 0.6
    assert 0.15 < frac[1] / tissue < 0.6  # epidermis is a real minority of the tissue
