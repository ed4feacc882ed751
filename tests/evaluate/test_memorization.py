import numpy as np
import pytest

from histosynth.evaluate.crops import best_match, check_crop_copies, parse_crop_sources
from histosynth.evaluate.hallucination import density_ratio, flag_images, segmenter_threshold
from histosynth.evaluate.memorization import nearest_check


def test_planted_copy_is_flagged_in_feature_space():
    rng = np.random.default_rng(0)
    train, held = rng.standard_normal((200, 10)), rng.standard_normal((100, 10))
    syn = rng.standard_normal((50, 10))
    syn[7] = train[42]  # the planted copy
    syn[8] = train[3] + 1e-3  # a near copy
    check = nearest_check(train, held, syn, percentile=1.0)
    assert set(check.offenders) == {7, 8}
    assert check.synthetic_nearest[7] == 42 and check.synthetic_distance[7] == pytest.approx(0.0, abs=1e-3)
    s = check.summary()
    assert s["memo_offenders"] == 2 and s["memo_share"] == pytest.approx(2 / 50)
    assert 0.5 < s["memo_nn_ratio"] < 1.5


def test_best_match_equals_brute_force_search():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (40, 36, 3)).astype(np.uint8)
    tpl = img[11:23, 5:20].copy()
    assert best_match(img, tpl) == (0.0, 5, 11)
    noisy = np.clip(tpl.astype(int) + rng.integers(-20, 21, tpl.shape), 0, 255).astype(np.uint8)
    rmse, x, y = best_match(img, noisy)
    brute = min(
        (float(np.sqrt(((img[v : v + 12, u : u + 15].astype(float) - noisy) ** 2).mean())), u, v)
        for v in range(40 - 12 + 1)
        for u in range(36 - 15 + 1)
    )
    assert (x, y) == brute[1:] and rmse == pytest.approx(brute[0])
    with pytest.raises(ValueError, match="larger than the image"):
        best_match(tpl, img)


def test_crop_copy_check_finds_the_planted_crop(toy):
    records = check_crop_copies(toy["copy"], range(len(toy["copy"])), toy["real"], tolerance=3.0)
    assert len(records) == 10 and all(r["status"] == "checked" for r in records)
    copied = [r for r in records if r["copied"]]
    assert [(r["id"], r["x"], r["y"]) for r in copied] == [(toy["copy"].index.at[1, "id"], 30, 12)]
    assert copied[0]["rmse"] == 0.0
    assert check_crop_copies(toy["shift"], range(3), toy["real"], 3.0) == []  # no crop_sources column


def test_crop_sources_parsing_and_unresolved_exemplars(toy):
    assert parse_crop_sources(None) == [] and parse_crop_sources("") == []
    recs = parse_crop_sources('{"tumour": [{"slide": "s", "patch": "p", "box": [1, 2, 3, 4]}]}')
    assert recs == [{"class": "tumour", "slide": "s", "patch": "p", "box": [1, 2, 3, 4]}]
    with pytest.raises(ValueError, match=r"\[x, y, w, h\]"):
        parse_crop_sources({"a": [{"patch": "p", "box": [1, 2]}]})
    ds = toy["copy"]
    ds.index.at[0, "crop_sources"] = (
        '{"2": [{"slide": "elsewhere", "patch": "toy-00009", "box": [0, 0, 8, 8]}]}'
    )
    ds.index.at[2, "crop_sources"] = '{"2": [{"slide": "toy", "patch": "nope", "box": [0, 0, 8, 8]}]}'
    try:
        recs = check_crop_copies(ds, [0, 2], toy["real"], 3.0)
    finally:
        ds.index.at[0, "crop_sources"] = ds.index.at[3, "crop_sources"]
        ds.index.at[2, "crop_sources"] = ds.index.at[3, "crop_sources"]
    assert [r["status"] for r in recs] == ["exemplar patch belongs to another slide",
                                           "exemplar patch not in the real dataset"]  # fmt: skip


def test_hallucination_flags_are_conservative():
    rng = np.random.default_rng(2)
    train, held = rng.standard_normal((300, 6)), rng.standard_normal((100, 6))
    syn = rng.standard_normal((40, 6))
    syn[0] += 25.0  # far from all real data
    ratios = {"a": density_ratio(train, held, syn, 5, 1.0), "b": density_ratio(train, held, syn, 5, 1.0)}
    ratios["b"][1] = 5.0  # one detector alone calling image 1 an outlier is not enough
    miou = np.full(40, 0.8)
    miou[2] = 0.1
    threshold = segmenter_threshold(np.array([0.6, 0.7, 0.9, np.nan]), 1.0)
    assert threshold == pytest.approx(0.6)
    rows = flag_images([f"s{i}" for i in range(40)], ratios, miou, threshold)
    assert [r["id"] for r in rows if r["flagged"]] == ["s0", "s2"]
    assert rows[0]["reasons"] == ["low density among real features under every detector"]
    assert rows[2]["reasons"] == ["segmenter disagrees with the conditioning map"]
    assert rows[0]["density_ratio"] > 1 and rows[3]["density_ratio"] <= 1
