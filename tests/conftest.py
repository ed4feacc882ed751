"""Shared fixtures: offline, CPU-only, small synthetic data."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("HISTOSYNTH_PROGRESS", "0")

import pytest


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
