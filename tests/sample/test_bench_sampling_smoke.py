"""Smoke test of benchmarks/bench_sampling.py on the tiny test model (mechanics, not a measurement)."""

import importlib.util
import json
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_sampling.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_sampling", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
def test_quick_run_writes_json_and_docs_block(tiny_checkpoint, tiny_dataset, tmp_path):
    bench = _bench()
    docs = tmp_path / "sampling.md"
    docs.write_text("# Synthesis\n\n## Not yet measured\nplaceholder\n\n## Later\nkept\n")
    out, work = tmp_path / "sampling.json", tmp_path / "w"
    args = ["--quick", "--parts", "throughput,quality", "--n", "4", "--data", str(tiny_dataset), "--model",
            str(tiny_checkpoint), "--work", str(work), "--out", str(out), "--docs", str(docs), "--write-docs"]  # fmt: skip
    assert bench.main(args) == 0
    report = json.loads(out.read_text())
    tp = report["throughput"]
    assert {(r["sampler"], r["steps"]) for r in tp["rows"]} == {
        (s, n) for s in bench.SAMPLERS for n in (2, 4)
    }
    assert all(r["img_per_s"] > 0 and r["ratio_vs_ddim200"] > 0 for r in tp["rows"])
    q = report["quality"]
    assert {r["sampler"] for r in q["table"]} == set(bench.SAMPLERS) and set(q["noise"]) == set(
        bench.DETECTORS
    )
    assert {"metric", "value", "goal", "met"} <= set(report["summary"][0])
    text = docs.read_text()
    assert (
        "Not yet measured" not in text and text.count(bench.BEGIN) == 1 and text.endswith("## Later\nkept\n")
    )
    assert bench.main(["--docs-only", "--out", str(out), "--docs", str(docs)]) == 0
    assert docs.read_text() == text  # rewriting from the JSON alone replaces the block in place

    # The memory part's child, in this process (the benchmark runs it in a fresh one per size).
    row = bench.memory_child(str(tiny_checkpoint), str(work / "crop-bank"), 128, 1, str(work / "large"), 1)
    assert (
        row["windows"] > 1 and 0 < row["peak_anon_mb"] <= row["peak_rss_mb"] and row["latent_canvas_mb"] > 0
    )
