"""Fixtures of the studio tests: a crop bank, held-out maps, a reader study, a test generator.

``PaintingGenerator`` is a test double of the model for the server layers (queue, uploads,
downloads): it paints each class region in its class colour. The end-to-end browser test of
generation uses the real ``Synthesizer`` instead.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from tests.conftest import write_tiny_dataset


class PaintingGenerator:
    """Test double of ``Synthesizer``: class colours per region; ``gate`` holds each step."""

    samplers = ["ddim", "euler"]

    def __init__(self, classes, image_size: int = 64) -> None:
        self.classes = classes
        self.image_size = image_size
        self.gate: threading.Event | None = None
        self.calls: list[dict] = []

    def generate(self, label, crops, guidance_map, guidance_crops, steps, sampler, seed, progress=None):
        self.calls.append(dict(crops=list(crops), steps=steps, sampler=sampler, seed=seed))
        for i in range(steps):
            if self.gate is not None:
                assert self.gate.wait(10), "test gate was never opened"
            if progress is not None:
                progress(i + 1, steps)
        return self.classes.colorize(label)


@pytest.fixture(scope="session")
def crop_bank(tiny_dataset, tmp_path_factory):
    """A crop bank cut from the tiny dataset (64 px patches, classes 0-3, 0 not banked)."""
    from tests.conftest import build_bank

    return build_bank(tiny_dataset, tmp_path_factory.mktemp("bank") / "bank", split="all", min_area_frac=0.02)


@pytest.fixture(scope="session")
def other_dataset(tmp_path_factory):
    """A second tiny dataset, standing in for a synthetic one in reader-study tests."""
    return write_tiny_dataset(tmp_path_factory.mktemp("other") / "ds", n=6, seed=5, splits=("test",))


# A tiny model per synthesis.py's recipe (cpu-tiny, 2 steps), with the smallest backbone.
@pytest.fixture(scope="session")
def browser_ok() -> None:
    """Skips before any costly setup when Chromium or Playwright is missing."""
    from tests.studio.browser import need_browser

    need_browser()


@pytest.fixture
def generator(crop_bank):
    return PaintingGenerator(crop_bank.classes)


@pytest.fixture
def session(generator, crop_bank, tiny_dataset):
    from histosynth.studio.session import MapSource, StudioSession

    s = StudioSession(generator, crop_bank, MapSource(tiny_dataset, "test", 64))
    yield s
    s.close()


@pytest.fixture
def study(tiny_dataset, other_dataset, tmp_path):
    """A reader study of 3 real (tiny test split has 4) and 3 'synthetic' images."""
    from histosynth.studio.reader_study import build_reader_study

    return build_reader_study(
        tiny_dataset, other_dataset, tmp_path / "study", n_real=3, n_synthetic=3, seed=1
    )


def painted_label(size: int = 64) -> np.ndarray:
    """Left half class 1, right half class 2."""
    label = np.ones((size, size), np.uint8)
    label[:, size // 2 :] = 2
    return label
