"""Scaling benchmark: per-item throughput of ``tile``, ``dataset``, ``embed`` and ``sample``
with the local executor (1 and 2 worker processes) and on a two-node Ray cluster.

Every stage runs through the real CLI, in this process, on synthetic slides (pyramidal JPEG
TIFFs, ``--side`` px wide). Each configuration writes its own artefact, and the benchmark
checks that the artefacts of every executor are byte-equal (journals and manifests aside).
The Ray runs use a real cluster of a head and a worker node, one CPU each, inside a
loopback-only network namespace (``tests/distributed/ray_cluster.py``); it is skipped where
``unshare --net`` is not allowed. Cluster start-up is timed apart from the stages.

Throughputs are wall-clock and depend on the load of the machine; the speed-up rows are
ratios of runs made back to back. Every worker uses one thread (``OMP_NUM_THREADS=1``). The
local 2-worker runs include starting two fresh Python processes per pass (seconds each,
more when they import torch and load a model). ``sample`` uses the 2-step tiny test model (64 px, the
``test`` backbone, 4 DDIM steps): it measures the stage's overhead, not a real model.

Usage::

    python benchmarks/bench_scaling.py                  # 4 slides of 3072 px; ~5 min on 2 cores
    python benchmarks/bench_scaling.py --quick          # 2 slides of 1024 px

Results go to ``benchmarks/results/scaling.json``; ``docs/scaling.md`` summarises them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))  # the test helpers: in-process CLI, artefact comparison, Ray cluster
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HISTOSYNTH_PROGRESS", "0")
# One thread per worker everywhere (Ray does the same for its workers): on this shared 2-core
# machine torch's default of one thread per core made a single worker 3.5x slower (OpenMP
# threads waiting on each other), which would swamp the executor comparison.
os.environ.setdefault("OMP_NUM_THREADS", "1")

from tests.distributed.artefacts import cli, compare_folders  # noqa: E402

LOCAL = {"local-1": ["--workers", 1], "local-2": ["--workers", 2]}


def make_slides(folder: Path, n: int, side: int) -> Path:
    from histosynth.samples import write_synthetic_slide

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        path = folder / f"s{i}.tif"
        if not path.exists():
            write_synthetic_slide(path, size=(side, side * 3 // 4), seed=i, layout=("blobs", "blocks")[i % 2])
    return folder


def timed(*args) -> float:
    t0 = time.perf_counter()
    cli(*args)
    return time.perf_counter() - t0


def counts(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())["counts"]


def tile_args(slides: Path) -> list:
    return ["tile", slides, "--size", 128, "--min-tissue", 0.3]


def embed_args() -> list:
    return ["--encoder", "handcrafted", "--workers", 0, "--set", "batch_size=256"]


def run_tile_embed(work: Path, slides: Path, label: str, extra: list, embed_extra: list) -> dict:
    """``tile`` then ``embed`` of the slides into ``work/label``: seconds and item counts."""
    tiles, emb = work / label / "tiles", work / label / "emb"
    t_tile = timed(*tile_args(slides), "-o", tiles, *extra)
    t_embed = timed("embed", tiles, "-o", emb, *embed_args(), *embed_extra)
    return {"tile_s": t_tile, "embed_s": t_embed, "tiles": counts(tiles)["tiles"], "vectors": counts(emb)["vectors"],
            "slides": counts(tiles)["done"]}  # fmt: skip


def local_runs(work: Path, slides: Path) -> dict:
    runs = {}
    for label, extra in LOCAL.items():
        runs[label] = run_tile_embed(work, slides, label, extra, ["--jobs", extra[1]])
        ds = work / label / "ds"
        runs[label]["dataset_s"] = timed(
            "dataset", work / label / "tiles", "--derived", "stain", "-o", ds, "--set", "chunk=32", *extra
        )
        runs[label]["patches"] = counts(ds)["patches"]
    return runs


def sample_runs(work: Path, n: int) -> dict:
    from tests.conftest import TINY_TRAIN, write_tiny_dataset

    from histosynth.config import build_config
    from histosynth.sample import crop_bank
    from histosynth.train.config import TrainConfig
    from histosynth.train.loop import run

    ds = write_tiny_dataset(work / "tiny-ds", n=12, splits=("train",))
    cfg = build_config(TrainConfig, preset="cpu-tiny", overrides=[*TINY_TRAIN, "data.workers=0"])
    run(ds, work / "tiny-model", cfg, show_progress=False)
    bank = crop_bank.run(ds, work / "bank", crop_bank.CropBankConfig(split="all"))
    base = ["--crop-bank", bank.folder, "--maps-from", ds, "-n", n, "--batch-size", 2, "--steps", 4,
            "--sampler", "ddim", "--set", "split=all"]  # fmt: skip
    return {
        label: {
            "sample_s": timed("sample", work / "tiny-model", work / f"syn-{label}", *base, *extra),
            "images": n,
        }
        for label, extra in LOCAL.items()
    }


def ray_scenario(address: str, workdir: Path) -> dict:
    """Inside the loopback-only cluster: tile and embed through ``--executor ray``."""
    spec = json.loads((workdir / "spec.json").read_text())
    ray_run = ["--executor", "ray", "--ray-address", address]
    return run_tile_embed(Path(spec["work"]), Path(spec["slides"]), "ray", ray_run, ray_run)


def ray_runs(work: Path, slides: Path) -> dict | None:
    from tests.distributed.ray_cluster import can_unshare_network, run_in_private_network

    if not can_unshare_network():
        return None
    ray_dir = work / "ray-cluster"
    ray_dir.mkdir(parents=True, exist_ok=True)
    (ray_dir / "spec.json").write_text(json.dumps({"work": str(work), "slides": str(slides)}))
    t0 = time.perf_counter()
    result = run_in_private_network("benchmarks.bench_scaling:ray_scenario", ray_dir, timeout=900)
    total = time.perf_counter() - t0
    result["cluster_overhead_s"] = total - result["tile_s"] - result["embed_s"]
    return result


def rate(n: float, s: float) -> float:
    return round(n / s, 2) if s > 0 else float("nan")


def summary(runs: dict, same: dict) -> list[dict]:
    one, two, ray = runs["local-1"], runs["local-2"], runs.get("ray")
    rows = []
    for stage, items, key in (("tile", "tiles", "tile_s"), ("dataset", "patches", "dataset_s"),
                              ("embed", "vectors", "embed_s"), ("sample", "images", "sample_s")):  # fmt: skip
        unit = {"tiles": "tiles/s", "patches": "patches/s", "vectors": "sub-tiles/s", "images": "images/s"}[
            items
        ]
        r1, r2 = rate(one[items], one[key]), rate(two[items], two[key])
        rows.append({"metric": f"{stage} throughput, local 1 worker ({unit})", "value": r1, "goal": "measured",
                     "met": True})  # fmt: skip
        rows.append({"metric": f"{stage} speed-up, local 2 workers vs 1 (2 shared cores)", "value": round(r2 / r1, 2),
                     "goal": "≥ 1.2", "met": r2 / r1 >= 1.2})  # fmt: skip
        if ray is not None and key in ray:
            rr = rate(ray[items], ray[key])
            rows.append({"metric": f"{stage} speed-up, Ray 2 nodes × 1 CPU vs local 1 worker", "value": round(rr / r1, 2),
                         "goal": "≥ 1.0", "met": rr / r1 >= 1.0})  # fmt: skip
    rows.append({"metric": "artefacts byte-equal across executors and worker counts", "value": same["all"],
                 "goal": "True", "met": same["all"]})  # fmt: skip
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--slides", type=int, default=4)
    ap.add_argument("--side", type=int, default=3072, help="Slide width in px (height is 3/4 of it).")
    ap.add_argument("--samples", type=int, default=16)
    ap.add_argument("--no-ray", action="store_true")
    ap.add_argument("--quick", action="store_true", help="2 slides of 1024 px, 8 samples.")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "scaling.json")
    args = ap.parse_args()
    if args.quick:
        args.slides, args.side, args.samples = 2, 1024, 8
    work = Path(
        tempfile.mkdtemp(prefix="scaling-", dir=HERE / "_work" if (HERE / "_work").is_dir() else None)
    )
    try:
        slides = make_slides(work / "slides", args.slides, args.side)
        runs = local_runs(work, slides)
        for label, res in sample_runs(work, args.samples).items():
            runs[label].update(res)
        ray = None if args.no_ray else ray_runs(work, slides)
        if ray is not None:
            runs["ray"] = ray
        pairs = [(f"{a}/{s}", work / "local-1" / s, work / a / s) for a in runs if a != "local-1" for s in
                 ("tiles", "emb", "ds") if (work / a / s).is_dir()]  # fmt: skip
        pairs += [("local-2/sample", work / "syn-local-1", work / "syn-local-2")]
        same = {name: not compare_folders(a, b)["differ"] for name, a, b in pairs}
        same["all"] = all(same.values())
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = {
        "benchmark": "scaling",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "load_avg_1m": os.getloadavg()[0],
            "python": platform.python_version(),
        },
        "settings": {
            "slides": args.slides,
            "side": args.side,
            "patch": 128,
            "samples": args.samples,
            "ray": "head + worker, 1 CPU each, loopback",
        },  # fmt: skip
        "runs": runs,
        "byte_equal": same,
        "summary": summary(runs, same),
    }
    from histosynth.artifacts import atomic_write_text  # readers never see half a file

    atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
    for row in result["summary"]:
        print(f"{row['metric']}: {row['value']} (goal {row['goal']}, met {row['met']})")


if __name__ == "__main__":
    main()
