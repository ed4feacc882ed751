"""The whole evaluation through the CLI on tiny data: metrics, memorisation, TSTR, resume."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from histosynth.cli.main import cli


def toml_of(d, prefix=""):
    """A TOML file body for a nested dict of settings (tables after plain keys)."""
    plain = {k: v for k, v in d.items() if not isinstance(v, dict)}
    lines = [f"[{prefix}]"] if prefix and plain else []
    lines += [f"{k} = {json.dumps(v)}" for k, v in plain.items()]
    for k, v in d.items():
        if isinstance(v, dict):
            lines.append(toml_of(v, f"{prefix}.{k}" if prefix else k))
    return "\n".join(lines)


@pytest.fixture(scope="module")
def evaluated(toy, tiny_config, tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    (root / "cfg.toml").write_text(toml_of({**tiny_config, "detectors": ["pixels-32", "random-init-cnn"]}))
    args = ["evaluate", "--real", str(toy["real"].folder), "--synthetic", f"copy={toy['copy'].folder}",
            "--synthetic", f"shift={toy['shift'].folder}", "--out", str(root / "out"), "--config",
            str(root / "cfg.toml")]  # fmt: skip
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    return args, res.output, json.loads((root / "out" / "metrics.json").read_text()), root / "out"


def test_metrics_per_variant_and_detector(evaluated):
    _, output, m, out = evaluated
    assert "wrote" in output and "copy" in output
    assert m["variants"] == ["copy", "shift"] and set(m["metrics"]) == {"copy", "shift", "real-heldout"}
    for v in ("copy", "shift", "real-heldout"):
        for det in ("pixels-32", "random-init-cnn"):
            for key in ("fd", "fd_ci_low", "fd_ci_high", "kid", "precision", "recall", "density", "coverage"):
                assert isinstance(m["metrics"][v][f"{key}_{det}"], float), (v, det, key)
            assert m["metrics"][v][f"n_real_{det}"] == 24
    # the colour-shifted set is farther from the real data than a set of real images is
    for det in ("pixels-32", "random-init-cnn"):
        assert m["metrics"]["shift"][f"fd_{det}"] > m["metrics"]["copy"][f"fd_{det}"]
    assert (
        m["counts"]["real_train"] == 24
        and m["counts"]["real_heldout"] == 10
        and m["counts"]["synthetic_copy"] == 10
    )
    assert m["detectors"]["random-init-cnn"]["identity"] == "random-init-cnn-v1-seed0"
    assert m["preprocessing"]["pixels-32"]["resize"] == "pil-bicubic-float32-per-channel"
    assert {"torch", "numpy", "segmentation-models-pytorch"} <= set(m["versions"])
    assert m["timing"]["total"] > 0 and "tstr" in m["timing"]
    assert any(k.startswith("fd_class_") for k in m["metrics"]["copy"])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kind"] == "metrics" and manifest["inputs"]["synthetic:copy"]


def test_planted_copies_and_crop_copy_are_flagged(evaluated, toy):
    _, _, m, _ = evaluated
    planted = {toy["copy"].index.at[8, "id"], toy["copy"].index.at[9, "id"]}
    listed = {r["id"] for r in m["memorization"]["copy"] if r["space"] == "pixels-32"}
    assert planted <= listed
    assert m["metrics"]["copy"]["memo_offenders_pixels-32"] >= 2
    assert {r["nearest_train"] for r in m["memorization"]["copy"] if r["id"] in planted} == {
        "toy-00000",
        "toy-00005",
    }
    assert [r["id"] for r in m["crop_copies"]["copy"]] == [toy["copy"].index.at[1, "id"]]
    assert m["metrics"]["copy"]["crop_copies"] == 1 and m["metrics"]["copy"]["crops_checked"] == 10


def test_tstr_and_mask_fidelity_run_end_to_end(evaluated):
    _, _, m, out = evaluated
    names = [r["condition"] for r in m["tstr"]["table"]]
    assert names == [
        "real",
        "synthetic:copy",
        "real+synthetic:copy@1",
        "synthetic:shift",
        "real+synthetic:shift@1",
    ]
    for row in m["tstr"]["table"]:
        assert set(row["iou_mean"]) == {"background", "epithelium", "stroma", "lymphoid"}
        assert 0.0 <= row["miou_mean"] <= 1.0
    mix = m["tstr"]["table"][2]
    assert mix["n_real"] == 24 and mix["n_synthetic"] == 10
    assert 0.0 <= m["metrics"]["copy"]["mask_miou"] <= 1.0 and "mask_miou" in m["metrics"]["real-heldout"]
    assert len(m["segmenter_losses"]) == 2 and (out / "segmenter_real.safetensors").is_file()
    assert "hallucination_flagged" in m["metrics"]["shift"]


def test_rerun_resumes_and_other_config_is_refused(evaluated):
    args, _, m, out = evaluated
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0 and json.loads((out / "metrics.json").read_text()) == m
    from histosynth.cli.main import main

    with pytest.raises(SystemExit) as exc:
        main([*args, "--set", "bootstrap=3"])
    assert exc.value.code == 2


def test_user_errors_are_one_sentence(toy, tmp_path, capsys):
    from histosynth.cli.main import main

    base = ["evaluate", "--real", str(toy["real"].folder), "--out", str(tmp_path / "o")]
    with pytest.raises(SystemExit):
        main([*base, "--synthetic", f"real-heldout={toy['copy'].folder}"])
    assert "variant name" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*base, "--synthetic", f"a={toy['copy'].folder}", "--detector", "inception-v3"])
    assert "--detector-weights inception-v3=PATH" in capsys.readouterr().err
    assert np.isfinite(1.0)
