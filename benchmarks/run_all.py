"""Run every ``benchmarks/bench_*.py`` and write a summary table.

Each benchmark writes one JSON file holding a ``summary`` list of ``{"metric": ..., "value":
..., "goal": ..., "met": ...}`` rows; this script runs them one after another (timings are
noisy on shared machines: every benchmark measures ratios against a reference run inside its
own process) and gathers those rows into ``summary.md`` next to them.

Two sizes:

- full (``make bench``): each benchmark at the sizes its goals are stated for, writing
  ``benchmarks/results/<name>.json``. It takes hours on 2 CPU cores (Inception features for
  FD, a million-point k-means, four training presets, 20,000 px slides);
- quick (``make bench-quick`` / ``--quick``): the same code paths at small sizes, writing
  ``benchmarks/results/quick/`` so the full results are never overwritten; minutes. Quick
  numbers check that every benchmark runs; they are not the measurements the docs quote.

Usage: ``python benchmarks/run_all.py [--quick] [--summary-only] [NAME ...]`` (names like
``bench_fd``; ``--summary-only`` rebuilds the table from the JSON already there).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
RESULTS = HERE / "results"

# Small sizes per benchmark for --quick; "{out}" is the JSON file to write.
QUICK: dict[str, list[str]] = {
    "bench_cluster": ["--n", "20000", "--d", "64", "--k", "16", "--out", "{out}"],
    "bench_embed": ["--size", "1024x512", "--repeats", "1", "--out", "{out}"],
    "bench_fd": ["--configs", "random-init-cnn", "--n", "300", "--repeats", "1", "--out", "{out}"],
    "bench_tiling": ["--sides", "2000", "--no-histolab", "--no-hs2p", "--out", "{out}"],
    "bench_train": ["--presets", "cpu-tiny", "--out", "{out}"],
}
# A benchmark without an entry follows the convention: ``--quick --out FILE``.
DEFAULT_QUICK = ["--quick", "--out", "{out}"]


def run(names: set[str], quick: bool) -> list[str]:
    """Run the selected benchmarks; returns the names of those that failed."""
    out_dir = RESULTS / "quick" if quick else RESULTS
    out_dir.mkdir(parents=True, exist_ok=True)
    failed = []
    for script in sorted(HERE.glob("bench_*.py")):
        if names and script.stem not in names:
            continue
        args = [
            a.replace("{out}", str(out_dir / f"{script.stem}.json"))
            for a in QUICK.get(script.stem, DEFAULT_QUICK)
        ]
        cmd = [sys.executable, str(script), *(args if quick else [])]
        print(f"== {script.name} {' '.join(cmd[2:])}", flush=True)
        t0 = time.monotonic()
        rc = subprocess.run(cmd, check=False).returncode
        print(f"== {script.name}: exit {rc} after {(time.monotonic() - t0) / 60:.1f} min", flush=True)
        if rc != 0:
            failed.append(script.name)
    return failed


def summarise(folder: Path) -> str:
    """The summary rows of every JSON file in ``folder`` as one Markdown table."""
    lines = ["| benchmark | metric | value | goal | met |", "|---|---|---|---|---|"]
    for path in sorted(folder.glob("*.json")):
        data = json.loads(path.read_text())
        for row in data.get("summary", []) if isinstance(data, dict) else []:
            lines.append(
                f"| {path.stem} | {row['metric']} | {row['value']} | {row.get('goal', '')} | {row.get('met', '')} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    names = {a for a in argv if not a.startswith("--")}
    failed = [] if "--summary-only" in argv else run(names, quick)
    folder = RESULTS / "quick" if quick else RESULTS
    table = summarise(folder)
    (folder / "summary.md").write_text(table)
    print(table)
    if failed:
        print(f"failed: {failed}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
