import numpy as np
import pytest

from histosynth.sample.maps import procedural_map


@pytest.mark.parametrize("kind", ["noise", "voronoi"])
@pytest.mark.parametrize(
    "fractions",
    [{1: 0.5, 2: 0.5}, {0: 0.1, 1: 0.3, 2: 0.6}, {1: 0.2, 2: 0.2, 3: 0.6}, {3: 0.05, 4: 0.95}],
)
def test_hits_requested_fractions_within_5_percent(kind, fractions):
    rng = np.random.default_rng(0)
    for _ in range(3):
        m = procedural_map(128, fractions, kind=kind, rng=rng)
        total = sum(fractions.values())
        for cid, f in fractions.items():
            assert abs((m == cid).mean() - f / total) < 0.05, (cid, (m == cid).mean())
        assert set(np.unique(m)) <= set(fractions)


def test_zero_fraction_class_absent_and_seeded():
    a = procedural_map(64, {1: 0.7, 2: 0.3, 5: 0.0}, rng=np.random.default_rng(3))
    b = procedural_map(64, {1: 0.7, 2: 0.3, 5: 0.0}, rng=np.random.default_rng(3))
    assert np.array_equal(a, b) and not (a == 5).any()


def test_regions_are_spatially_coherent():
    m = procedural_map(128, {1: 0.5, 2: 0.5}, rng=np.random.default_rng(1))
    same = (m[:, 1:] == m[:, :-1]).mean()
    assert same > 0.9  # blobs, not salt-and-pepper


@pytest.mark.parametrize("bad", [{}, {1: -1.0}, {300: 1.0}])
def test_bad_fractions(bad):
    with pytest.raises(ValueError, match="fractions|class ids"):
        procedural_map(32, bad)


def test_large_map_tunes_on_a_subsample_and_stays_near_its_fields_in_memory():
    import tracemalloc

    size, fractions = 1100, {0: 0.2, 1: 0.5, 2: 0.3}  # > 1024: biases tuned on every 2nd pixel
    tracemalloc.start()
    m = procedural_map(size, fractions, rng=np.random.default_rng(1), scale=120)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    for cid, f in fractions.items():
        assert abs((m == cid).mean() - f) < 0.05
    fields = len(fractions) * size * size * 4  # float32 score fields (float64 copies took > 4x)
    assert peak < 2.5 * fields, f"peak {peak / 2**20:.0f} MB for {fields / 2**20:.0f} MB of fields"
