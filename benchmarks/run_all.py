"""Run every ``benchmarks/bench_*.py`` and write ``benchmarks/results/summary.md``.

Each benchmark writes its own ``benchmarks/results/<name>.json`` holding a ``summary`` list of
``{"metric": ..., "value": ..., "goal": ..., "met": ...}`` rows; this script runs them one after
another (timings are noisy on shared machines: every benchmark measures ratios against a
reference run inside its own process) and gathers those rows into one table.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
RESULTS = HERE / "results"


def main(argv: list[str]) -> int:
    only = set(argv)
    failed = []
    for script in sorted(HERE.glob("bench_*.py")):
        if only and script.stem not in only:
            continue
        print(f"== {script.name}", flush=True)
        if subprocess.run([sys.executable, str(script)], check=False).returncode != 0:
            failed.append(script.name)
    lines = ["| benchmark | metric | value | goal | met |", "|---|---|---|---|---|"]
    for path in sorted(RESULTS.glob("*.json")):
        data = json.loads(path.read_text())
        for row in data.get("summary", []):
            lines.append(
                f"| {path.stem} | {row['metric']} | {row['value']} | {row.get('goal', '')} | {row.get('met', '')} |"
            )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    if failed:
        print(f"failed: {failed}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
