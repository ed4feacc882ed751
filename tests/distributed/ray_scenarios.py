"""Scenarios run inside the loopback-only Ray cluster (see ray_cluster.py)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from histosynth.jobs import run_items
from histosynth.seeding import numpy_rng
from tests.distributed.artefacts import cli, compare_folders, two_slides


def work(key, item):
    time.sleep(0.2)  # long enough that both nodes get tasks
    return {"value": float(numpy_rng(0, key).standard_normal()), "pid": os.getpid()}


def die_once(key, item):
    """Kills its own worker the first time it runs item 'k3' (a lost node, an OOM kill)."""
    if key == "k3" and not os.path.exists(item["marker"]):
        Path(item["marker"]).touch()
        os.kill(os.getpid(), signal.SIGKILL)
    return work(key, item)


def executor_scenario(address: str, workdir: Path) -> dict:
    import ray

    from histosynth.distributed.executors import RayExecutor

    items = [(f"k{i}", i) for i in range(10)]
    local = run_items(items, work, workdir / "local")
    ex = RayExecutor(address=address, max_retries=0)
    try:
        nodes = [(n["NodeManagerAddress"], n["Alive"]) for n in ray.nodes()]
        remote = run_items(items, work, workdir / "ray", executor=ex)
        marker = str(workdir / "died")
        killing = [(k, {"marker": marker}) for k, _ in items]
        first = run_items(killing, die_once, workdir / "resume", executor=ex)
        second = run_items(killing, die_once, workdir / "resume", executor=ex)
        # the same with long-lived actors (the model stages): a dead actor is replaced
        actors = RayExecutor(address=address, max_retries=1, actors=2)
        marker_a = str(workdir / "died-actor")
        killing_a = [(k, {"marker": marker_a}) for k, _ in items]
        first_a = run_items(killing_a, die_once, workdir / "resume-actors", executor=actors)
        second_a = run_items(killing_a, die_once, workdir / "resume-actors", executor=actors)
    finally:
        ex.close()
    val = lambda s: {k: v["value"] for k, v in s.outputs().items()}  # noqa: E731
    return {
        "nodes": nodes,
        "cpus": 2,
        "same": val(remote) == val(local),
        "pids": len({v["pid"] for v in remote.outputs().values()}),
        "first_failed": [(r.key, r.error) for r in first.failed],
        "second_done": second.done,
        "second_skipped": len(second.skipped),
        "resumed_same": val(second) == val(local),
        "actors_first_failed": [r.key for r in first_a.failed],
        "actors_first_done": len(first_a.done),
        "actors_second_done": second_a.done,
        "actors_resumed_same": val(second_a) == val(local),
    }


def stage_scenario(address: str, workdir: Path) -> dict:
    """``tile`` and ``embed`` of two slides, locally and on the cluster, through the CLI."""
    import ray

    slides = two_slides(workdir / "slides")
    tile = ["tile", slides, "--size", 128, "--min-tissue", 0.3]
    embed = ["--encoder", "handcrafted", "--workers", 0, "--set", "batch_size=64"]
    cli(*tile, "-o", workdir / "local" / "tiles")
    cli("embed", workdir / "local" / "tiles", "-o", workdir / "local" / "emb", *embed)
    ray_run = ["--executor", "ray", "--ray-address", address]
    ray.init(address=address, logging_level="ERROR", log_to_driver=False)
    nodes = [n["NodeManagerAddress"] for n in ray.nodes() if n["Alive"]]
    ray.shutdown()
    cli(*tile, "-o", workdir / "ray" / "tiles", *ray_run)
    cli("embed", workdir / "ray" / "tiles", "-o", workdir / "ray" / "emb", *embed, *ray_run)
    return {
        "nodes": nodes,
        "ray_shut_down": not ray.is_initialized(),  # the CLI closes what it opened
        "tiles": compare_folders(workdir / "local" / "tiles", workdir / "ray" / "tiles"),
        "embed": compare_folders(workdir / "local" / "emb", workdir / "ray" / "emb"),
    }
