"""`histosynth run` on the bundled real slide without annotations: embeddings → clusters →
pseudo-maps → model → synthetic data → evaluation; later stages removed and redone."""

from __future__ import annotations

import json
import shutil

import pytest

from histosynth.artifacts import Kind, read_manifest
from tests.conftest import run_cli

from .conftest import TEST_SETTINGS


@pytest.mark.slow
def test_unannotated_run_end_to_end_and_resumed(cmu_slide, tmp_path, capsys):
    out = tmp_path / "run"
    args = ["run", cmu_slide, "-o", out, *TEST_SETTINGS, "--k", "4", "--levels", "2", "--large", "1"]
    code, text = run_cli(args, capsys)
    assert code == 0, text
    assert "pseudo-maps: handcrafted embeddings → 4 tissue types" in text
    assert "split       by region" in text  # one slide: held-out regions of it
    clusters = read_manifest(out / "clusters", Kind.CLUSTERS)
    assert (out / "clusters" / "report" / "index.html").is_file() and clusters["kind"] == "clusters"
    names = [c["name"] for c in json.loads((out / "dataset" / "classes.json").read_text())["classes"]]
    assert names == ["background", *(f"cluster-{i:03d}" for i in range(1, 5))]  # the finest level
    assert clusters["levels"] == [2, 4] and (out / "dataset" / "hierarchy.json").is_file()
    large = read_manifest(out / "large" / "tokens" / "000", Kind.LARGE_IMAGE)
    assert (out / "large" / "tokens" / "000" / "image.tif").is_file() and large["result"]["seam_score"] >= 0
    tiles = read_manifest(out / "tiles", Kind.TILES)["id"]
    assert read_manifest(out / "embeddings", Kind.EMBEDDINGS)["inputs"]["tiles"] == tiles  # the run's tiles
    assert not (out / "tiles-embed").exists()  # no overlap: the run's tiles serve the embeddings
    first = json.loads((out / "evaluation" / "metrics.json").read_text())["metrics"]
    trained = (out / "train" / "tokens" / "stats.jsonl").read_text()

    # killed after training: what came later is gone; the same command redoes only that
    for name in ("synthetic", "evaluation"):
        shutil.rmtree(out / name)
    (out / "report.html").unlink()
    code, text = run_cli(args, capsys)
    assert code == 0, text
    assert (out / "train" / "tokens" / "stats.jsonl").read_text() == trained  # not trained again
    again = json.loads((out / "evaluation" / "metrics.json").read_text())["metrics"]
    assert again == first  # the resumed run gives what the straight one gave
    log = json.loads((out / "run-log.json").read_text())
    assert len(log["invocations"]) == 2 and log["plan"]["clusters"] == 4

    # other settings into the same folder: refused by the first stage they change, unless --overwrite
    code, text = run_cli([*args, "--k", "3"], capsys)
    assert code == 2 and "clusters: holds another clusters artefact" in text and "--overwrite" in text
    code, text = run_cli([*args, "--k", "3", "--overwrite"], capsys)
    assert code == 0, text
    assert read_manifest(out / "clusters", Kind.CLUSTERS)["levels"] == [2, 3]  # fitted afresh, not resumed
    assert len(json.loads((out / "dataset" / "classes.json").read_text())["classes"]) == 4
