"""Bad inputs through the CLI: one sentence naming the file and the fault; the batch goes on.

A batch fault (one bad slide or annotation among good ones) exits 1 after finishing the
others, with a ``failed: <slide>: <file>: <reason>`` line each; a fault that stops the command
(a bad config, dataset or checkpoint) exits 2 with ``histosynth: error: <file>: <reason>``.
Faults tested elsewhere: hostile XML and malformed files at parser level
(tests/wsi/test_annotations.py), pickles (test_safe_io.py), override parsing (test_fuzz_config.py).
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from histosynth.cli.main import main
from histosynth.data.patch_dataset import PatchDataset
from histosynth.samples import write_synthetic_slide

from ._bad_files import blank_slide, feature, png_header_only, slide_without_mpp, truncate, write_json


def _cli(args, capsys):
    """Run the CLI in-process: (exit code, stdout + stderr)."""
    code = 0
    try:
        main([str(a) for a in args])
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out + out.err


def _failures(text: str) -> dict[str, str]:
    """Slide → its ``failed:`` line of a batch summary."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip().startswith("failed: ")]
    return {ln.split(":")[1].strip(): ln for ln in lines}


def _fatal(code: int, text: str, *needles: str) -> None:
    """Exit 2 with exactly one ``histosynth: error:`` line holding every needle, no traceback."""
    assert code == 2 and "Traceback" not in text, text
    errors = [ln for ln in text.splitlines() if ln.startswith("histosynth: error: ")]
    assert len(errors) == 1, text
    for needle in needles:
        assert needle in errors[0], (needle, errors[0])


SLIDE_FAULTS = {  # slide → (file name, what the sentence says)
    "truncated": ("truncated.tif", "the file is truncated"),
    "notaslide": ("notaslide.svs", "not a readable TIFF"),
    "nompp": ("nompp.tif", "no resolution (mpp)"),
    "glass": ("glass.tif", "no tissue found"),
    "huge": ("huge.png", "too large"),
}


def test_bad_slides_are_reported_and_the_batch_completes(tmp_path, capsys):
    d = tmp_path / "slides"
    d.mkdir()
    good = write_synthetic_slide(d / "good.tif", size=(1024, 768), seed=1)
    truncate(good.path, d / "truncated.tif")
    (d / "notaslide.svs").write_text("a note that is not a slide\n")
    slide_without_mpp(d / "nompp.tif")
    blank_slide(d / "glass.tif")
    png_header_only(d / "huge.png", 60_000, 60_000)
    code, text = _cli(["tile", d, "-o", tmp_path / "t", "--size", 64], capsys)
    assert code == 1 and "Traceback" not in text, text
    failed = _failures(text)
    assert failed.keys() == SLIDE_FAULTS.keys(), text
    for slide, (name, what) in SLIDE_FAULTS.items():
        assert name in failed[slide] and what in failed[slide], failed[slide]
    assert set(pd.read_parquet(tmp_path / "t" / "tiles.parquet")["slide"]) == {"good"}
    manifest = json.loads((tmp_path / "t" / "manifest.json").read_text())
    assert {f["slide"] for f in manifest["failed"]} == set(SLIDE_FAULTS)


ANNOTATION_FAULTS = {  # slide → (annotation file, what the sentence says)
    "malformed": ("malformed.geojson", "not valid JSON"),
    "cut": ("cut.geojson", "not valid JSON"),
    "badgeom": ("badgeom.geojson", "malformed geometry"),
    "entity": ("entity.xml", "refused to parse XML that uses a DOCTYPE, entities"),
    "bomb": ("bomb.xml", "refused to parse XML that uses a DOCTYPE, entities"),
    "outside": ("outside.geojson", "outside the 1024×768 px slide"),
    "unknownids": ("unknownids_mask.png", "label values [9] are not classes"),
    "wrongsize": ("wrongsize_mask.png", "not aligned with the 1024×768 px slide"),
}


@pytest.fixture(scope="module")
def annotated(tmp_path_factory):
    """One slide copied under many names, each with its own (mostly broken) annotation."""
    from tests.wsi._helpers import FIXTURES, write_geojson

    root = tmp_path_factory.mktemp("bad_ann")
    s, a = root / "s", root / "ann"
    s.mkdir(), a.mkdir()
    slide = write_synthetic_slide(s / "good.tif", size=(1024, 768), seed=1)
    slide.classes.save(root / "classes.json")
    for name in [*ANNOTATION_FAULTS, "selfint"]:
        shutil.copy(slide.path, s / f"{name}.tif")
    text = write_geojson(slide, a / "good.geojson").read_text()
    (a / "malformed.geojson").write_text("{not json")
    (a / "cut.geojson").write_text(text[: len(text) // 2])  # a truncated download
    write_json(a / "badgeom.geojson", feature("not coordinates"))
    shutil.copy(FIXTURES / "external_entity.xml", a / "entity.xml")
    shutil.copy(FIXTURES / "entity_expansion.xml", a / "bomb.xml")
    write_json(a / "outside.geojson", feature([[[0, 0], [5000, 0], [5000, 50], [0, 50], [0, 0]]]))
    # a bow-tie: repaired (shapely make_valid), so this slide succeeds
    write_json(a / "selfint.geojson", feature([[[0, 0], [1024, 768], [1024, 0], [0, 768], [0, 0]]]))
    mask = slide.label()[::2, ::2].copy()
    mask[100:300, 150:350] = 9  # an id no class has, over tissue that becomes patches
    Image.fromarray(mask).save(a / "unknownids_mask.png")
    Image.fromarray(slide.label()[:500, ::2]).save(a / "wrongsize_mask.png")
    return root


def test_bad_annotations_are_reported_and_the_batch_completes(annotated, tmp_path, capsys):
    r = annotated
    code, _ = _cli(["tile", r / "s", "-o", tmp_path / "t", "--size", 64], capsys)
    assert code == 0
    args = ["dataset", tmp_path / "t", "-o", tmp_path / "ds", "--annotations", r / "ann", "--classes",
            r / "classes.json", "--set", "sampling.max_per_slide=8"]  # fmt: skip
    code, text = _cli(args, capsys)
    assert code == 1 and "Traceback" not in text, text
    failed = _failures(text)
    assert failed.keys() == ANNOTATION_FAULTS.keys(), text
    for slide, (name, what) in ANNOTATION_FAULTS.items():
        assert name in failed[slide] and what in failed[slide], failed[slide]
    manifest = json.loads((tmp_path / "ds" / "manifest.json").read_text())
    assert set(manifest["slides"]) == {"good", "selfint"}  # the bow-tie was repaired, not refused
    assert set(PatchDataset(tmp_path / "ds").index["slide"]) <= {"good", "selfint"}


def test_bad_config_is_one_sentence(tmp_path, capsys, synthetic_slide):
    base = ["tile", synthetic_slide.path, "-o", tmp_path / "t"]
    _fatal(*_cli([*base, "--set", "nope=1"], capsys), "unknown key 'nope'")
    _fatal(*_cli([*base, "--set", "size=big"], capsys), "size", "big")
    (tmp_path / "bad.toml").write_text("size = 64\nthreshold_of_doom = 2\n")
    _fatal(*_cli([*base, "--config", tmp_path / "bad.toml"], capsys), "bad.toml", "threshold_of_doom")
    (tmp_path / "typed.toml").write_text('size = "sixty-four"\n')
    _fatal(*_cli([*base, "--config", tmp_path / "typed.toml"], capsys), "typed.toml", "size")
    assert not (tmp_path / "t").exists()  # nothing claimed before the config is valid


@pytest.fixture
def dataset_copy(tiny_dataset, tmp_path):
    return shutil.copytree(tiny_dataset, tmp_path / "ds")


TRAIN_ARGS = ["--steps", 1, "--workers", 0, "--threads", 1, "--set", "model.backbone=test", "--set",
              "model.codec=identity-p2", "--set", "optim.batch_size=4", "--set", "run.grid_rows=2"]  # fmt: skip


def _set_index(folder, **columns):
    index = pd.read_parquet(folder / "index.parquet")
    for col, (row, value) in columns.items():
        index.loc[row, col] = value
    index.to_parquet(folder / "index.parquet")


def test_dataset_with_a_missing_file(dataset_copy, tmp_path, capsys):
    (dataset_copy / PatchDataset(dataset_copy).index.at[5, "map"]).unlink()
    code, text = _cli(["train", dataset_copy, tmp_path / "run", *TRAIN_ARGS], capsys)
    _fatal(code, text, str(dataset_copy), "missing", "maps/")


def test_dataset_extra_files_are_ignored(dataset_copy):
    (dataset_copy / "images" / "stray.png").write_bytes(b"not even a png")
    (dataset_copy / "notes.txt").write_text("left by a person")
    ds = PatchDataset(dataset_copy)
    assert len(ds) == 12 and ds.image(11).shape == (64, 64, 3)  # never listed, never read


def test_index_pointing_outside_its_folder(dataset_copy, tmp_path, capsys):
    _set_index(dataset_copy, image=(0, "../../../etc/passwd"))
    code, text = _cli(["train", dataset_copy, tmp_path / "run", *TRAIN_ARGS], capsys)
    _fatal(code, text, "index.parquet", "points outside the dataset", "../../../etc/passwd")


@pytest.mark.parametrize(
    ("fault", "message"), [("huge", "too large to decode safely"), ("truncated", "cannot decode the image")]
)
def test_dataset_image_that_cannot_be_decoded_safely(dataset_copy, tmp_path, capsys, fault, message):
    victim = dataset_copy / PatchDataset(dataset_copy).index.at[0, "image"]  # a train row the grid shows
    if fault == "huge":
        png_header_only(victim, 50_000, 50_000)
    else:
        truncate(victim, victim, 0.4)
    code, text = _cli(["train", dataset_copy, tmp_path / "run", *TRAIN_ARGS], capsys)
    _fatal(code, text, victim.name, message)


def test_checkpoint_whose_config_does_not_match(tiny_checkpoint, tiny_dataset, tmp_path, capsys):
    run = shutil.copytree(tiny_checkpoint, tmp_path / "run")
    cfg_path = run / "model" / "denoiser" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["num_classes"] += 3  # the weights were trained for fewer classes
    cfg_path.write_text(json.dumps(cfg))
    code, text = _cli(["sample", run, tmp_path / "syn", "--crop-bank", tmp_path / "nobank", "-n", 1,
                       "--maps-from", tiny_dataset, "--set", "split=all"], capsys)  # fmt: skip
    _fatal(code, text, str(run / "model"), "config does not match its weights")
    # resuming a run folder with other settings is refused, not mixed
    code, text = _cli(["train", tiny_dataset, run, *TRAIN_ARGS, "--lr", 0.5], capsys)
    _fatal(code, text, str(run), "holds another")


def test_large_slide_image_refused_before_decoding(tmp_path, capsys):
    png_header_only(tmp_path / "scan.png", 70_000, 70_000)
    code, text = _cli(["tile", tmp_path / "scan.png", "--mpp", 0.5, "-o", tmp_path / "t"], capsys)
    assert code == 1 and "Traceback" not in text
    assert "scan.png" in _failures(text)["scan"] and "too large" in text
    assert np.iinfo(np.int64).max  # keeps numpy imported for the slide helpers' types


def test_class_map_that_does_not_fit_the_model(tiny_checkpoint, tmp_path):
    from histosynth.data.classmap import ClassMapError
    from histosynth.sample.synthesis import Synthesizer

    synth = Synthesizer.from_checkpoint(tiny_checkpoint)
    label = np.zeros((64, 64), np.uint8)
    label[:, 32:] = 9  # the tiny model knows 4 classes
    with pytest.raises(ClassMapError, match="class id 9, but the model knows ids 0..3"):
        synth.generate_batch([label], None, [0], steps=1)
    run = shutil.copytree(tiny_checkpoint, tmp_path / "run")
    names = [{"id": i, "name": f"c{i}", "color": [i, i, i]} for i in range(7)]
    for path in run.rglob("classes.json"):  # the run's and its exported model's
        write_json(path, {"classes": names})
    with pytest.raises(
        ClassMapError, match=r"classes.json: class ids go up to 6, but the model .* knows ids 0..3"
    ):
        Synthesizer.from_checkpoint(run)
