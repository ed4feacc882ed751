"""The plan of `histosynth run` refuses, in one sentence each, what would fail or mislead later."""

from __future__ import annotations

import json
import re
import shutil

import pytest

from histosynth.config import ConfigError, build_config
from histosynth.pipeline.config import RunConfig
from histosynth.pipeline.plan import make_plan
from tests.conftest import run_cli
from tests.reliability._bad_files import feature, slide_without_mpp, truncate, write_json

from .conftest import TEST_SETTINGS


def _plan(slides, out, *overrides, **kwargs):
    cfg = build_config(RunConfig, preset="test", overrides=overrides)
    return make_plan(slides, out, cfg, estimate=False, **kwargs)


def _refused(slides, out, *overrides, **kwargs) -> str:
    with pytest.raises(ConfigError) as info:
        _plan(slides, out, *overrides, **kwargs)
    message = str(info.value)
    assert "\n" not in message and not re.search(r"[.;:] [A-Z]", message), message  # one sentence
    return message


@pytest.fixture
def ann(annotated_slides, tmp_path):
    """A copy of the annotation folder to spoil."""
    return shutil.copytree(annotated_slides / "ann", tmp_path / "ann")


def test_slides_are_opened_before_anything_runs(annotated_slides, tmp_path):
    (tmp_path / "empty").mkdir()
    assert "no slides found in" in _refused([tmp_path / "empty"], tmp_path / "out")
    bad = truncate(annotated_slides / "s" / "s0.tif", tmp_path / "bad.tif")
    message = _refused([annotated_slides / "s", bad], tmp_path / "out")
    assert "bad.tif" in message and "--skip-bad-slides" in message
    plan = _plan([annotated_slides / "s", bad], tmp_path / "out", skip_bad=True)
    assert list(plan.slides) == ["s0", "s1"] and list(plan.skipped) == ["bad"]
    flat = slide_without_mpp(tmp_path / "flat.tif")
    assert "no resolution (mpp)" in _refused([flat], tmp_path / "out") and "--mpp" in _refused(
        [flat], tmp_path / "o"
    )
    assert _plan([flat], tmp_path / "out", "slide_mpp=0.5").slides["flat"].mpp == 0.5
    (tmp_path / "file").write_text("")
    assert "is not a folder" in _refused([flat], tmp_path / "file", "slide_mpp=0.5")


def test_annotations_are_matched_and_read(annotated_slides, ann, tmp_path):
    slides, classes = annotated_slides / "s", str(annotated_slides / "classes.json")
    out = tmp_path / "out"
    assert "--annotations needs --classes" in _refused([slides], out, annotations=ann)
    assert "--classes needs --annotations" in _refused([slides], out, classes=classes)
    assert "labels = 'stain'" in _refused([slides], out, "labels=stain", annotations=ann, classes=classes)
    assert "needs --annotations" in _refused([slides], out, "labels=annotations")
    # misnamed: nothing matches, and the message shows a file and a slide name
    for name in ("s0", "s1"):
        (ann / f"{name}.geojson").rename(ann / f"slide-{name}.geojson")
    message = _refused([slides], out, annotations=ann, classes=classes)
    assert "no annotation file matches any of the 2 slides (e.g. slide-s0.geojson for slide s0)" in message
    # one matches: the plan goes on and names the unmatched slide and file
    (ann / "slide-s0.geojson").rename(ann / "s0.geojson")
    plan = _plan([slides], out, annotations=ann, classes=classes)
    assert plan.labels.unannotated == ["s1"] and plan.labels.orphans == ["slide-s1.geojson"]
    assert "slides without an annotation file are left out: s1" in plan.notes and list(plan.slides) == ["s0"]
    assert "annotation files that match no slide: slide-s1.geojson" in plan.notes


def test_classes_must_be_known_and_mixed(annotated_slides, ann, tmp_path):
    slides, out = annotated_slides / "s", tmp_path / "out"
    classes = str(annotated_slides / "classes.json")
    square = [[[0, 0], [300, 0], [300, 300], [0, 300], [0, 0]]]
    write_json(ann / "s0.geojson", {"type": "FeatureCollection", "features": [feature(square, "tumor")]})
    message = _refused([slides], out, annotations=ann, classes=classes)
    assert "s0.geojson" in message and "unknown class 'tumor'" in message
    plan = _plan([slides], out, annotations=ann, classes=classes, skip_bad=True)
    assert list(plan.slides) == ["s1"] and "tumor" in plan.skipped["s0"]
    for name in ("s0", "s1"):  # only one tissue class drawn, no fill class: no patch can mix two
        write_json(
            ann / f"{name}.geojson", {"type": "FeatureCollection", "features": [feature(square, "stroma")]}
        )
    assert "fewer than two tissue classes ('stroma')" in _refused(
        [slides], out, annotations=ann, classes=classes
    )
    scheme = json.loads((annotated_slides / "classes.json").read_text())
    write_json(
        tmp_path / "filled.json", {**scheme, "fill": "epithelium"}
    )  # the rest of the tissue is a class
    assert _plan([slides], out, annotations=ann, classes=str(tmp_path / "filled.json")).labels.present


def test_settings_are_checked_before_training(annotated_slides, tmp_path):
    slides, out = [annotated_slides / "s"], tmp_path / "out"
    assert "split = 'slide' needs 3 slides or more" in _refused(slides, out, "split=slide")
    assert "leaves nothing to train" in _refused(slides, out, "train_steps=0", "minutes=3")
    assert "unknown variant 'tokenz'" in _refused(slides, out, 'variants=["tokenz"]')
    message = _refused(slides, out, "train.optim.lrr=0.1")
    assert message == "run config [train]: unknown key 'optim.lrr'; did you mean 'lr'?"
    assert "unknown detector 'fid'" in _refused(slides, out, 'detectors=["fid"]')
    assert "unknown sampler 'dpm'" in _refused(slides, out, "sampler=dpm")
    assert _refused(slides, out, "encoder=uni").startswith("encoder: ")  # weights are never downloaded


def test_disk_space_is_checked(annotated_slides, tmp_path, monkeypatch):
    import histosynth.pipeline.estimate as estimate

    full = shutil.disk_usage(tmp_path)._replace(free=1000)
    monkeypatch.setattr(estimate.shutil, "disk_usage", lambda _: full)
    cfg = build_config(RunConfig, preset="test")
    with pytest.raises(ConfigError, match=r"needs about 0\.\d GB and its disk has 0\.0 GB free"):
        make_plan([annotated_slides / "s"], tmp_path / "out", cfg)


def test_dry_run_shows_the_plan_on_one_screen_and_runs_nothing(annotated_slides, tmp_path, capsys):
    root, out = annotated_slides, tmp_path / "out"
    args = ["run", root / "s", "-o", out, "--annotations", root / "ann", "--classes", root / "classes.json",
            "--dry-run", *TEST_SETTINGS]  # fmt: skip
    code, text = run_cli(args, capsys)
    assert code == 0, text
    lines = text.strip().splitlines()
    assert len(lines) <= 24 and lines[0] == "histosynth run: the plan"
    for row in ("slides", "split", "maps", "model", "synthesis", "evaluation", "disk", "time", "out"):
        assert any(line.split()[0] == row for line in lines[1:]), row
    assert not out.exists()
    code, text = run_cli(["run", root / "s", "-o", out, "--split", "slide", *TEST_SETTINGS], capsys)
    assert code == 2 and text.startswith("histosynth: error: split = 'slide' needs 3 slides")
