import numpy as np
import pytest
import scipy.linalg

from histosynth.evaluate.stats import (
    FeatureStats,
    StreamingStats,
    frechet_distance,
    frechet_distance_features,
)


def reference_fd(mu1, s1, mu2, s2):
    """The textbook formula with scipy's general matrix square root (pytorch-fid's computation)."""
    covmean = scipy.linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def random_spd(rng, d):
    a = rng.standard_normal((d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def test_streaming_matches_numpy_despite_offset_and_uneven_batches():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1000, 7)) * [1, 2, 3, 4, 5, 6, 7] + 1e4  # large common offset
    acc = StreamingStats(7)
    for chunk in np.array_split(x, [3, 10, 500, 501]):
        acc.update(chunk)
    st = acc.finalize()
    assert st.n == 1000
    np.testing.assert_allclose(st.mu, x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(st.sigma, np.cov(x, rowvar=False), rtol=1e-9, atol=1e-9)
    a, b = StreamingStats(7), StreamingStats(7)
    a.update(x[:400])
    b.update(x[400:] - 0.0)
    a.merge(b)
    np.testing.assert_allclose(a.finalize().sigma, st.sigma, rtol=1e-9, atol=1e-9)


def test_streaming_rejects_bad_input():
    acc = StreamingStats(3)
    with pytest.raises(ValueError, match="shape"):
        acc.update(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="NaN"):
        acc.update(np.full((2, 3), np.nan))
    with pytest.raises(ValueError, match="at least 2"):
        acc.finalize()


def test_fd_of_known_gaussians_matches_closed_form_and_scipy():
    # Diagonal covariances commute: FD = ‖μ₁ − μ₂‖² + Σ (√a − √b)².
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 9.0])
    mu1, mu2 = np.zeros(3), np.array([1.0, 2.0, 0.0])
    closed = 5.0 + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    got = frechet_distance(FeatureStats(mu1, np.diag(a), 10), FeatureStats(mu2, np.diag(b), 10))
    assert got == pytest.approx(closed, rel=1e-12)
    rng = np.random.default_rng(1)
    for d in (2, 16, 64):
        s1, s2 = random_spd(rng, d), random_spd(rng, d)
        m1, m2 = rng.standard_normal(d), rng.standard_normal(d)
        want = reference_fd(m1, s1, m2, s2)
        assert frechet_distance(FeatureStats(m1, s1, 2), FeatureStats(m2, s2, 2)) == pytest.approx(
            want, rel=1e-8
        )


def test_fd_from_samples_converges_to_the_gaussians_distance():
    rng = np.random.default_rng(2)
    s1, s2 = random_spd(rng, 4), random_spd(rng, 4)
    m1, m2 = np.zeros(4), np.full(4, 0.5)
    x1 = rng.multivariate_normal(m1, s1, 40000)
    x2 = rng.multivariate_normal(m2, s2, 40000)
    est = frechet_distance(FeatureStats.of(x1), FeatureStats.of(x2))
    assert est == pytest.approx(reference_fd(m1, s1, m2, s2), rel=0.05)


def test_identical_sets_give_zero():
    x = np.random.default_rng(3).standard_normal((300, 20))
    st = FeatureStats.of(x)
    assert frechet_distance(st, st) == pytest.approx(0.0, abs=1e-9)
    assert frechet_distance_features(x, x) == pytest.approx(0.0, abs=1e-9)


def test_low_rank_route_equals_statistics_route():
    rng = np.random.default_rng(4)
    x1 = rng.standard_normal((30, 50)) + 1.0
    x2 = rng.standard_normal((25, 50)) * 2.0
    want = frechet_distance(FeatureStats.of(x1), FeatureStats.of(x2))
    # Σ has rank < d here: the d×d route takes square roots of round-off-sized eigenvalues of
    # its null space (√1e-16 = 1e-8 each), so agreement is to ~1e-8, not machine precision.
    assert frechet_distance_features(x1, x2) == pytest.approx(want, rel=1e-7)
    # integer weights (a bootstrap resample) equal the repeated rows
    w1 = rng.integers(0, 3, 30)
    w2 = rng.integers(1, 3, 25)
    rep = frechet_distance(FeatureStats.of(np.repeat(x1, w1, 0)), FeatureStats.of(np.repeat(x2, w2, 0)))
    assert frechet_distance_features(x1, x2, w1, w2) == pytest.approx(rep, rel=1e-7)


def test_stats_round_trip(tmp_path):
    st = FeatureStats.of(np.random.default_rng(5).standard_normal((10, 3)))
    st.save(tmp_path / "s.npz")
    back = FeatureStats.load(tmp_path / "s.npz")
    assert back.n == 10 and np.array_equal(back.mu, st.mu) and np.array_equal(back.sigma, st.sigma)
