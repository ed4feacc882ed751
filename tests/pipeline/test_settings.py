"""The run's settings: one TOML file for every stage, `--print-config` read back by `--config`, and
the demo as a preset of the run."""

from __future__ import annotations

import tomllib

from histosynth.config import build_config
from histosynth.demo import DemoPlan
from histosynth.pipeline.config import RunConfig
from histosynth.pipeline.plan import make_plan
from tests.conftest import run_cli


def test_print_config_is_a_config_file(tmp_path, capsys):
    args = [
        "run",
        "--print-config",
        "--preset",
        "test",
        "--variants",
        "map,tokens",
        "--set",
        "train.optim.lr=0.002",
    ]
    code, text = run_cli(args, capsys)
    assert code == 0, text
    tomllib.loads(text)  # the whole text is TOML; the stage configs are comments
    assert "# lr = 0.002" in text and 'conditioning = "map+crops-tokens"' in text
    (tmp_path / "run.toml").write_text(text)
    expected = build_config(RunConfig, preset="test", values={"variants": ["map", "tokens"]},
                            overrides=["train.optim.lr=0.002"])  # fmt: skip
    assert build_config(RunConfig, toml_file=tmp_path / "run.toml") == expected


def test_stage_tables_win_over_what_the_run_implies(cmu_slide, tmp_path):
    cfg = build_config(
        RunConfig, overrides=["train_steps=10", "size=128", "tile.size=96", "train.run.steps=7"]
    )
    steps = {
        str(s.folder.relative_to(tmp_path)): s
        for s in make_plan([cmu_slide], tmp_path, cfg, estimate=False).steps
    }
    assert steps["tiles"].args[2].size == 96 and steps["train/tokens"].args[2].run.steps == 7
    assert steps["tiles"].args[2].split.by == "region"  # auto, one slide


def test_the_demo_is_the_run_on_the_bundled_slide(cmu_slide, tmp_path):
    plan = DemoPlan()
    assert (plan.variants, plan.without_crops, plan.c2st_steps, plan.train_steps) == (
        ("tokens",),
        True,
        300,
        0,
    )
    assert (plan.minutes, plan.reserve_minutes, plan.size, plan.overlap) == (15.0, 3.5, 64, 48)
    results = ["train_steps=3000", "n_samples=128", "segmenter_steps=300", "segmenter_seeds=3",
               'variants=["map","spatial","tokens"]', "without_crops=false"]  # `make results`  # fmt: skip
    ablation = build_config(DemoPlan, overrides=results)
    assert ablation.variants == ("map", "spatial", "tokens") and not ablation.without_crops
    steps = make_plan([cmu_slide], tmp_path, plan, estimate=False).steps
    folders = [str(s.folder.relative_to(tmp_path)) for s in steps]
    assert folders == ["tiles", "dataset", "tiles-embed", "embeddings", "clusters", "dataset-pseudo", "train/tokens",
                       "crop-bank", "synthetic/tokens", "synthetic/tokens-no-crops", "evaluation", "report.html"]  # fmt: skip
    tiles, side = steps[0].args[2], steps[2].args[2]
    assert (tiles.overlap, tiles.split.by, tiles.min_tissue) == (48, "region", 0.3)
    assert (side.overlap, side.split.by) == (0, "slide")  # the unannotated path's own tiles, as before
    assert (
        steps[1].args[2].sampling.max_per_slide == 0 and steps[1].args[2].sampling.homogeneous_share == 0.25
    )
    train = steps[6].args[2]
    assert (train.model.backbone, train.model.conditioning, train.run.steps) == (
        "cpu-tiny",
        "map+crops-tokens",
        100000,
    )
    evaluate = steps[10].args[2]
    assert evaluate.detectors == ("handcrafted", "random-init-cnn") and evaluate.tstr.segmenter.steps == 150
