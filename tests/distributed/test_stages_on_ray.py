"""``tile`` and ``embed`` on a real two-node Ray cluster give the local executor's artefacts."""

import pytest

from tests.distributed.ray_cluster import can_unshare_network, run_in_private_network

needs_netns = pytest.mark.skipif(
    not can_unshare_network(), reason="needs unshare --net (root) for a loopback-only cluster"
)


@needs_netns
def test_tile_and_embed_on_ray_cluster_equal_local_byte_for_byte(tmp_path):
    pytest.importorskip("ray")
    r = run_in_private_network("tests.distributed.ray_scenarios:stage_scenario", tmp_path)
    assert r["nodes"] == ["127.0.0.1", "127.0.0.1"] and r["ray_shut_down"]
    for stage in ("tiles", "embed"):
        c = r[stage]
        assert c["files"] > 4 and c["same_names"] and c["differ"] == [], (stage, c)
        assert c["same_counts"] and c["same_id"], (stage, c)
