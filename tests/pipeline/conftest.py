"""Fixtures of the `histosynth run` tests: two annotated synthetic slides, the test preset."""

from __future__ import annotations

import pytest

# The test preset (seconds: a mechanics-only model) with splits of small blocks, so that each of
# the two 512 × 384 µm slides holds test patches.
TEST_SETTINGS = ["--preset", "test", "--set", "region_um=128"]


@pytest.fixture(scope="session")
def annotated_slides(tmp_path_factory):
    """``s/s0.tif``, ``s/s1.tif`` (1024 × 768 px at 0.5 µm/px), their ground truth as QuPath
    GeoJSON in ``ann/`` and ``classes.json``."""
    from tests.wsi._helpers import write_annotated_slides

    return write_annotated_slides(tmp_path_factory.mktemp("annotated"), 2)
