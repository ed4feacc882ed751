"""`histosynth run` on two synthetic slides with ground-truth annotations: the annotated path end to
end, killed while sampling and resumed."""

from __future__ import annotations

import dataclasses
import json

import pytest

from histosynth.artifacts import Kind, read_manifest
from tests.conftest import run_cli

from .conftest import TEST_SETTINGS


def _args(root, out, *more):
    return ["run", root / "s", "-o", out, "--annotations", root / "ann", "--classes", root / "classes.json",
            *TEST_SETTINGS, *more]  # fmt: skip


# What each finished stage wrote per item: a resumed stage leaves them be (it may merge its
# table and write its manifest again).
ITEMS = {"tiles": "_shards/*", "dataset": "images/*", "train/map": "checkpoints/**/*",
         "train/tokens": "checkpoints/**/*", "crop-bank": "crops/*"}  # fmt: skip


def _stamps(folder, pattern):
    """The files ``pattern`` finds in ``folder`` with their modification times."""
    found = {
        str(p.relative_to(folder)): p.stat().st_mtime_ns for p in sorted(folder.glob(pattern)) if p.is_file()
    }
    assert found, f"nothing matches {folder / pattern}"
    return found


@pytest.mark.slow
def test_annotated_run_end_to_end_killed_and_resumed(annotated_slides, tmp_path, capsys, monkeypatch):
    import histosynth.pipeline.runner as runner
    from histosynth.train.skeleton import TrainSummary

    out = tmp_path / "run"
    real_call = runner._call
    args = _args(annotated_slides, out, "--variants", "map,tokens", "--set", "without_crops=true")

    def ctrl_c_while_training(step, *args):
        result = real_call(step, *args)
        if step.stage == "train" and step.folder.name == "tokens":  # a first Ctrl-C stops at a checkpoint
            return dataclasses.replace(result, summary=TrainSummary(1, False, None))
        return result

    monkeypatch.setattr(runner, "_call", ctrl_c_while_training)
    code, text = run_cli(args, capsys)
    assert code == 130 and "stopped at 1 steps" in text and not (out / "crop-bank").exists()  # stops there

    def killed_while_sampling(step, *args):
        if step.stage == "sample":
            raise KeyboardInterrupt  # what Ctrl-C, or a kill between two batches, leaves behind
        return real_call(step, *args)

    monkeypatch.setattr(runner, "_call", killed_while_sampling)
    code, text = run_cli(args, capsys)
    assert code == 130 and "re-run the same command to resume" in text
    # the plan came first, on one screen, naming what matched
    assert text.startswith("histosynth run: the plan") and "annotations: 2 of 2 slides matched" in text
    assert "split       by region" in text  # two slides: too few to hold out whole slides
    done = {name: _stamps(out / name, pattern) for name, pattern in ITEMS.items()}
    assert not (out / "report.html").exists()

    monkeypatch.setattr(runner, "_call", real_call)
    code, text = run_cli(args, capsys)
    assert code == 0, text
    assert "(resuming: 5 of 10 steps done)" in text
    assert f"report: {out / 'report.html'}" in text.splitlines()
    for name, stamps in done.items():  # finished stages were resumed, not redone
        assert _stamps(out / name, ITEMS[name]) == stamps, name
    # every stage folder is the artefact its own command writes
    assert read_manifest(out / "tiles", Kind.TILES)["counts"]["slides"] == 2
    dataset = read_manifest(out / "dataset", Kind.PATCH_DATASET)
    assert dataset["counts"]["split_test"] > 0
    classes = json.loads((out / "dataset" / "classes.json").read_text())
    assert [c["name"] for c in classes["classes"]] == ["background", "epithelium", "stroma", "lymphoid"]
    metrics = json.loads((out / "evaluation" / "metrics.json").read_text())
    assert set(metrics["variants"]) == {"map", "tokens", "tokens-no-crops"}
    assert metrics["counts"]["real_heldout"] == dataset["counts"]["split_test"]
    html = (out / "report.html").read_text()
    assert all(v in html for v in ("map", "tokens-no-crops"))
    log = json.loads((out / "run-log.json").read_text())
    assert len(log["invocations"]) == 3 and log["plan"]["variants"] == ["map", "tokens"]
    assert "sample" not in [s["command"] for s in log["invocations"][1]]  # the kill came first
    # the settings were saved beside the run, as --config reads them
    assert 'variants = ["map", "tokens"]' in (out / "run.toml").read_text()
