"""`histosynth tile` + `histosynth dataset` end to end on the synthetic slide (known ground truth)."""

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image

from histosynth.cli.main import cli
from histosynth.data.composition import composition, is_heterogeneous
from histosynth.data.patch_dataset import PatchDataset

from ._helpers import truth_at, write_geojson


def _run(args, code=0):
    res = CliRunner().invoke(cli, [str(a) for a in args])
    assert res.exit_code == code, res.output + repr(res.exception)
    return res.output


@pytest.fixture(scope="module")
def annotated(synthetic_slide, tmp_path_factory):
    d = tmp_path_factory.mktemp("stage")
    (d / "ann").mkdir()
    write_geojson(synthetic_slide, d / "ann" / "syn.geojson")
    synthetic_slide.classes.save(d / "classes.json")
    _run(
        [
            "tile",
            synthetic_slide.path,
            "-o",
            d / "tiles",
            "--size",
            128,
            "--annotations",
            d / "ann",
            "--classes",
            d / "classes.json",
        ]
    )
    return d


def test_tiles_table_contract(annotated, synthetic_slide):
    tiles = pd.read_parquet(annotated / "tiles.parquet" if False else annotated / "tiles" / "tiles.parquet")
    assert list(tiles.columns[:10]) == [
        "slide",
        "slide_path",
        "x0",
        "y0",
        "size0",
        "size",
        "mpp",
        "level",
        "tissue",
        "split",
    ]
    assert {"slide_mpp", "fractions"} <= set(tiles.columns)
    assert (tiles["size0"] == 128).all() and (tiles["mpp"] == 0.5).all() and (tiles["tissue"] >= 0.5).all()
    manifest = json.loads((annotated / "tiles" / "manifest.json").read_text())
    assert manifest["kind"] == "tiles" and manifest["counts"]["tiles"] == len(tiles)
    assert (annotated / "tiles" / "qc" / "syn.png").is_file()
    # the tile stage's class fractions are the ground truth's
    for row in tiles.sample(10, random_state=0).itertuples():
        truth = truth_at(synthetic_slide, row.x0, row.y0, 128, 128)
        np.testing.assert_allclose(row.fractions, np.bincount(truth.ravel(), minlength=4) / truth.size)


def test_dataset_maps_exact_and_rule_keeps_exactly_the_right_patches(annotated, synthetic_slide):
    out = annotated / "ds"
    text = _run(
        [
            "dataset",
            annotated / "tiles",
            "-o",
            out,
            "--annotations",
            annotated / "ann",
            "--classes",
            annotated / "classes.json",
            "--max-per-slide",
            0,
        ]
    )
    assert "1 slides done" in text
    ds = PatchDataset(out)
    tiles = pd.read_parquet(annotated / "tiles" / "tiles.parquet")
    # which tiles should be kept, from the ground truth alone
    expected = set()
    for row in tiles.itertuples():
        truth = truth_at(synthetic_slide, row.x0, row.y0, 128, 128)
        if is_heterogeneous(composition(np.bincount(truth.ravel(), minlength=4))):
            expected.add((row.x0, row.y0))
    kept = set(zip(ds.index["x0"], ds.index["y0"], strict=True))
    assert kept == expected and len(kept) >= 10
    for i in range(len(ds)):
        row = ds.index.iloc[i]
        truth = truth_at(synthetic_slide, row.x0, row.y0, 128, 128)
        np.testing.assert_array_equal(ds.label(i), truth)
        np.testing.assert_allclose(row["fractions"], np.bincount(truth.ravel(), minlength=4) / truth.size)
        assert ds.image(i).shape == (128, 128, 3)
    assert {"tissue", "composition", "homogeneous", "bin"} <= set(ds.index.columns)
    assert (out / "qc" / "syn.png").is_file()
    # resume: nothing is redone
    again = _run(
        [
            "dataset",
            annotated / "tiles",
            "-o",
            out,
            "--annotations",
            annotated / "ann",
            "--classes",
            annotated / "classes.json",
            "--max-per-slide",
            0,
        ]
    )
    assert "0 slides done, 1 already done" in again


def test_dataset_workers_and_split_file(annotated, tmp_path):
    split = tmp_path / "split.csv"
    split.write_text("syn,test\n")
    _run(
        [
            "dataset",
            annotated / "tiles",
            "-o",
            tmp_path / "ds",
            "--annotations",
            annotated / "ann",
            "--classes",
            annotated / "classes.json",
            "--max-per-slide",
            7,
            "--workers",
            2,
            "--split-file",
            split,
            "--set",
            "chunk=3",
        ]
    )
    ds = PatchDataset(tmp_path / "ds")
    assert len(ds) == 7 and set(ds.index["split"]) == {"test"}
    one = tmp_path / "one"
    _run(
        [
            "dataset",
            annotated / "tiles",
            "-o",
            one,
            "--annotations",
            annotated / "ann",
            "--classes",
            annotated / "classes.json",
            "--max-per-slide",
            7,
            "--split-file",
            split,
            "--png",
            "stored",
        ]
    )
    assert (
        PatchDataset(one).index["id"].tolist() == ds.index["id"].tolist()
    )  # same choice whatever the workers
    # ... and the same pixels whatever the PNG encoding (the workers' run wrote the default, "fast")
    same = PatchDataset(one)
    assert all(
        (same.image(i) == ds.image(i)).all() and (same.label(i) == ds.label(i)).all() for i in range(7)
    )


def test_bad_slides_reported_and_batch_completes(synthetic_slide, tmp_path):
    (tmp_path / "broken.svs").write_bytes(b"II*\x00garbage")
    Image.fromarray(np.full((600, 800, 3), 244, np.uint8)).save(tmp_path / "glass.png")
    res = CliRunner().invoke(
        cli,
        [
            "tile",
            str(synthetic_slide.path),
            str(tmp_path / "broken.svs"),
            str(tmp_path / "glass.png"),
            "--mpp",
            "0.5",
            "-o",
            str(tmp_path / "t"),
        ],
    )
    assert res.exit_code == 1, res.output
    assert "1 slides done, 0 already done, 2 failed" in res.output
    assert "failed: broken:" in res.output and "failed: glass:" in res.output and "no tissue" in res.output
    manifest = json.loads((tmp_path / "t" / "manifest.json").read_text())
    assert {f["slide"] for f in manifest["failed"]} == {"broken", "glass"}
    assert set(pd.read_parquet(tmp_path / "t" / "tiles.parquet")["slide"]) == {"syn"}


def test_bad_annotations_fail_their_slide_only(synthetic_slide, tmp_path):
    import shutil

    from histosynth.samples import write_synthetic_slide

    other = write_synthetic_slide(tmp_path / "s" / "other.tif", size=(1024, 1024), seed=5)
    shutil.copy(synthetic_slide.path, tmp_path / "s" / "syn.tif")
    _run(["tile", tmp_path / "s", "-o", tmp_path / "t", "--size", 128])
    ann = tmp_path / "ann"
    ann.mkdir()
    write_geojson(other, ann / "other.geojson")
    (ann / "syn.geojson").write_text(
        json.dumps(
            {
                "type": "Feature",
                "properties": {"classification": {"name": "stroma"}},
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [[[0, 0], [9000, 0], [9000, 50], [0, 50], [0, 0]]],
                },
            }
        )
    )
    synthetic_slide.classes.save(tmp_path / "classes.json")
    res = CliRunner().invoke(
        cli,
        [
            "dataset",
            str(tmp_path / "t"),
            "-o",
            str(tmp_path / "ds"),
            "--annotations",
            str(ann),
            "--classes",
            str(tmp_path / "classes.json"),
        ],
    )
    assert res.exit_code == 1, res.output
    assert "failed: syn:" in res.output and "outside the 2048×1536 px slide" in res.output
    ds = PatchDataset(tmp_path / "ds")
    assert set(ds.index["slide"]) == {"other"} and len(ds) > 0


def test_camelyon_xml_with_fill(synthetic_slide, tmp_path):
    """Tumour outlines only (ASAP XML, group _0); other tissue is filled as `normal`."""
    from ._helpers import grid_polygons

    geom = grid_polygons(synthetic_slide)[1]
    parts = list(getattr(geom, "geoms", [geom]))
    xml = ["<ASAP_Annotations><Annotations>"]
    for i, p in enumerate(parts):
        coords = "".join(
            f'<Coordinate Order="{j}" X="{x}" Y="{y}"/>' for j, (x, y) in enumerate(p.exterior.coords[:-1])
        )
        xml.append(
            f'<Annotation Name="A{i}" Type="Polygon" PartOfGroup="_0">'
            f"<Coordinates>{coords}</Coordinates></Annotation>"
        )
    xml.append("</Annotations></ASAP_Annotations>")
    (tmp_path / "ann").mkdir()
    (tmp_path / "ann" / "syn.xml").write_text("".join(xml))
    _run(["tile", synthetic_slide.path, "-o", tmp_path / "t", "--size", 128])
    _run(
        [
            "dataset",
            tmp_path / "t",
            "-o",
            tmp_path / "ds",
            "--annotations",
            tmp_path / "ann",
            "--classes",
            "camelyon16",
        ]
    )
    ds = PatchDataset(tmp_path / "ds")
    assert ds.classes.names == ["background", "normal", "tumour"] and len(ds) > 0
    for i in range(len(ds)):
        row = ds.index.iloc[i]
        truth = truth_at(synthetic_slide, row.x0, row.y0, 128, 128)
        lab = ds.label(i)
        np.testing.assert_array_equal(lab == 2, truth == 1)  # tumour exactly where outlined
        tissue_truth = truth > 0
        agree = ((lab == 1) == (tissue_truth & (truth != 1))).mean()
        assert agree > 0.9  # normal = tissue by pixel saturation, outside the outlines


def test_label_mask_dataset(synthetic_slide, tmp_path):
    (tmp_path / "ann").mkdir()
    Image.fromarray(synthetic_slide.label()[::2, ::2]).save(tmp_path / "ann" / "syn_mask.png")
    synthetic_slide.classes.save(tmp_path / "classes.json")
    _run(["tile", synthetic_slide.path, "-o", tmp_path / "t", "--patch-mpp", 1.0, "--size", 128])
    _run(
        [
            "dataset",
            tmp_path / "t",
            "-o",
            tmp_path / "ds",
            "--annotations",
            tmp_path / "ann",
            "--classes",
            tmp_path / "classes.json",
            "--preset",
            "balanced",
        ]
    )
    ds = PatchDataset(tmp_path / "ds")
    assert len(ds) > 0 and (ds.index["mpp"] == 1.0).all() and (ds.index["size0"] == 256).all()
    for i in range(len(ds)):
        row = ds.index.iloc[i]
        np.testing.assert_array_equal(ds.label(i), truth_at(synthetic_slide, row.x0, row.y0, 256, 128))


def test_user_errors_are_one_line(tmp_path, synthetic_slide, capsys):
    from histosynth.cli.main import main

    _run(["tile", synthetic_slide.path, "-o", tmp_path / "t", "--size", 512])
    with pytest.raises(SystemExit) as exc:
        main(
            [
                "dataset",
                str(tmp_path / "t"),
                "-o",
                str(tmp_path / "d"),
                "--annotations",
                str(tmp_path),
                "--classes",
                "camelyon16",
            ]
        )
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "no annotation file matches any slide" in err and err.count("\n") == 1


def test_tile_id_follows_the_slides_content_not_their_location(synthetic_slide, tmp_path):
    import shutil

    from histosynth.samples import write_synthetic_slide

    args = ["--size", "128", "-o", str(tmp_path / "t")]
    first = CliRunner().invoke(cli, ["tile", str(synthetic_slide.path), *args])
    assert first.exit_code == 0, first.output
    ident = json.loads((tmp_path / "t" / "manifest.json").read_text())["id"]
    moved = tmp_path / "elsewhere" / synthetic_slide.path.name  # a re-cloned repository, a moved disk
    moved.parent.mkdir()
    shutil.copy2(synthetic_slide.path, moved)
    again = CliRunner().invoke(cli, ["tile", str(moved), *args])
    assert again.exit_code == 0 and "already done" in again.output, again.output
    assert json.loads((tmp_path / "t" / "manifest.json").read_text())["id"] == ident
    other = write_synthetic_slide(tmp_path / "other" / synthetic_slide.path.name, size=(1024, 768), seed=9)
    changed = CliRunner().invoke(cli, ["tile", str(other.path), *args])  # same name, other pixels
    assert changed.exit_code != 0 and "holds another tiles artefact" in f"{changed.output}{changed.exception}"
