import json
from dataclasses import replace

import numpy as np
import pytest
from tests.conftest import build_bank

from histosynth.sample.large import LargeConfig, run


@pytest.mark.slow
def test_large_image_is_a_pyramidal_slide_with_aligned_labels(tiny_checkpoint, tiny_dataset, tmp_path):
    import openslide
    import tifffile
    from shapely.geometry import Point, shape

    bank = build_bank(tiny_dataset, tmp_path / "bank", split="all")
    cfg = LargeConfig(
        width=256, height=192, steps=2, sampler="ddim", fractions=(0, 0.4, 0.3, 0.3), window_batch=8
    )
    res = run(tiny_checkpoint, tmp_path / "big", cfg, crop_bank=bank.folder).manifest["result"]
    assert res["windows"] > 4 and np.isfinite(res["seam_score"])
    with openslide.OpenSlide(res["image"]) as s:
        assert s.dimensions == (256, 192) and s.level_count >= 1
        assert float(s.properties["openslide.mpp-x"]) == pytest.approx(0.5, rel=1e-3)  # the data's mpp
    with tifffile.TiffFile(res["labels"]) as tf:
        label = tf.pages[0].asarray()
    assert label.shape == (192, 256) and set(np.unique(label)) <= {1, 2, 3}
    fc = json.loads((tmp_path / "big" / "image.geojson").read_text())
    geoms = {f["properties"]["classification"]["name"]: shape(f["geometry"]) for f in fc["features"]}
    names = json.loads((tmp_path / "big" / "classes.json").read_text())["classes"]
    for r, c in [(10, 10), (100, 200), (150, 40)]:  # the GeoJSON agrees with the label TIFF
        name = next(n["name"] for n in names if n["id"] == label[r, c])
        assert geoms[name].contains(Point(c + 0.5, r + 0.5))
    again = run(tiny_checkpoint, tmp_path / "big", cfg, crop_bank=bank.folder).manifest["result"]
    assert again == res  # complete: not redone
    assert not list((tmp_path / "big").glob("_canvas*"))


def test_window_conditions_hold_no_autograd_graph(tiny_checkpoint, tiny_dataset, tmp_path, monkeypatch):
    """Conditions are computed once per window batch and kept for every step: a graph kept with
    them held each window's conditioning activations, so memory grew with the image."""
    from histosynth.diffusion.pipeline import HistoSynthPipeline

    made = []
    prepare = HistoSynthPipeline.prepare_conditions

    def spy(self, *args, **kwargs):
        gc = prepare(self, *args, **kwargs)
        made.append(gc)
        return gc

    monkeypatch.setattr(HistoSynthPipeline, "prepare_conditions", spy)
    bank = build_bank(tiny_dataset, tmp_path / "bank", split="all")
    cfg = LargeConfig(width=128, height=128, steps=1, sampler="ddim", fractions=(0, 0.5, 0.5), window_batch=2)
    run(tiny_checkpoint, tmp_path / "big", cfg, crop_bank=bank.folder)
    assert len(made) > 1
    for gc in made:
        c = gc.conditions
        assert all(t.grad_fn is None and not t.requires_grad for t in (c.spatial, c.tokens))


def test_dpm_sde_large_images_are_reproducible_from_the_seed(tiny_checkpoint, tmp_path):
    """The noise dpm++-sde adds at every step comes from the run's seed: the image does not depend
    on torch's global RNG (it did: the window loop left the noise to the scheduler's default)."""
    import tifffile
    import torch

    cfg = LargeConfig(
        width=128, height=64, steps=2, sampler="dpm++-sde", crops="none", fractions=(0, 0.5, 0.5)
    )
    images = []
    for name, global_seed, seed in [("a", 0, 0), ("b", 1, 0), ("c", 0, 1)]:
        torch.manual_seed(global_seed)
        res = run(tiny_checkpoint, tmp_path / name, replace(cfg, seed=seed))
        images.append(tifffile.imread(res.manifest["result"]["image"]).astype(int))
    np.testing.assert_array_equal(images[0], images[1])
    assert np.abs(images[0] - images[2]).mean() > 1  # another seed, another image


def test_large_image_bytes_depend_on_the_seed_not_the_window_batch(tiny_checkpoint, tiny_dataset, tmp_path):
    """Windows are evaluated a batch at a time and the canvas is stepped block by block: neither
    the batch size nor the order of the work may change a byte of the image."""
    import tifffile

    bank = build_bank(tiny_dataset, tmp_path / "bank", split="all")
    cfg = LargeConfig(width=160, height=128, steps=2, sampler="dpm++", fractions=(0, 0.4, 0.3, 0.3))
    images = []
    for name, batch in (("a", 1), ("b", 3), ("c", 8)):
        res = run(tiny_checkpoint, tmp_path / name, replace(cfg, window_batch=batch), crop_bank=bank.folder)
        images.append((tmp_path / name / "image.tif").read_bytes())
        assert not list((tmp_path / name).glob("_*"))  # the working files are gone
    assert images[0] == images[1] == images[2]
    assert tifffile.imread(res.manifest["result"]["labels"]).shape == (128, 160)
