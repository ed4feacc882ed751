"""Memory maps of a large image hand their touched pages back; reading them in bands changes nothing."""

import sys
from pathlib import Path

import numpy as np
import pytest

from histosynth.sample.large_map import present_classes
from histosynth.sample.paged import open_map, release, to_tensor
from histosynth.sample.windows import seam_score


def _rss_file_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssFile:"):
            return int(line.split()[1])
    return 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_released_pages_leave_the_process_and_keep_their_data(tmp_path):
    arr = open_map(tmp_path / "a.f32", (2048, 2048))  # 16 MB
    before = _rss_file_kb()
    arr[:] = 1.5
    assert _rss_file_kb() - before > 12_000  # every page written is resident
    release(arr[10:20])  # a view releases its whole map
    assert _rss_file_kb() - before < 4_000
    assert float(arr.sum(dtype=np.float64)) == 1.5 * 2048 * 2048  # read back from the file
    release(np.zeros(3), None)  # not memory maps: left alone


def test_to_tensor_copies_a_region_in_aligned_memory(tmp_path):
    arr = open_map(tmp_path / "a.f32", (3, 40, 50))
    arr[:] = np.arange(arr.size, dtype=np.float32).reshape(arr.shape)
    t = to_tensor(arr[:, 5:21, 7:23])
    assert t.data_ptr() % 64 == 0 and tuple(t.shape) == (3, 16, 16)
    np.testing.assert_array_equal(t.numpy(), arr[:, 5:21, 7:23])
    arr[:] = 0
    assert float(t.sum()) > 0  # a copy


def test_banded_reads_give_the_whole_array_answers(tmp_path):
    rng = np.random.default_rng(0)
    image = open_map(tmp_path / "img.u8", (97, 130, 3), np.uint8)
    image[:] = rng.integers(0, 256, image.shape)
    whole = seam_score(np.array(image), [32, 64], [48], band_px=10**9)
    assert seam_score(image, [32, 64], [48], band_px=130 * 7) == pytest.approx(whole, rel=1e-6)
    label = open_map(tmp_path / "label.u8", (97, 130), np.uint8)
    label[:] = rng.choice([0, 3, 7], label.shape)
    assert present_classes(label, band_px=300) == [0, 3, 7]
