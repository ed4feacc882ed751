"""Tiny patch datasets for the training tests, made from the synthetic tissue textures."""

from __future__ import annotations

import numpy as np
import pytest

from histosynth.artifacts import prepare_output
from histosynth.data.patch_dataset import PatchDatasetWriter
from histosynth.samples import SYNTHETIC_CLASSES, make_label_grid, render_region


def write_tiny_dataset(folder, n: int = 12, size: int = 32, num_classes: int = 3, seed: int = 0):
    """A finished patch dataset of ``n`` textured patches with known maps (classes 0..num_classes-1)."""
    from histosynth.data.classmap import ClassMap

    classes = ClassMap(SYNTHETIC_CLASSES.classes[:num_classes], source="synthetic")
    config = {"kind": "tiny-test", "n": n, "size": size, "seed": seed}
    prepare_output(folder, "patch-dataset", config)
    writer = PatchDatasetWriter(folder, classes)
    rows = []
    cell = 4
    for i in range(n):
        grid = make_label_grid(size // cell, size // cell, num_classes, "blobs", seed=seed * 1000 + i)
        grid[grid == 0] = 1 + (i % (num_classes - 1))  # mostly tissue; background only at the rim
        grid[: size // cell // 4, :] = 0
        image = render_region(grid, cell, 0, 0, size, size)
        label = np.repeat(np.repeat(grid, cell, 0), cell, 1)
        row = writer.write_patch(f"p{i:03d}", image, label)
        row.update(split="train", slide="syn", x0=i * size, y0=0, size0=size, mpp=0.5)
        rows.append(row)
    writer.write_shard("all", rows)
    writer.finalize(["all"], config)
    return folder


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    return write_tiny_dataset(tmp_path_factory.mktemp("data") / "tiny")


@pytest.fixture
def make_dataset():
    """``make_dataset(folder, n=..., size=..., num_classes=..., seed=...)``: another tiny dataset."""
    return write_tiny_dataset


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny models run fastest on one thread, and a shared CI box does not oversubscribe."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
