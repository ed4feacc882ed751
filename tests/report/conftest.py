"""An evaluated toy comparison (two variants, one with outliers) for the report tests."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="session")
def evaluation(tmp_path_factory):
    from histosynth.config import build_config
    from histosynth.evaluate.config import EvaluateConfig
    from histosynth.evaluate.suite import read_metrics, run
    from histosynth.evaluate.toy import shift_colour, toy_patches, write_patch_dataset

    root = tmp_path_factory.mktemp("report")
    imgs, labs, _ = toy_patches(28, 64, seed=5)
    real = write_patch_dataset(root / "real", imgs[:20], labs[:20], splits=["train"] * 14 + ["test"] * 6)
    ids = list(real.index["id"])
    crops = [{"1": [{"slide": "toy", "patch": ids[i], "box": [8, 8, 24, 24]}]} for i in range(8)]
    good = write_patch_dataset(root / "map", imgs[20:], labs[20:], slide="map", extra={"crop_sources": crops})
    odd_imgs = shift_colour(imgs[20:], (30, -30, 0))
    odd_imgs[:2] = np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8) // 4 * [0, 4, 0]
    odd = write_patch_dataset(root / "tokens", odd_imgs, labs[20:], slide="tok")
    cfg = build_config(EvaluateConfig, values={
        "detectors": ["pixels-32", "random-init-cnn"], "bootstrap": 5, "kid_subsets": 5, "region_tile": 32,
        "region_min_tiles": 3, "workers": 1,
        "tstr": {"mixes": [1.0], "seeds": 1,
                 "segmenter": {"encoder_depth": 3, "decoder_channels": 16, "crop": 32, "batch_size": 2, "steps": 2}},
    })  # fmt: skip
    out = root / "eval"
    metrics = read_metrics(run({"map": good.folder, "tokens": odd.folder}, out, cfg, real=real.folder).folder)
    return {"root": root, "out": out, "metrics": metrics, "odd": odd}
