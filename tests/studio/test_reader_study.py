import json

import numpy as np
import pytest

from histosynth.artifacts import ArtifactError
from histosynth.studio.reader_study import Rating, ReaderStudy, build_reader_study


def test_build_is_blinded_and_shuffled(study, tiny_dataset, other_dataset):
    key = json.loads((study.folder / "key.json").read_text())["items"]
    assert len(study) == 6 and sorted(key) == sorted(study.items)
    assert sorted(v["source"] for v in key.values()) == ["real"] * 3 + ["synthetic"] * 3
    assert all(len(i) == 10 and int(i, 16) >= 0 for i in study.items)
    for item in study.items:
        assert study.image_path(item).is_file()
    assert study.image_path("key") is None and study.image_path("../key") is None
    # real images come from the test split only
    from histosynth.data.patch_dataset import PatchDataset

    test_ids = set(PatchDataset(tiny_dataset, split="test").index["id"])
    assert {v["patch"] for v in key.values() if v["source"] == "real"} <= test_ids
    # per-rater orders: deterministic, a permutation, different between raters
    assert study.order("ann") == study.order("ann") != study.order("bob")
    assert sorted(study.order("ann")) == sorted(study.items)
    # re-running resumes the finished study
    again = build_reader_study(tiny_dataset, other_dataset, study.folder, n_real=3, n_synthetic=3, seed=1)
    assert again.items == study.items


def test_sizes_must_match(tiny_dataset, tmp_path):
    from tests.conftest import write_tiny_dataset

    other = write_tiny_dataset(tmp_path / "o", n=3, size=32, splits=("test",))
    with pytest.raises(ArtifactError, match="needs one size"):
        build_reader_study(tiny_dataset, other, tmp_path / "s", n_real=2)


def test_ratings_are_appended_and_survive_a_torn_line(study):
    a, b = study.order("ann")[:2]
    study.add(Rating("ann", a, 4, "real", 2.5))
    study.add(Rating("ann", b, 2, "synthetic"))
    study.add(Rating("ann", a, 5, "synthetic"))  # a changed mind: the later answer counts
    with open(study.ratings_path("ann"), "a") as fh:
        fh.write('{"rater": "ann", "item": "')  # a crash mid-write
    got = {r.item: r for r in ReaderStudy(study.folder).ratings("ann")}
    assert (got[a].realism, got[a].guess) == (5, "synthetic") and len(got) == 2
    assert study.progress("ann") == {"rater": "ann", "total": 6, "done": 2, "next": study.order("ann")[2]}
    lines = study.ratings_path("ann").read_text().splitlines()
    assert json.loads(lines[0])["seconds"] == 2.5 and json.loads(lines[0])["time"].endswith("Z")


@pytest.mark.parametrize(
    ("rating", "match"),
    [
        (Rating("a b", "x", 3, "real"), "rater name"),
        (Rating("ann", "nope", 3, "real"), "not part of this study"),
        (Rating("ann", None, 3, "fake"), "guess must be one of"),
        (Rating("ann", None, 6, "real"), "whole number from 1 to 5"),
        (Rating("ann", None, True, "real"), "whole number from 1 to 5"),
    ],
)
def test_bad_ratings_are_refused(study, rating, match):
    if rating.item is None:
        rating = Rating(rating.rater, study.items[0], rating.realism, rating.guess)
    with pytest.raises(ValueError, match=match):
        study.add(rating)
    assert not list((study.folder / "ratings").glob("*.jsonl")) or study.ratings() == []


def test_images_carry_no_metadata(study):
    from PIL import Image

    with Image.open(study.image_path(study.items[0])) as im:
        assert im.format == "PNG" and not im.text and np.asarray(im).shape == (64, 64, 3)
