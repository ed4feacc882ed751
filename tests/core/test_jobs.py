import functools

import pytest

from histosynth.jobs import Journal, run_items
from histosynth.seeding import item_seed, numpy_rng


def _work(key, item, log=None):
    if item == "bad":
        raise ValueError(f"cannot read {key}")
    if log is not None:
        log.append(key)
    return {"double": item * 2}


def test_failing_item_recorded_and_others_finish(tmp_path):
    items = [("a", 1), ("b", "bad"), ("c", 3)]
    log: list[str] = []
    s = run_items(items, functools.partial(_work, log=log), tmp_path, desc="t")
    assert s.done == ["a", "c"] and [r.key for r in s.failed] == ["b"]
    assert s.failed[0].error == "cannot read b"
    assert not s.ok and "1 failed" in s.describe() and "cannot read b" in s.describe()
    assert s.outputs() == {"a": {"double": 2}, "c": {"double": 6}}
    # second run: done items skipped, the failed one retried
    log.clear()
    s2 = run_items([("a", 1), ("b", 2), ("c", 3)], functools.partial(_work, log=log), tmp_path)
    assert log == ["b"] and sorted(s2.skipped) == ["a", "c"] and s2.ok
    assert s2.outputs()["b"] == {"double": 4}


def test_no_retry_keeps_failure(tmp_path):
    run_items([("x", "bad")], _work, tmp_path)
    s = run_items([("x", 1)], _work, tmp_path, retry_failed=False)
    assert s.skipped == ["x"] and not s.ok


def test_worker_pool_same_results(tmp_path):
    items = [(f"k{i}", i) for i in range(12)] + [("bad", "bad")]
    s1 = run_items(items, _work, tmp_path / "one", workers=1)
    s2 = run_items(items, _work, tmp_path / "two", workers=2)
    assert s1.outputs() == s2.outputs() and s1.done == s2.done
    assert [r.key for r in s2.failed] == ["bad"]


def test_interrupt_keeps_journal_consistent(tmp_path):
    def work(key, item):
        if key == "c":
            raise KeyboardInterrupt
        return item

    with pytest.raises(KeyboardInterrupt):
        run_items([("a", 1), ("b", 2), ("c", 3), ("d", 4)], work, tmp_path)
    assert set(Journal(tmp_path / "_journal.jsonl").load()) == {"a", "b"}
    s = run_items([("a", 1), ("b", 2), ("c", 3), ("d", 4)], lambda k, i: i, tmp_path)
    assert s.done == ["c", "d"] and s.skipped == ["a", "b"]


def test_truncated_journal_line_is_ignored(tmp_path):
    run_items([("a", 1)], _work, tmp_path)
    with open(tmp_path / "_journal.jsonl", "a") as fh:
        fh.write('{"key": "b", "sta')
    assert set(Journal(tmp_path / "_journal.jsonl").load()) == {"a"}


def test_duplicate_keys_rejected(tmp_path):
    with pytest.raises(ValueError, match="not unique"):
        run_items([("a", 1), ("a", 2)], _work, tmp_path)


def test_item_seeds_independent_of_order():
    assert item_seed(0, "slide", 3) == item_seed(0, "slide", 3)
    assert item_seed(0, "slide", 3) != item_seed(1, "slide", 3)
    assert numpy_rng(5, "x").integers(1 << 30) == numpy_rng(5, "x").integers(1 << 30)
