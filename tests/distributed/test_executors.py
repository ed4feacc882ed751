import os

import pytest

from histosynth.distributed.executors import LocalExecutor, make_executor
from histosynth.jobs import run_items
from histosynth.seeding import numpy_rng
from tests.distributed.ray_cluster import can_unshare_network, run_in_private_network


def _work(key, item):
    if item == "bad":
        raise ValueError(f"{key} is bad")
    return {"value": float(numpy_rng(0, key).standard_normal()), "pid": os.getpid()}


def test_local_executor_matches_in_process(tmp_path):
    items = [(f"k{i}", i) for i in range(8)] + [("x", "bad")]
    a = run_items(items, _work, tmp_path / "a")
    b = run_items(items, _work, tmp_path / "b", executor=LocalExecutor(2))
    assert {k: v["value"] for k, v in a.outputs().items()} == {k: v["value"] for k, v in b.outputs().items()}
    assert [r.key for r in b.failed] == ["x"]
    assert make_executor("local", workers=3).workers == 3


needs_netns = pytest.mark.skipif(
    not can_unshare_network(), reason="needs unshare --net (root) for a loopback-only cluster"
)


@pytest.mark.slow
@needs_netns
def test_ray_cluster_same_results_and_resume_after_worker_loss(tmp_path):
    pytest.importorskip("ray")
    r = run_in_private_network("tests.distributed.ray_scenarios:executor_scenario", tmp_path)
    assert r["nodes"] == [["127.0.0.1", True], ["127.0.0.1", True]]
    assert r["same"] and r["pids"] >= 2  # both nodes worked, same values as local
    assert [k for k, _ in r["first_failed"]] == ["k3"] and "worker lost" in r["first_failed"][0][1]
    assert r["second_done"] == ["k3"] and r["second_skipped"] == 9 and r["resumed_same"]
    # actors: the lost item fails, the replacement actor runs the rest, a re-run finishes
    assert r["actors_first_failed"] == ["k3"] and r["actors_first_done"] == 9
    assert r["actors_second_done"] == ["k3"] and r["actors_resumed_same"]
