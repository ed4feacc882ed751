"""Clustering: histosynth's faiss k-means vs scikit-learn MiniBatchKMeans, at equal inertia.

faiss runs exactly as the cluster stage calls it (k-means++ start, 25 iterations trained on at most
1024 vectors per centroid, then every vector assigned), and also with faiss's own default of 256
per centroid. Both run on the same float32 vectors (default 1,000,000 × 384, k = 100) in the same benchmark
run, each in a fresh child process so its peak memory is its own. The data are a mixture of 200
Gaussian components of random weights and spreads living in a 48-dimensional subspace plus
isotropic noise (embedding-like: more modes than k, unequal sizes), generated from the seed in
chunks so no float64 copy inflates the peak. Inertia is measured the same way for both (exact
nearest-centroid search over all vectors, not timed).

"Equal inertia" means within 1 %: when MiniBatchKMeans ends more than 1 % worse it is rerun
with larger batches and more patience (each attempt recorded) until it is within 1 % or the
attempts run out; the speedup uses the first attempt that matches. A second view, time to
quality, reads faiss's per-iteration inertia and time: how long faiss needs to come within 1 %
of the best MiniBatchKMeans inertia. Goal: faiss ≥ 5× faster.

    python benchmarks/bench_cluster.py                      # 1M × 384, writes results/cluster.json
    python benchmarks/bench_cluster.py --n 100000 --out /tmp/c.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"


def make_data(n: int, d: int, seed: int, chunk: int = 100_000) -> np.ndarray:
    """The benchmark vectors (float32), written chunk by chunk into one array."""
    rng = np.random.default_rng(seed)
    comps, latent = 200, 48
    basis = rng.standard_normal((latent, d)).astype(np.float32) / np.sqrt(latent)
    centres = (rng.standard_normal((comps, latent)) * 3).astype(np.float32)
    spread = rng.uniform(0.3, 1.2, comps).astype(np.float32)
    weights = rng.dirichlet(np.full(comps, 0.7))
    out = np.empty((n, d), np.float32)
    for i in range(0, n, chunk):
        m = min(chunk, n - i)
        c = rng.choice(comps, m, p=weights)
        z = centres[c] + spread[c, None] * rng.standard_normal((m, latent), dtype=np.float32)
        out[i : i + m] = z @ basis + 0.15 * rng.standard_normal((m, d), dtype=np.float32)
    return out


def _status(field: str) -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak() -> None:
    """Make VmHWM (peak RSS) start again from the current RSS (Linux ≥ 4.0)."""
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")


def _faiss(x: np.ndarray, k: int, seed: int, per_centroid: int | None) -> tuple[np.ndarray, dict]:
    """What :func:`histosynth.cluster.kmeans.kmeans` does (k-means++ start, 25 faiss iterations on
    at most ``per_centroid × k`` rows, final exact assignment of all rows), step by step so the
    inertia curve can be timed."""
    import faiss

    from histosynth.cluster.kmeans import _plusplus, assign, serial_blas

    t0 = time.perf_counter()
    init = _plusplus(x, k, seed, None)
    t_init = time.perf_counter() - t0
    cap = min(per_centroid or len(x), len(x) // k + 1)
    km = faiss.Kmeans(
        x.shape[1], k, niter=25, seed=seed, max_points_per_centroid=cap, min_points_per_centroid=1
    )
    with serial_blas():
        km.train(x, init_centroids=init)
    t1 = time.perf_counter()
    assign(x, km.centroids)
    t_assign = time.perf_counter() - t1
    # faiss's iteration_stats "time" is cumulative from the start of training
    curve = [{"obj": s["obj"], "seconds": round(t_init + s["time"], 3)} for s in km.iteration_stats]
    return km.centroids, {"niter": 25, "train_rows": min(len(x), cap * k), "init_seconds": round(t_init, 2),
                          "train_seconds": round(t1 - t0 - t_init, 2), "assign_seconds": round(t_assign, 2),
                          "curve": curve}  # fmt: skip


def child(method: str, n: int, d: int, k: int, seed: int, batch: int, patience: int | None,
          per_centroid: int | None) -> dict:  # fmt: skip
    """Run one method in this process; returns seconds, inertia and memory."""
    from histosynth.cluster.kmeans import inertia

    x = make_data(n, d, seed)
    base = _status("VmRSS")
    _reset_peak()
    start = time.perf_counter()
    if method == "faiss":
        centroids, extra = _faiss(x, k, seed, per_centroid)
    else:
        from sklearn.cluster import MiniBatchKMeans

        km = MiniBatchKMeans(n_clusters=k, batch_size=batch, random_state=seed, n_init="auto",
                             max_no_improvement=patience).fit(x)  # fmt: skip
        centroids = km.cluster_centers_.astype(np.float32)
        extra = {"batch_size": batch, "max_no_improvement": patience, "n_iter": int(km.n_iter_),
                 "n_steps": int(km.n_steps_)}  # fmt: skip
    seconds = time.perf_counter() - start
    peak = _status("VmHWM")
    return {"method": method, "seconds": round(seconds, 2), "inertia": inertia(x, centroids),
            "data_rss_mb": round(base, 1), "peak_rss_mb": round(peak, 1),
            "peak_extra_mb": round(peak - base, 1), **extra}  # fmt: skip


def run(method: str, args: argparse.Namespace, batch: int = 1024, patience: int | None = 10,
        per_centroid: int = 0) -> dict:  # fmt: skip
    cmd = [sys.executable, __file__, "--child", method, "--n", str(args.n), "--d", str(args.d), "--k", str(args.k),
           "--seed", str(args.seed), "--batch", str(batch), "--patience", str(patience),
           "--per-centroid", str(per_centroid)]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"  {method:8s} {result['seconds']:8.1f} s  inertia {result['inertia']:.6g}  "
          f"peak +{result['peak_extra_mb']:.0f} MB", file=sys.stderr)  # fmt: skip
    return result


def summary_rows(result: dict) -> list[dict]:
    """The rows ``benchmarks/run_all.py`` gathers into the summary table."""
    speedup = result.get("speedup_at_equal_inertia")
    return [{"metric": f"faiss k-means vs MiniBatchKMeans at equal inertia ({result['shape']}, k = {result['k']})",
             "value": f"{speedup:.2f}x" if isinstance(speedup, (int, float)) else str(speedup),
             "goal": "≥ 5x", "met": isinstance(speedup, (int, float)) and speedup >= 5}]  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=1_000_000)
    p.add_argument("--d", type=int, default=384)
    p.add_argument("--k", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch", type=int, default=1024)
    p.add_argument("--patience", type=lambda v: None if v == "None" else int(v), default=10)
    p.add_argument("--per-centroid", type=int, default=0, help="faiss training rows per centroid (0: all)")
    p.add_argument(
        "--faiss",
        default="1024,256",
        help="faiss training rows per centroid to run: the stage's 1024, faiss's own 256 (0: all)",
    )
    p.add_argument(
        "--attempts",
        default="1024:10,4096:50,16384:50",
        help="MiniBatchKMeans batch_size:max_no_improvement settings tried in turn",
    )
    p.add_argument("--out", type=Path, default=RESULTS / "cluster.json")
    p.add_argument("--child", choices=["faiss", "sklearn"], default=None)
    p.add_argument(
        "--summarize", type=Path, default=None, help="recompute the summary of an earlier result file"
    )
    args = p.parse_args()
    if args.child:
        per = args.per_centroid or None
        print(
            json.dumps(child(args.child, args.n, args.d, args.k, args.seed, args.batch, args.patience, per))
        )
        return
    if args.summarize is not None:  # recompute the summary from an earlier run's measurements
        raw = json.loads(args.summarize.read_text())
        result = summarize(raw["shape"][0], raw["shape"][1], raw["k"], raw["seed"],
                           [raw["faiss"], *raw["faiss_variants"]], raw["sklearn_minibatch"], raw["machine"])  # fmt: skip
    else:
        print(f"clustering {args.n} × {args.d}, k = {args.k}", file=sys.stderr)
        runs = [run("faiss", args, per_centroid=int(v)) for v in args.faiss.split(",")]
        attempts = []
        for setting in args.attempts.split(","):
            batch, patience = (int(v) for v in setting.split(":"))
            res = run("sklearn", args, batch, patience)
            attempts.append(res)
            if res["inertia"] / runs[0]["inertia"] - 1 <= 0.01:
                break
        sys.path.insert(0, str(Path(__file__).resolve().parent))  # machine.py, also when imported
        from machine import machine as describe

        machine = describe()
        result = summarize(args.n, args.d, args.k, args.seed, runs, attempts, machine)
    result["summary"] = summary_rows(result)
    from histosynth.artifacts import atomic_write_text  # readers never see half a file

    atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")
    keys = (
        "equal_inertia",
        "speedup_at_equal_inertia",
        "speedups_by_faiss_setting",
        "time_to_minibatch_quality",
    )
    print(json.dumps({k: result[k] for k in keys}))


def summarize(
    n: int, d: int, k: int, seed: int, runs: list[dict], attempts: list[dict], machine: dict
) -> dict:
    """The comparison at equal inertia, from the measured runs (runs[0]: the stage's faiss setting)."""
    faiss_res = runs[0]
    for a in attempts:
        a["inertia_vs_faiss"] = a["inertia"] / faiss_res["inertia"] - 1
    matched = next((a for a in attempts if abs(a["inertia_vs_faiss"]) <= 0.01), None)
    better = next((a for a in attempts if a["inertia_vs_faiss"] < -0.01), None)
    # Time to quality: faiss's objective per iteration is measured on its training rows; scaled by
    # n / training rows it estimates the inertia of all rows. The first iteration whose estimate is
    # within 1 % of the best MiniBatchKMeans inertia, plus the final assignment of every row
    # (MiniBatchKMeans also labels all rows), is faiss's time to that quality.
    best_mb = min(attempts, key=lambda a: a["inertia"])
    target = 1.01 * best_mb["inertia"]
    scale = n / faiss_res["train_rows"]
    hit = next((c for c in faiss_res["curve"] if c["obj"] * scale <= target), None)
    to_quality = None
    if hit is not None:
        t = hit["seconds"] + faiss_res["assign_seconds"]
        to_quality = {"target_inertia": target, "iterations": faiss_res["curve"].index(hit) + 1,
                      "faiss_seconds": round(t, 2), "minibatch_seconds": best_mb["seconds"],
                      "speedup": round(best_mb["seconds"] / t, 2), "estimated": True}  # fmt: skip
    return {
        "benchmark": "cluster",
        "shape": [n, d], "k": k, "seed": seed,
        "faiss": faiss_res, "faiss_variants": runs[1:], "sklearn_minibatch": attempts,
        "equal_inertia": matched is not None,
        "speedup_at_equal_inertia": round(matched["seconds"] / faiss_res["seconds"], 2) if matched else None,
        "speedups_by_faiss_setting": {
            f"{r['train_rows']} training rows": {
                "seconds": r["seconds"], "inertia_vs_minibatch": round(r["inertia"] / matched["inertia"] - 1, 5),
                "speedup": round(matched["seconds"] / r["seconds"], 2)}
            for r in runs
        } if matched else None,
        "note": None if matched else (
            "MiniBatchKMeans reached a lower inertia than faiss" if better else
            "MiniBatchKMeans never came within 1 % of faiss's inertia; the speedup is then a lower bound"
        ),
        "speedup_lower_bound": None if matched else round(attempts[-1]["seconds"] / faiss_res["seconds"], 2),
        "time_to_minibatch_quality": to_quality,
        "goal": "faiss ≥ 5× faster at equal inertia (within 1 %)",
        "machine": machine,
    }  # fmt: skip


if __name__ == "__main__":
    main()
