import pytest

from histosynth.config import ConfigError
from histosynth.data.splits import SplitConfig, assign_splits, read_split_file

SLIDES = [f"slide_{i:02d}" for i in range(20)]


def test_deterministic_by_seed_and_independent_of_order():
    a = assign_splits(SLIDES, seed=1)
    assert a == assign_splits(list(reversed(SLIDES)), seed=1)
    assert a != assign_splits(SLIDES, seed=2)
    counts = {s: list(a.values()).count(s) for s in ("train", "val", "test")}
    assert counts == {"train": 14, "val": 3, "test": 3}


def test_small_sets_still_get_every_split():
    assert sorted(assign_splits(["a", "b", "c"]).values()) == ["test", "train", "val"]
    assert set(assign_splits(["a"]).values()) == {"train"}
    only = assign_splits(SLIDES, SplitConfig(train=1, val=0, test=0))
    assert set(only.values()) == {"train"}


def test_split_file_overrides(tmp_path):
    p = tmp_path / "splits.csv"
    p.write_text("slide,split\na,test\nb,train\n")
    assert assign_splits(["a", "b"], SplitConfig(file=p)) == {"a": "test", "b": "train"}
    with pytest.raises(ConfigError, match=r"splits\.csv: no split given for slide 'c'"):
        assign_splits(["a", "b", "c"], SplitConfig(file=p))
    j = tmp_path / "s.json"
    j.write_text('{"a": "val"}')
    assert read_split_file(j) == {"a": "val"}
    j.write_text('{"a": "holdout"}')
    with pytest.raises(ConfigError, match="'holdout'"):
        read_split_file(j)
