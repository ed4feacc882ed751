"""Plain folders of PNG images as evaluation inputs, and the one-call folder comparison."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from tests.conftest import run_cli

from histosynth.evaluate.folders import ImageFolder, compare_folders, open_images


@pytest.fixture(scope="module")
def folders(toy, tmp_path_factory):
    """Plain copies of the toy datasets' images: A (real, all 34) and B (the colour-shifted set)."""
    root = tmp_path_factory.mktemp("plain")
    shutil.copytree(toy["real"].folder / "images", root / "A")
    shutil.copytree(toy["shift"].folder / "images", root / "B" / "nested")  # found recursively
    return root / "A", root / "B"


def test_evaluate_two_plain_folders_of_pngs(folders, tmp_path, capsys, monkeypatch):
    """The command as a user types it, nothing more: `histosynth evaluate --real A --synthetic x=B`."""
    a, b = folders
    monkeypatch.chdir(tmp_path)
    code, text = run_cli(["evaluate", "--real", a, "--synthetic", f"x={b}"], capsys)
    assert code == 0, text
    out = tmp_path / "histosynth-evaluation"
    assert "wrote histosynth-evaluation/metrics.json" in text
    m = json.loads((out / "metrics.json").read_text())
    for det in ("handcrafted", "random-init-cnn"):  # the default detectors
        for key in ("fd", "fd_ci_low", "kid", "precision", "recall", "density", "coverage"):
            assert isinstance(m["metrics"]["x"][f"{key}_{det}"], float), (det, key)
    assert m["metrics"]["x"]["memo_offending_images"] >= 0 and "mask_miou" not in m["metrics"]["x"]
    assert m["counts"]["real_train"] + m["counts"]["real_heldout"] == 34 and m["counts"]["synthetic_x"] == 10
    assert m["classes"] == [] and m["real"]["id"].startswith("images-")
    assert len(m["notes"]) == 1 and "plain image folder without label maps" in m["notes"][0]
    assert f"note: {m['notes'][0]}" in text
    assert not (out / "segmenter_real.safetensors").exists()  # nothing map-based was trained


def test_plain_variant_next_to_a_patch_dataset(toy, folders, tiny_config, tmp_path):
    """Mask fidelity still runs for the real held-out images and mapped variants, not for the folder."""
    from histosynth.config import build_config
    from histosynth.evaluate.config import EvaluateConfig
    from histosynth.evaluate.suite import read_metrics, run

    cfg = build_config(EvaluateConfig, overrides=[f"{k}={json.dumps(v)}" for k, v in tiny_config.items()
                                                  if k != "tstr"] + ["tstr.enabled=false", "tstr.segmenter.steps=2",
                                                  "tstr.segmenter.encoder_depth=3", "tstr.segmenter.crop=32"])  # fmt: skip
    result = run(
        {"plain": folders[1], "mapped": toy["shift"].folder}, tmp_path / "e", cfg, real=toy["real"].folder
    )
    m = read_metrics(result.folder)
    assert "mask_miou" in m["metrics"]["mapped"] and "mask_miou" in m["metrics"]["real-heldout"]
    assert "mask_miou" not in m["metrics"]["plain"]
    assert m["notes"] == [f"mask fidelity, TSTR, per-class FD and crop copies were skipped for plain ({folders[1]}): "
                          "a plain image folder has no label maps"]  # fmt: skip
    # the same images give the same distribution metrics, folder or dataset
    assert m["metrics"]["plain"]["fd_pixels-32"] == pytest.approx(
        m["metrics"]["mapped"]["fd_pixels-32"], rel=1e-9
    )


def test_compare_folders_agrees_with_clean_fids_formula(tmp_path, toy):
    """FD of two folders equals the reference computation clean-fid makes from the same features
    (numpy mean and covariance, scipy's sqrtm of Σ₁Σ₂: cleanfid.fid.frechet_distance)."""
    from PIL import Image
    from scipy import linalg

    from histosynth.evaluate.detectors import build_detector
    from histosynth.evaluate.features import clean_resize, read_png_rgb
    from histosynth.evaluate.toy import shift_colour, toy_patches

    imgs = {
        "a": toy_patches(60, 48, seed=1)[0],
        "b": shift_colour(toy_patches(50, 48, seed=2)[0], (9, -5, 3)),
    }
    for name, batch in imgs.items():
        (tmp_path / name).mkdir()
        for i, im in enumerate(batch):
            Image.fromarray(im).save(tmp_path / name / f"{i:03d}.png")
    a, b = tmp_path / "a", tmp_path / "b"
    got = compare_folders(a, b, "handcrafted", workers=0)  # 42-d: more images than dimensions
    det = build_detector("handcrafted")
    feats = [np.asarray(det.features(np.stack([clean_resize(read_png_rgb(p), det.input_size)
                                               for p in sorted(f.glob("*.png"))])), np.float64)
             for f in (a, b)]  # fmt: skip
    mu1, mu2 = (np.mean(f, axis=0) for f in feats)
    s1, s2 = (np.cov(f, rowvar=False) for f in feats)
    covmean = linalg.sqrtm(s1.dot(s2)).real
    ref = float((mu1 - mu2).dot(mu1 - mu2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))
    assert abs(got["fd"] - ref) / ref < 1e-3, (got["fd"], ref)
    assert (got["n_a"], got["n_b"]) == (60, 50) and 0 <= got["precision"] <= 1 and "kid" in got
    # a patch dataset and the folder of its images are the same images
    ds = compare_folders(toy["real"].folder, b, "handcrafted", workers=0)
    plain = compare_folders(toy["real"].folder / "images", b, "handcrafted", workers=0)
    assert ds["fd"] == plain["fd"] and ds["kid"] == plain["kid"]


def test_folder_identity_follows_content_not_location(folders, tmp_path):
    a = ImageFolder.open(folders[0])
    moved = shutil.copytree(folders[0], tmp_path / "elsewhere")
    assert ImageFolder.open(moved).id == a.id
    first = sorted(moved.glob("*.png"))[0]
    from PIL import Image

    img = np.asarray(Image.open(first)).copy()
    img[0, 0, 0] ^= 1
    Image.fromarray(img).save(first)
    assert ImageFolder.open(moved).id != a.id


def test_what_is_not_a_folder_of_pngs(tmp_path, tiny_dataset):
    from histosynth.artifacts import ArtifactError

    (tmp_path / "jpegs").mkdir()
    (tmp_path / "jpegs" / "a.jpg").write_bytes(b"\xff\xd8\xff")
    with pytest.raises(ArtifactError, match="neither a histosynth dataset .* nor a folder of PNG images"):
        open_images(tmp_path / "jpegs")
    mixed = shutil.copytree(tiny_dataset / "images", tmp_path / "mixed")
    (mixed / "x.jpeg").write_bytes(b"\xff\xd8\xff")
    (mixed / ".hidden.png").write_bytes(b"not read")
    folder = open_images(mixed)
    assert (
        len(folder) == 12 and folder.ignored == ("x.jpeg",) and "1 image file(s) not in PNG" in folder.note()
    )
    unfinished = shutil.copytree(tiny_dataset, tmp_path / "unfinished")
    (unfinished / "manifest.json").unlink()
    with pytest.raises(ArtifactError, match="no manifest.json; the stage that writes it has not finished"):
        open_images(unfinished)
