"""The benchmark's goal rows and docs/domains.md, from a made-up run (no training)."""

import importlib.util
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def _run(tmp_path) -> dict:
    """Two seeds: map-only FD 1.0 ± 0.1, dual 0.3 ± 0.05; adherence 1.0 vs 0.4; transfer gains 0.1."""
    from histosynth.data.patch_dataset import encode_png

    def metrics(fd, lo, hi, adh):
        m = {f"domainfd_{d}": fd for d in ("handcrafted", "random-init-cnn")}
        m.update({f"domainfd_ci_low_{d}": lo for d in ("handcrafted", "random-init-cnn")})
        m.update({f"domainfd_ci_high_{d}": hi for d in ("handcrafted", "random-init-cnn")})
        m.update({f"domainfd_lab-a_{d}": fd for d in ("handcrafted", "random-init-cnn")})
        m.update({f"adherence_{s}": adh for s in ("stain", "handcrafted", "random-init-cnn")})
        return m

    seeds = [{"seed": s, "domains": ["lab-A", "lab-C"], "train": {"map": {"steps": 10, "s_per_step": 0.2}},
              "metrics": {"map": metrics(1.0 + s / 10, 0.9, 1.2, 1.0), "spatial": metrics(0.3, 0.25, 0.35, 0.4),
                          "tokens": metrics(0.31, 0.26, 0.36, 0.45), "real-heldout": metrics(0.1, 0.05, 0.15, None)}}
             for s in range(2)]  # fmt: skip
    for s in seeds:  # the crop-blind end of the scale, four times the floor
        s["metrics"]["real-heldout"].update(
            {f"domainfd_blind_{d}": 0.4 for d in ("handcrafted", "random-init-cnn")}
        )
    table = [{"condition": c, "miou": list(v)} for c, v in (
        ("a-real", (0.5, 0.52)), ("a-real/norm-macenko", (0.51, 0.5)), ("a-real/norm-reinhard", (0.55, 0.53)),
        ("a-real+hed-jitter", (0.56, 0.54)), ("a-real+synthetic:spatial.seed0", (0.62, 0.6)),
        ("a-real+synthetic:spatial.seed1", (0.63, 0.61)), ("a-real+synthetic:tokens.seed0", (0.55, 0.5)),
        ("a-real+synthetic:tokens.seed1", (0.52, 0.5)), ("b-real", (0.7, 0.7)))]  # fmt: skip
    picture = tmp_path / "labs.png"
    picture.write_bytes(encode_png(np.zeros((4, 4, 3), np.uint8)))
    return {"plan": {"lab_seed": 0, "new_lab": "lab-B", "source": "lab-A", "steps": 10, "seeds": 2, "sampler": "dpm++",
                     "sample_steps": 20, "guidance_crops": 1.5, "bootstrap": 10, "segmenter_steps": 5,
                     "segmenter_seeds": 2, "few_crops": 8},
            "quick": True, "machine": {"cpu": "test CPU", "cores": 2, "torch": "x", "torch_threads": 2, "python": "3"},
            "labs": [{"name": n, "h_scale": 1.0, "e_scale": 1.0, "h_bias": 0.0, "e_bias": 0.0, "h_angle": 0.0,
                      "e_angle": 0.0, "blur_um": 0.0, "jpeg_quality": 0} for n in ("lab-A", "lab-B", "lab-C")],
            "train_labs": ["lab-A", "lab-C"], "counts": {"train": 5, "test": 3}, "seeds": seeds,
            "transfer": {"table": table, "train_images": 5, "test_images": 3,
                         "config": {"jitter_scale": 0.2, "jitter_bias": 0.2}}, "picture": str(picture),
            "minutes": 1.0, "load": [1.0, 1.0], "command": "python benchmarks/bench_domains.py --quick"}  # fmt: skip


def test_goal_rows_follow_the_numbers(tmp_path):
    goals = _load(ROOT / "benchmarks" / "domain_goals.py")
    run = _run(tmp_path)
    rows = {r["metric"]: r for r in goals.goals(run)}
    fd = rows["per-domain FD map-only / spatial (handcrafted)"]
    assert fd["met"] and fd["value"].startswith("3.50×, intervals apart in 2/2")
    assert rows["crop adherence spatial (stain)"]["met"] and rows["crop adherence map (stain)"]["met"]
    assert rows["transfer mIoU gain over A-real (spatial)"]["met"]
    assert rows["transfer mIoU minus best baseline (spatial)"]["met"]
    assert not rows["transfer mIoU gain over A-real (tokens)"]["met"]
    assert run["aggregate"]["transfer"]["a-real+synthetic:spatial"]["n"] == 4  # pooled over generator seeds


def test_page_is_written_from_the_json(tmp_path):
    import json

    goals, writer = (
        _load(ROOT / "benchmarks" / "domain_goals.py"),
        _load(ROOT / "scripts" / "write_domains.py"),
    )
    run = _run(tmp_path)
    run["summary"] = goals.goals(run)
    # seed 0 again at guidance 3: dual FD 0.5 (ratio 2×), adherence 0.2
    strong = {v: {**run["seeds"][0]["metrics"][v]} for v in ("map", "spatial", "tokens")}
    for v in ("spatial", "tokens"):
        strong[v].update({f"domainfd_{d}": 0.5 for d in ("handcrafted", "random-init-cnn")})
        strong[v].update({f"adherence_{s}": 0.2 for s in ("stain", "handcrafted", "random-init-cnn")})
    run["guidance_sweep"] = [{"guidance_crops": 3.0, "metrics": strong}]
    (tmp_path / "r.json").write_text(json.dumps(run))
    doc = tmp_path / "docs" / "domains.md"
    assert writer.main([str(tmp_path / "r.json"), "--doc", str(doc)]) == 0
    text = doc.read_text()
    assert "Quick check" in text and "Ruifrok & Johnston 2001" in text and "img/domains-labs.png" in text
    assert "| map only | 1.05 ± 0.05 |" in text and "B real (uses B's annotations: the ceiling)" in text
    assert "| real, every training lab pooled (crop-blind, made perfectly) | 0.4 ± 0 |" in text
    assert "lab-B lies outside the training labs' range in 0 of 8 parameters (none)" in text
    assert "The best baseline, A real + HED jitter, reaches 79% of the ceiling" in text  # 0.55 / 0.7
    assert "Its FD over the floor, 4× (handcrafted), 4× (random-init-cnn)" in text
    assert "(training about 0 minutes a seed)" in text  # 10 steps @ 0.2 s
    two = {"seeds": [{"train": {"map": {"steps": 600, "s_per_step": 0.5}, "tokens": {"steps": 600, "s_per_step": 1.5}}},
                     {"train": {"map": {"steps": 600, "s_per_step": 0.5}, "tokens": {"steps": 600, "s_per_step": 0.5}}}]}  # fmt: skip
    assert writer._train_minutes(two) == 15.0  # (20 + 10) / 2 minutes
    assert "| 1.5 (this run) | 3.33× | 3.23× | 3.33× | 3.23× | 0.4 | 0.45 |" in text  # seed 0: map FD 1.0
    assert "| 3 | 2.00× | 2.00× | 2.00× | 2.00× | 0.2 | 0.2 | 0.2 |" in text
    assert (tmp_path / "docs" / "img" / "domains-labs.png").is_file()


def test_the_benchmark_trains_with_the_presets_crop_stats_unless_forced():
    bench = _load(ROOT / "benchmarks" / "bench_domains.py")
    assert bench.train_config(bench.Plan(), "spatial", 0).model.crop_stats is True  # cpu-tiny's choice
    assert bench.train_config(bench.Plan(crop_stats=False), "tokens", 1).model.crop_stats is False
    cfg = bench.train_config(bench.Plan(steps=7), "map", 2)
    assert (cfg.model.conditioning, cfg.run.steps, cfg.run.seed) == ("map", 7, 2)
    # another crop guidance samples beside the default's, from the same models
    other = bench.Plan(guidance_crops=3.0, crop_stats=False)
    assert bench.Plan().synthetic_dir(Path("w"), 0) == Path("w/seed0/synthetic")
    assert other.synthetic_dir(Path("w"), 1) == Path("w/seed1-crop-stats-off/synthetic-g3")
