"""Small real and synthetic patch datasets with known relations, shared by the evaluation tests."""

from __future__ import annotations

import numpy as np
import pytest

# Settings small enough for seconds-long runs: the pixel detector, a 3-stage DeepLabv3+ trained
# for a few steps, no bootstrap beyond a handful of replicates.
TINY = {
    "detectors": ["pixels-32"],
    "bootstrap": 5,
    "kid_subsets": 10,
    "region_tile": 32,
    "region_min_tiles": 3,
    "workers": 1,
    "tstr": {
        "mixes": [1.0],
        "seeds": 1,
        "segmenter": {"encoder_depth": 3, "decoder_channels": 16, "crop": 32, "batch_size": 2, "steps": 2},
    },
}


@pytest.fixture(scope="session")
def tiny_config():
    return {**TINY, "tstr": {**TINY["tstr"]}}


@pytest.fixture(scope="session")
def toy(tmp_path_factory):
    """A real dataset (24 train, 10 test patches of 64 px) and three synthetic variants.

    ``copy``: the first 8 test patches plus 2 exact copies of training patches (planted
    memorisation), with ``crop_sources`` of which one crop is pasted verbatim;
    ``shift``: the test patches colour-shifted; ``other``: patches of another layout seed.
    """
    from histosynth.evaluate.toy import shift_colour, toy_patches, write_patch_dataset

    root = tmp_path_factory.mktemp("toy")
    imgs, labs, _ = toy_patches(34, 64, seed=3)
    splits = ["train"] * 24 + ["test"] * 10
    real = write_patch_dataset(root / "real", imgs, labs, splits=splits)
    train_ids = list(real.index["id"][:24])

    copy_imgs = np.concatenate([imgs[24:32], imgs[[0, 5]]]).copy()
    copy_labs = np.concatenate([labs[24:32], labs[[0, 5]]])
    # Paste a 20×20 crop of training patch 7 into image 1 at (30, 12): a pixel-for-pixel crop copy.
    copy_imgs[1, 12:32, 30:50] = imgs[7, 2:22, 3:23]
    crop_sources = [{"2": [{"slide": "toy", "patch": train_ids[7 if i == 1 else 9], "box": [3, 2, 20, 20]}]}
                    for i in range(10)]  # fmt: skip
    extra = {"crop_sources": crop_sources, "seed": list(range(10)), "sampler": ["ddim"] * 10}
    copy = write_patch_dataset(root / "copy", copy_imgs, copy_labs, slide="syn-copy", extra=extra)
    shift = write_patch_dataset(
        root / "shift", shift_colour(imgs[24:], (40, -30, 20)), labs[24:], slide="syn-shift"
    )
    o_imgs, o_labs, _ = toy_patches(10, 64, seed=11)
    other = write_patch_dataset(root / "other", o_imgs, o_labs, slide="syn-other")
    return {
        "root": root,
        "real": real,
        "copy": copy,
        "shift": shift,
        "other": other,
        "images": imgs,
        "labels": labs,
    }
