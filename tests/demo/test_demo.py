"""The main job end to end on the real slide, with a tiny budget (the full demo takes 15 min)."""

import json

import pytest

from histosynth.config import build_config
from histosynth.demo import DemoPlan, run_demo


@pytest.mark.slow
def test_demo_runs_end_to_end_and_resumes(tmp_path):
    plan = build_config(
        DemoPlan,
        values={
            "minutes": 0.3,
            "reserve_minutes": 0.0,
            "n_samples": 8,
            "sample_steps": 2,
            "segmenter_steps": 4,
            "c2st_steps": 10,
            "variants": ("map", "tokens"),
        },
    )
    lines: list[str] = []
    report = run_demo(tmp_path / "demo", plan, echo=lines.append)
    assert report.is_file() and report.stat().st_size > 10_000
    html = report.read_text()
    for variant in ("map", "tokens", "tokens-no-crops"):  # the tokens model is also sampled map-only
        assert variant in html
    metrics = json.loads((tmp_path / "demo" / "evaluation" / "metrics.json").read_text())
    flat = json.dumps(metrics)
    assert "handcrafted" in flat and "random-init-cnn" in flat
    assert (tmp_path / "demo" / "clusters" / "report" / "index.html").is_file()
    assert lines[-1].startswith("cluster report:")
    # 0.3 min buy a few steps: the run says, after training and again at the end, what would draw tissue
    notes = [x for x in lines if x.lstrip().startswith("note: the 0.3 min budget bought")]
    assert len(notes) == 3 and notes[-1] == lines[-2]  # after each of the 2 models, then at the end
    assert "colour speckle" in notes[-1]
    assert notes[-1].split("--minutes ")[1].split()[0].isdigit()
    # a second run resumes: every stage is already complete
    again: list[str] = []
    run_demo(tmp_path / "demo", plan, echo=again.append)
    assert any("budget is spent" in x for x in again)
    assert not any("note:" in x for x in again)  # nothing was trained by this invocation
    log = json.loads((tmp_path / "demo" / "demo-run.json").read_text())
    assert len(log["invocations"]) == 2 and log["plan"]["n_samples"] == 8
    assert max(s["seconds"] for s in log["invocations"][0]) > max(s["seconds"] for s in log["invocations"][1])
    # docs/results.md is written from the run's files: every FD in the page is the metrics' one
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "scripts" / "write_results.py"
    spec = importlib.util.spec_from_file_location("write_results", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = module.write(tmp_path / "demo", tmp_path / "results.md")
    assert "--set train_steps" not in text and "histosynth demo --out" in text
    for variant in ("map", "tokens"):
        for det in ("handcrafted", "random-init-cnn"):
            assert module._fmt(metrics["metrics"][variant][f"fd_{det}"]) in text
    assert "| map only | " in text and "memorised share" in text
