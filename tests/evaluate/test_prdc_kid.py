import numpy as np
import pytest
from scipy.spatial.distance import cdist
from sklearn.metrics.pairwise import polynomial_kernel as sk_poly

from histosynth.evaluate.bootstrap import bootstrap_fd, bootstrap_mean
from histosynth.evaluate.kid import kid, mmd2_unbiased
from histosynth.evaluate.neighbors import knn_radii, nearest
from histosynth.evaluate.prdc import prdc
from histosynth.evaluate.stats import FeatureStats, frechet_distance


def brute_prdc(real, fake, k):
    """Naeem et al.'s reference computation, in float64 with full distance matrices."""
    drr, dff, drf = cdist(real, real), cdist(fake, fake), cdist(real, fake)
    rr = np.sort(drr, axis=1)[:, k]
    rf = np.sort(dff, axis=1)[:, k]
    inside = drf <= rr[:, None]  # (real i, fake j): fake j inside real ball i
    return {
        "precision": inside.any(axis=0).mean(),
        "recall": (drf <= rf[None, :]).any(axis=1).mean(),
        "density": inside.sum(axis=0).mean() / k,
        "coverage": (drf.min(axis=1) <= rr).mean(),
    }


def test_prdc_matches_brute_force():
    rng = np.random.default_rng(0)
    real = rng.standard_normal((300, 8))
    fake = rng.standard_normal((250, 8)) * 1.3 + 0.4
    got = prdc(real, fake, k=5, chunk=64).summary()
    want = brute_prdc(real, fake, 5)
    for key in want:
        assert got[key] == pytest.approx(want[key], abs=1e-12), key


def test_prdc_identical_and_disjoint_sets():
    x = np.random.default_rng(1).standard_normal((200, 16))
    same = prdc(x, x.copy(), k=5)
    assert same.precision == 1.0 and same.recall == 1.0 and same.coverage == 1.0
    # each sample lies in its own ball and in the k balls of the points it is a neighbour of
    assert same.density == pytest.approx(brute_prdc(x, x, 5)["density"])
    far = prdc(x, x + 100.0, k=5)
    assert (far.precision, far.recall, far.density, far.coverage) == (0.0, 0.0, 0.0, 0.0)


def test_knn_and_nearest_match_brute_force():
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((50, 5)), rng.standard_normal((70, 5))
    np.testing.assert_allclose(knn_radii(a, 3, chunk=7), np.sort(cdist(a, a), axis=1)[:, 3], rtol=1e-5)
    d, i = nearest(a, b, k=2, chunk=9)
    full = cdist(a, b)
    np.testing.assert_array_equal(i, np.argsort(full, axis=1)[:, :2])
    np.testing.assert_allclose(d, np.sort(full, axis=1)[:, :2], rtol=1e-5)


def test_kid_matches_sklearn_kernel_and_is_zero_mean_for_one_distribution():
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((40, 6)), rng.standard_normal((40, 6)) + 0.5
    kxx = sk_poly(x, x, degree=3, gamma=1 / 6, coef0=1)
    kyy = sk_poly(y, y, degree=3, gamma=1 / 6, coef0=1)
    kxy = sk_poly(x, y, degree=3, gamma=1 / 6, coef0=1)
    m = 40
    want = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2 * kxy.mean()
    assert mmd2_unbiased(x, y) == pytest.approx(want, rel=1e-12)
    mean, std, size = kid(x, y, subsets=5, subset_size=1000)
    assert size == 40 and mean == pytest.approx(want) and std == pytest.approx(0.0, abs=1e-12)
    a = rng.standard_normal((400, 6))
    b = rng.standard_normal((400, 6))
    mean, std, _ = kid(a, b, subsets=20, subset_size=200)
    assert abs(mean) < 3 * std / np.sqrt(20) + 1e-3


def test_bootstrap_intervals_bracket_the_estimate_and_are_reproducible():
    rng = np.random.default_rng(4)
    r, f = rng.standard_normal((200, 4)), rng.standard_normal((200, 4)) + 0.3
    fd = frechet_distance(FeatureStats.of(r), FeatureStats.of(f))
    lo, hi, values = bootstrap_fd(r, f, 30, seed=1)
    assert lo < fd < hi and len(values) == 30
    assert bootstrap_fd(r, f, 30, seed=1)[:2] == (lo, hi)
    lo2, hi2, _ = bootstrap_fd(r[:150], f[:3], 5, seed=1)  # n < d route also runs
    assert lo2 <= hi2
    # small sets: FD is biased upwards, and more so in resamples; the corrected interval still
    # holds the estimate (the plain percentile interval lies wholly above it here)
    small_r, small_f = rng.standard_normal((12, 30)), rng.standard_normal((12, 30))
    est = frechet_distance(FeatureStats.of(small_r), FeatureStats.of(small_f))
    lo3, hi3, reps = bootstrap_fd(small_r, small_f, 50, seed=2)
    assert np.quantile(reps, 0.025) > est and lo3 <= est <= hi3
    ind = rng.random(500) < 0.3
    lo, hi = bootstrap_mean(ind, 200, seed=0)
    assert lo < ind.mean() < hi and hi - lo < 0.15
