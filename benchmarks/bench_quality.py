"""Does the generator make tissue? Issue 15's yardsticks, each set against a calibration.

Two training budgets on the bundled CMU slide, both through ``histosynth demo`` (resumable):

- ``demo``: the demo as a new user runs it (its default plan and time budget);
- ``steps``: the three conditioning variants at an equal step budget (3,000 steps), the plan
  of ``make results``.

Then one ``evaluate`` (no segmentation) over every synthetic set of both runs plus three
calibration sets: the held-out real patches with Gaussian noise of σ = 10, 20 and 40 grey
levels added, written as patch datasets with their own maps (``map_source`` names the clean
patch, so their C2ST is paired like the synthetic sets'). Every metric therefore has a scale:

- speckle ratio: grey mean |Laplacian| over that of the held-out real patches (1 = real);
- FD / floor per offline detector: FD to the training patches over the held-out real
  patches' FD to them (1 = as close as real tissue from elsewhere on the slide);
- C2ST: cross-validated accuracy of a small CNN telling the set from the held-out patches of
  the same maps (0.5 = indistinguishable; the real floor is held-out vs training patches).

Writes ``benchmarks/results/quality.json`` (``--quick``: tiny budgets into
``results/quick/``, not a measurement) and, for a full run, the table between the
``bench_quality`` markers of ``docs/model.md``.

Usage::

    python benchmarks/bench_quality.py                 # both budgets: ~15 min + ~1 h on 2 cores
    python benchmarks/bench_quality.py --demo-run histosynth-demo --steps-run runs/results
    python benchmarks/bench_quality.py --quick
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).parent
RESULTS = HERE / "results"
DOCS = HERE.parent / "docs" / "model.md"
BEGIN, END = "<!-- bench_quality:begin -->", "<!-- bench_quality:end -->"
DETECTORS = ("handcrafted", "random-init-cnn")
SIGMAS = (10, 20, 40)


def machine() -> dict:
    import torch

    from histosynth.train.loop import cpu_has_native_bf16

    sys.path.insert(0, str(Path(__file__).resolve().parent))  # machine.py, also when imported
    from machine import cpu_model

    return {"cpu": cpu_model(), "cores": os.cpu_count(),
            "native_bf16": cpu_has_native_bf16(),
            "torch": torch.__version__, "python": platform.python_version(),
            "load_avg_start": list(os.getloadavg())}  # fmt: skip


def run_demo_plan(folder: Path, **plan: Any) -> tuple[Path, float]:
    """Run (or resume) the demo with ``plan``; returns its folder and wall minutes of this call."""
    from histosynth.demo import DemoPlan, run_demo

    t0 = time.monotonic()
    run_demo(folder, DemoPlan(**plan), echo=lambda s: print(s, flush=True))
    return folder, (time.monotonic() - t0) / 60


def train_times(folder: Path) -> dict[str, dict[str, float]]:
    """Per trained model of a demo folder: steps and training wall seconds (from ``stats.jsonl``)."""
    out = {}
    for stats in sorted((folder / "train").glob("*/stats.jsonl")):
        rows = [json.loads(ln) for ln in stats.read_text().splitlines() if ln.strip()]
        if rows:
            out[stats.parent.name] = {"steps": rows[-1]["step"], "train_seconds": round(rows[-1]["elapsed"], 1),
                                      "s_per_step_median": float(np.median([r["step_time"] for r in rows]))}  # fmt: skip
    return out


def write_noised(real: Path, out: Path, sigma: float, seed: int = 0) -> Path:
    """The held-out real patches with Gaussian noise of ``sigma`` grey levels, as a patch dataset."""
    from histosynth.artifacts import Kind, prepare_output
    from histosynth.data.patch_dataset import PatchDataset, PatchDatasetWriter

    ds = PatchDataset(real, split="test")
    claim = prepare_output(out, Kind.PATCH_DATASET, {"noise_sigma": sigma, "seed": seed}, {"real": ds.id})
    if claim.complete:
        return out
    writer = PatchDatasetWriter(out, ds.classes)
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(len(ds)):
        img = ds.image(i).astype(np.float64)
        noisy = np.clip(np.rint(img + rng.normal(0, sigma, img.shape)), 0, 255).astype(np.uint8)
        pid = str(ds.index.iloc[i]["id"])
        row = writer.write_patch(pid, noisy, ds.label(i))
        row.update(split="synthetic", slide="calibration", x0=0, y0=0, size0=int(img.shape[0]), mpp=float("nan"),
                   map_source=f"dataset:{ds.id}:{pid}")  # fmt: skip
        rows.append(row)
    writer.write_shard("all", rows)
    writer.finalize(["all"], {"noise_sigma": sigma, "seed": seed}, {"real": ds.id})
    return out


def measure(real: Path, sets: dict[str, Path], out: Path) -> dict[str, Any]:
    """One ``evaluate`` (quick preset + C2ST) over ``sets``; returns the metrics per set."""
    from histosynth.config import build_config
    from histosynth.evaluate.config import EvaluateConfig
    from histosynth.evaluate.suite import read_metrics, run

    cfg = build_config(EvaluateConfig, preset="quick", values={"detectors": list(DETECTORS), "c2st": True,
                                                               "hallucination": {"enabled": False}})  # fmt: skip
    result = run(sets, out, cfg, real=real)
    return read_metrics(result.folder)


def rows_of(m: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per set: speckle ratio, FD / floor per detector, C2ST (and the raw FDs)."""
    metrics, held = m["metrics"], m["metrics"]["real-heldout"]
    out = {}
    for name, v in metrics.items():
        row = {"speckle_ratio": v.get("speckle_ratio"), "c2st": v.get("c2st")}
        for det in DETECTORS:
            row[f"fd_{det}"] = v.get(f"fd_{det}")
            row[f"fd_over_floor_{det}"] = (
                v[f"fd_{det}"] / held[f"fd_{det}"] if held.get(f"fd_{det}") else None
            )
        out[name] = row
    return out


def summary_rows(report: dict) -> list[dict]:
    """Issue 15's goals, each a row for ``summary.md``."""
    rows, r = [], report["rows"]
    sigma10 = r.get("noise-10", {}).get("c2st")
    for budget, goal_speckle, goal_fd in (
        ("demo", (0.75, 1.15), (2.0, 1.5)),
        ("steps", (0.85, 1.1), (1.5, 1.2)),
    ):
        names = [n for n in r if n.startswith(budget + "-")]
        if not names:
            continue
        sp = [r[n]["speckle_ratio"] for n in names]
        rows.append({"metric": f"{budget}: speckle ratio, every variant", "value": [round(x, 2) for x in sp],
                     "goal": f"in [{goal_speckle[0]}, {goal_speckle[1]}]",
                     "met": all(goal_speckle[0] <= x <= goal_speckle[1] for x in sp)})  # fmt: skip
        for det, goal in zip(DETECTORS, goal_fd, strict=True):
            best = min(r[n][f"fd_over_floor_{det}"] for n in names)
            rows.append({"metric": f"{budget}: best FD / floor ({det})", "value": round(best, 2),
                         "goal": f"<= {goal}", "met": best <= goal})  # fmt: skip
        if budget == "steps" and sigma10 is not None:
            best = min(r[n]["c2st"] for n in names)
            rows.append({"metric": "steps: best C2ST vs real + noise σ=10", "value": round(best, 3),
                         "goal": f"< {sigma10:.3f}", "met": best < sigma10})  # fmt: skip
    return rows


def _f(x: Any, nd: int = 2) -> str:
    return "–" if x is None else f"{x:.{nd}f}" if isinstance(x, float) else str(x)


def docs_block(report: dict) -> str:
    mc, r = report["machine"], report["rows"]
    lines = [BEGIN, "<!-- written by benchmarks/bench_quality.py from benchmarks/results/quality.json -->", "",
             f"Machine: {mc['cpu']}, {mc['cores']} logical cores (native bf16: {'yes' if mc['native_bf16'] else 'no'}), "
             f"torch {mc['torch']}; {report['held_out']} held-out real patches; synthetic sets made from their maps.", "",
             "| set | steps | train min | speckle ratio | FD / floor (handcrafted) | FD / floor (random-init-cnn) | C2ST |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for name, row in r.items():
        t = report["train"].get(name, {})
        minutes = _f(t["train_seconds"] / 60, 1) if t.get("train_seconds") else ""
        label = {"real-heldout": "real held-out (floor)"}.get(name, name)
        lines.append(f"| {label} | {t.get('steps', '')} | {minutes} | {_f(row['speckle_ratio'])} | "
                     f"{_f(row['fd_over_floor_handcrafted'])} | {_f(row['fd_over_floor_random-init-cnn'])} | "
                     f"{_f(row['c2st'], 3)} |")  # fmt: skip
    lines += ["", "| goal (issue 15) | measured | target | met |", "|---|---|---|---|"]
    for s in report["summary"]:
        lines.append(f"| {s['metric']} | {s['value']} | {s['goal']} | {'yes' if s['met'] else 'no'} |")
    lines.append(END)
    return "\n".join(lines)


def write_docs(report: dict, path: Path = DOCS) -> None:
    text = path.read_text()
    block = docs_block(report)
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="Tiny budgets (a smoke run, not a measurement).")
    ap.add_argument("--work", type=Path, default=None,
                    help="Run folders, resumable (default work/quality, work/quality-quick for --quick).")  # fmt: skip
    ap.add_argument("--demo-run", type=Path, help="A finished default `histosynth demo` folder to reuse.")
    ap.add_argument("--steps-run", type=Path, help="A finished `make results` folder to reuse (equal steps).")
    ap.add_argument("--steps", type=int, default=3000, help="Equal step budget per variant.")
    ap.add_argument("--out", type=Path, help="JSON to write (default results/quality.json).")
    args = ap.parse_args(argv)
    # a quick run's tiny models must never be resumed as a full run's
    args.work = args.work or HERE / "work" / ("quality-quick" if args.quick else "quality")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    out = args.out or (RESULTS / "quick" / "quality.json" if args.quick else RESULTS / "quality.json")
    report: dict[str, Any] = {"machine": machine(), "quick": args.quick, "train": {}, "wall_minutes": {}}
    runs: dict[str, Path] = {}
    quick_demo = {"minutes": 5.5, "n_samples": 12, "segmenter_steps": 5} if args.quick else {}
    quick_steps = {"train_steps": 4, "n_samples": 12, "segmenter_steps": 5} if args.quick else {}
    if args.demo_run:
        runs["demo"] = args.demo_run
    else:
        runs["demo"], report["wall_minutes"]["demo"] = run_demo_plan(args.work / "demo", **quick_demo)
    if args.steps_run:
        runs["steps"] = args.steps_run
    else:
        plan = {"train_steps": args.steps, "variants": ("map", "spatial", "tokens"), **quick_steps}
        runs["steps"], report["wall_minutes"]["steps"] = run_demo_plan(args.work / "steps", **plan)
    real = runs["demo"] / "dataset"
    sets: dict[str, Path] = {}
    for budget, folder in runs.items():
        for syn in sorted((folder / "synthetic").iterdir()):
            sets[f"{budget}-{syn.name}"] = syn
        for model, t in train_times(folder).items():
            report["train"][f"{budget}-{model}"] = t
    for sigma in SIGMAS:
        sets[f"noise-{sigma}"] = write_noised(real, args.work / "calibration" / f"noise-{sigma}", sigma)
    # one evaluation folder per set of inputs: another --demo-run / --steps-run is another artefact
    key = hashlib.sha256(json.dumps({k: str(Path(v).resolve()) for k, v in sorted(sets.items())}).encode())
    metrics = measure(real, sets, args.work / "evaluation" / key.hexdigest()[:12])
    report["rows"] = rows_of(metrics)
    report["held_out"] = metrics["counts"]["real_heldout"]
    report["runs"] = {k: str(v) for k, v in runs.items()}
    report["summary"] = summary_rows(report)
    from histosynth.artifacts import atomic_write_text  # readers never see half a file

    atomic_write_text(out, json.dumps(report, indent=1) + "\n")
    if not args.quick:
        write_docs(report)
    for s in report["summary"]:
        print(f"{s['metric']}: {s['value']} (goal {s['goal']}) {'met' if s['met'] else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
