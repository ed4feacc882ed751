"""Measure the per-unit costs behind `histosynth run`'s time estimate on this machine.

Runs `histosynth run` on the bundled slide with the cpu preset and small budgets, reads each
step's seconds from its ``run-log.json`` and the counts from the stages' manifests, and prints
the costs (seconds per unit) with the probe time of :func:`histosynth.pipeline.estimate.machine_speed`
measured around it, ready to paste into ``histosynth.pipeline.estimate`` (``COSTS`` and
``REFERENCE``)::

    python scripts/measure_run_costs.py [WORK_DIR]

Run it on a quiet machine: the probe is taken before and after, and a large gap between the two
means the machine's load changed under the measurement.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path


def _probe() -> float:
    from histosynth.pipeline.estimate import REFERENCE, machine_speed

    return REFERENCE["probe_seconds"] / machine_speed(repeats=15)


def main(argv: list[str]) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HISTOSYNTH_PROGRESS", "0")
    from histosynth.artifacts import read_manifest
    from histosynth.cli.main import main as cli
    from histosynth.samples import cmu_small_region

    work = Path(argv[0] if argv else "runs/run-costs")
    out = work / f"run-{int(time.time())}"
    before = _probe()
    steps, samples, sample_steps, seg, c2st = 20, 16, 10, 20, 40
    args = ["run", str(cmu_small_region()), "-o", str(out), "--steps", str(steps), "--samples", str(samples),
            "--set", f"sample_steps={sample_steps}", "--set", f"segmenter_steps={seg}", "--set",
            f"c2st_steps={c2st}", "--set", "without_crops=false"]  # fmt: skip
    try:
        cli(args)
    except SystemExit as exc:
        if exc.code:
            return int(exc.code)
    after = _probe()
    log = json.loads((out / "run-log.json").read_text())["invocations"][-1]
    seconds = {s["command"]: s["seconds"] for s in log}
    tiles = read_manifest(out / "tiles")["counts"]["tiles"]
    subtiles = read_manifest(out / "embeddings")["counts"]["vectors"]
    patches = read_manifest(out / "dataset")["counts"]["patches"]
    stats = [json.loads(x) for x in (out / "train" / "tokens" / "stats.jsonl").read_text().splitlines() if x]
    metrics = json.loads((out / "evaluation" / "metrics.json").read_text())
    costs = {
        "tile_slide": seconds["tile"],
        "dataset_tile": seconds["dataset"] / tiles,
        "embed_subtile": seconds["embed"] / subtiles,
        "cluster": seconds["cluster"],
        "crop_bank_patch": seconds["crop-bank"] / patches,
        "train_step": statistics.median(s["step_time"] for s in stats[1:] or stats),
        "sample_image_step": seconds["sample"] / (samples * sample_steps),
        "evaluate": seconds["evaluate"],
        "evaluate_timing": metrics.get("timing"),
        "report": seconds["report"],
    }
    print(json.dumps({"probe_seconds": [before, after], "costs": costs, "counts": {"tiles": tiles,
          "subtiles": subtiles, "patches": patches}}, indent=1))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
