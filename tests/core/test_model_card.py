"""Model cards: every trained pipeline folder has a README.md with YAML front matter, and an
evaluation of the model's samples writes its numbers into it."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml
from tests.conftest import run_cli

from histosynth.artifacts import read_manifest
from histosynth.data.patch_dataset import PatchDataset


def front_matter(path) -> dict:
    text = path.read_text()
    assert text.startswith("---\n")
    return yaml.safe_load(text[4 : text.index("\n---\n", 4)])


def test_training_writes_a_card(tiny_checkpoint, tiny_dataset):
    card = tiny_checkpoint / "model" / "README.md"
    front = front_matter(card)
    assert front["library_name"] == "diffusers" and "histopathology" in front["tags"]
    facts = front["histosynth"]
    assert facts["steps"] == 2 and facts["conditioning"] == "map+crops-tokens"
    trained_on = PatchDataset(tiny_dataset, split=facts["dataset"]["split"])
    assert facts["dataset"]["id"] == read_manifest(tiny_dataset)["id"] == trained_on.id
    assert facts["dataset"]["slides"] == sorted(set(trained_on.index["slide"]))
    assert facts["dataset"]["patches"] == len(trained_on) > 0
    assert [c["name"] for c in facts["dataset"]["classes"]] == trained_on.classes.names
    assert facts["config"]["model"]["backbone"] == "test"
    body = card.read_text()
    assert "## Training data" in body and facts["dataset"]["id"] in body and "Not evaluated yet" in body


def test_evaluate_writes_the_latest_numbers_into_the_card(tiny_checkpoint, tiny_dataset, tmp_path, capsys):
    hub = pytest.importorskip("huggingface_hub")
    run = shutil.copytree(tiny_checkpoint, tmp_path / "run")  # the session's model stays as trained
    syn = tmp_path / "syn"
    code, text = run_cli(["sample", run, syn, "--maps-from", tiny_dataset, "--bank-from", tiny_dataset, "-n", 8,
                          "--steps", 2, "--crop-bank", tmp_path / "bank"], capsys)  # fmt: skip
    assert code == 0, text
    card = run / "model" / "README.md"
    for out in (tmp_path / "eval1", tmp_path / "eval2"):
        code, text = run_cli(["evaluate", "--real", tiny_dataset, "--synthetic", f"tokens={syn}", "--out", out,
                              "--preset", "quick", "--detector", "handcrafted", "--set", f"seed={len(out.name)}",
                              "--set", "bootstrap=0"], capsys)  # fmt: skip
        assert code == 0, text
        metrics = json.loads((out / "metrics.json").read_text())["metrics"]
        ev = front_matter(card)["histosynth"]["evaluation"]
        assert ev["folder"] == str(out.resolve()) and ev["variant"] == "tokens"  # the latest run
        assert ev["metrics"]["fd_handcrafted"] == metrics["tokens"]["fd_handcrafted"]
        assert ev["real_heldout"]["fd_handcrafted"] == metrics["real-heldout"]["fd_handcrafted"]
    body = card.read_text()
    assert "Not evaluated yet" not in body and "handcrafted (this model)" in body
    # the hub's own parser reads the card and its evaluation results
    results = hub.ModelCard.load(card).data.eval_results
    got = {r.metric_type: r.metric_value for r in results}
    assert got["fd_handcrafted"] == metrics["tokens"]["fd_handcrafted"] and "kid_handcrafted" in got
    assert (tiny_checkpoint / "model" / "README.md").read_text().count("Not evaluated yet") == 1
