"""k-means, nested levels, diverse sampling and the saved model.

Clusterings are compared with permutation-invariant scores (adjusted Rand index) wherever two
runs may number clusters differently; exact equality is asserted only for the same seed.
"""

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from histosynth.artifacts import ArtifactError
from histosynth.cluster.kmeans import assign, diverse_sample, inertia, kmeans
from histosynth.cluster.model import ClusterModel, fit_model


def blobs(n_per=200, k=6, d=16, seed=0, spread=0.3):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, (k, d))
    sizes = [n_per * (i + 1) for i in range(k)]  # unequal sizes: canonical order is testable
    x = np.concatenate([centres[i] + spread * rng.standard_normal((s, d)) for i, s in enumerate(sizes)])
    y = np.repeat(np.arange(k), sizes)
    return x.astype(np.float32), y


def test_deterministic_for_a_seed():
    x, _ = blobs()
    c1, l1 = kmeans(x, 6, seed=3)
    c2, l2 = kmeans(x, 6, seed=3)
    assert np.array_equal(c1, c2) and np.array_equal(l1, l2)


def test_assignment_does_not_depend_on_threads_or_chunks():
    x, _ = blobs()
    c, _ = kmeans(x, 6, seed=0)
    one = assign(x, c, chunk=len(x), threads=1)
    many = assign(x, c, chunk=97, threads=3)
    assert np.array_equal(one[0], many[0]) and np.allclose(one[1], many[1], rtol=1e-5, atol=1e-5)


def test_recovers_groups_whatever_the_seed_or_row_order():
    x, y = blobs()
    for seed in (0, 1, 2):
        _, lab = kmeans(x, 6, seed=seed)
        assert adjusted_rand_score(y, lab) > 0.99
    perm = np.random.default_rng(5).permutation(len(x))
    _, lab = kmeans(x[perm], 6, seed=0)
    assert adjusted_rand_score(y[perm], lab) > 0.99


def test_canonical_numbering_largest_first():
    x, y = blobs()
    cent, lab = kmeans(x, 6, seed=0)
    sizes = np.bincount(lab)
    assert (np.diff(sizes) <= 0).all()
    # renumbering is a pure permutation: same partition, same inertia
    assert adjusted_rand_score(y, lab) > 0.99 and inertia(x, cent) == pytest.approx(
        ((x - cent[lab]) ** 2).sum(), rel=1e-4
    )


def test_trains_on_all_vectors_or_a_seeded_subset():
    x, y = blobs(n_per=400, k=2)
    cent, lab = kmeans(x, 2, seed=0, niter=10, max_points_per_centroid=None)
    expected = np.stack([x[lab == c].mean(0) for c in range(2)])
    assert np.allclose(cent, expected, atol=1e-3)  # centroids are means of all members
    c1, l1 = kmeans(x, 2, seed=0, max_points_per_centroid=50)  # trains on 100 rows, labels all
    c2, _ = kmeans(x, 2, seed=0, max_points_per_centroid=50)
    assert len(l1) == len(x) and np.array_equal(c1, c2) and adjusted_rand_score(y, l1) > 0.99


def test_diverse_sample_keeps_rare_tissue():
    rng = np.random.default_rng(0)
    sizes = (4000, 3000, 2000, 800, 200)  # five tissue types, the last rare
    x = np.concatenate([rng.normal(10 * i, 1, (n, 8)) for i, n in enumerate(sizes)]).astype(np.float32)
    pick = diverse_sample(x, 300, seed=1, strata=5)
    assert len(pick) == 300 and len(np.unique(pick)) == 300 and (np.diff(pick) > 0).all()
    rare = (pick >= sum(sizes[:4])).mean()
    assert 0.18 <= rare <= 0.22  # an equal share per type; a uniform draw would give 2 %
    assert np.array_equal(pick, diverse_sample(x, 300, seed=1, strata=5))
    assert (diverse_sample(x, 300, seed=1) >= sum(sizes[:4])).mean() > 0.04  # default strata still enrich
    assert np.array_equal(diverse_sample(x[:50], 300), np.arange(50))


def test_hierarchy_is_nested():
    x, y = blobs(k=6, n_per=100)
    model, fine = fit_model(x, (2, 3, 6), seed=0)
    assert model.levels == (2, 3, 6) and model.k == 6
    p63, p32, p62 = model.parent(6, 3), model.parent(3, 2), model.parent(6, 2)
    assert p63[0] == p32[0] == 0  # background stays background
    assert np.array_equal(p32[p63], p62)  # parents compose: nesting holds across levels
    ids = {k: model.predict(x, k) for k in (2, 3, 6)}
    assert np.array_equal(p63[ids[6]], ids[3]) and np.array_equal(p62[ids[6]], ids[2])
    assert set(np.unique(ids[3])) == {1, 2, 3} and ids[6].dtype == np.uint8
    assert adjusted_rand_score(y, ids[6]) > 0.99
    with pytest.raises(ValueError, match="levels"):
        model.predict(x, 4)


def test_model_saved_and_reloaded_predicts_identically(tmp_path):
    x, _ = blobs(d=24)
    model, _ = fit_model(x, (3, 6), seed=0, normalize="standardize+l2", pca=8, meta={"encoder": "enc-1"})
    path = tmp_path / "model.npz"
    model.save(path)
    with np.load(path, allow_pickle=False) as z:  # arrays and a JSON string only
        assert "meta" in z.files and z["centroids"].shape == (6, 8)
    again = ClusterModel.load(path)
    new = np.random.default_rng(9).normal(0, 3, (500, 24)).astype(np.float32)
    for k in (3, 6):
        assert np.array_equal(model.predict(new, k), again.predict(new, k))
    assert again.meta["encoder"] == "enc-1" and again.levels == (3, 6)
    with pytest.raises(ValueError, match="dimensions"):
        again.predict(new[:, :10])
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ArtifactError):
        ClusterModel.load(tmp_path / "bad.npz")
