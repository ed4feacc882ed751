"""Shared fixtures: offline, CPU-only, small synthetic data."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("HISTOSYNTH_PROGRESS", "0")

import pytest


def run_cli(args, capsys) -> tuple[int, str]:
    """Run the CLI in-process as a user's shell would: (exit status, stdout + stderr)."""
    from histosynth.cli.main import main

    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out + out.err


@pytest.fixture(scope="session")
def synthetic_slide(tmp_path_factory):
    """A 2048×1536, 3-level JPEG pyramidal TIFF with 4 classes (blobs layout)."""
    from histosynth.samples import write_synthetic_slide

    return write_synthetic_slide(tmp_path_factory.mktemp("slides") / "syn.tif", size=(2048, 1536), seed=1)


@pytest.fixture(scope="session")
def cmu_slide():
    """The real CMU H&E slide shipped with the package."""
    from histosynth.samples import cmu_small_region

    return cmu_small_region()


def write_tiny_dataset(folder, n: int = 12, size: int = 64, seed: int = 0, splits=("train", "val", "test")):
    """A patch dataset cut from synthetic tissue with known labels (cell 16 px, 4 classes)."""
    import numpy as np

    from histosynth.data.patch_dataset import PatchDatasetWriter
    from histosynth.samples import SYNTHETIC_CLASSES, make_label_grid, render_region

    classes = type(SYNTHETIC_CLASSES)(SYNTHETIC_CLASSES.classes[:4], "synthetic")
    writer = PatchDatasetWriter(folder, classes)
    rng = np.random.default_rng(seed)
    rows = []
    grid = make_label_grid(64, 64, 4, layout="blobs", seed=seed)
    for i in range(n):
        x0, y0 = (int(v) for v in rng.integers(0, 64 * 16 - size, 2))
        img = render_region(grid, 16, x0, y0, size, size)
        lab = np.repeat(np.repeat(grid, 16, 0), 16, 1)[y0 : y0 + size, x0 : x0 + size]
        row = writer.write_patch(f"p{i:03d}", img, lab)
        row.update(split=splits[i % len(splits)], slide=f"s{i % 2}", x0=x0, y0=y0, size0=size, mpp=0.5)
        rows.append(row)
    writer.write_shard("all", rows)
    writer.finalize(["all"], {"tiny": True, "seed": seed, "n": n})
    return folder


def build_bank(dataset, out, **cfg):
    """The crop-bank stage on ``dataset``, opened as a :class:`CropBank` (``cfg``: its settings)."""
    from histosynth.sample.crop_bank import CropBank, CropBankConfig, run

    return CropBank(run(dataset, out, CropBankConfig(**cfg)).folder)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """12 synthetic 64 px patches (4 classes), splits train/val/test round-robin."""
    return write_tiny_dataset(tmp_path_factory.mktemp("tiny") / "ds")


TINY_TRAIN = ["run.steps=2", "model.backbone=test", "model.codec=identity-p2", "optim.batch_size=4", "run.sample_every=0",
              "run.sample_steps=2", "run.grid_rows=2"]  # fmt: skip


def train_tiny(dataset, out, conditioning: str = "map+crops-tokens", steps: int = 2):
    """A real (very short) training run of the cpu-tiny preset with the `test` backbone."""
    from histosynth.config import build_config
    from histosynth.train.config import TrainConfig
    from histosynth.train.loop import run

    overrides = [*TINY_TRAIN, f"run.steps={steps}", f"model.conditioning={conditioning}"]
    cfg = build_config(TrainConfig, preset="cpu-tiny", overrides=overrides)
    run(dataset, out, cfg, show_progress=False)
    return out


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_dataset, tmp_path_factory):
    """A real 2-step training run on the tiny dataset (64 px, 4 classes)."""
    return train_tiny(tiny_dataset, tmp_path_factory.mktemp("ckpt") / "run")
