"""QuPath round trip: the GeoJSON that `sample --size` and the studio write, imported again with
`histosynth dataset --annotations`, gives back the label map it was made from, pixel for pixel."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from tests.conftest import build_bank, run_cli

from histosynth.data.patch_dataset import PatchDataset

# Keep every tile whatever its pixels: the tiny test model's images are not tissue-coloured.
ALL_TILES = ["--size", 64, "--min-tissue", 0, "--set", "tissue.method=fixed", "--set", "tissue.threshold=0",
             "--set", "tissue.max_brightness=256", "--set", "tissue.min_object_um2=0"]  # fmt: skip


def assert_qupath_layout(doc: dict) -> None:
    """QuPath's export layout: a FeatureCollection of annotation Features with ids and classifications."""
    assert doc["type"] == "FeatureCollection" and doc["features"]
    for f in doc["features"]:
        assert (
            f["type"] == "Feature"
            and len(f["id"]) == 36
            and f["geometry"]["type"] in ("Polygon", "MultiPolygon")
        )
        props = f["properties"]
        assert props["objectType"] == "annotation"
        assert isinstance(props["classification"]["name"], str) and len(props["classification"]["color"]) == 3


def reimport(image, annotations, classes, tmp_path, capsys, mpp: float | None = None) -> PatchDataset:
    """`tile` the image, then `dataset --annotations` with the folder holding its GeoJSON."""
    tiles, ds = tmp_path / "tiles", tmp_path / "reimported"
    extra = ["--mpp", mpp, "--patch-mpp", mpp] if mpp else []
    code, text = run_cli(["tile", image, "-o", tiles, *ALL_TILES, *extra], capsys)
    assert code == 0, text
    code, text = run_cli(["dataset", tiles, "-o", ds, "--annotations", annotations, "--classes", classes,
                          "--preset", "all"], capsys)  # fmt: skip
    assert code == 0, text
    return PatchDataset(ds)


def assert_maps_equal(ds: PatchDataset, label: np.ndarray) -> None:
    assert len(ds) > 0
    for i in range(len(ds)):
        row = ds.index.iloc[i]
        x0, y0, size = int(row["x0"]), int(row["y0"]), int(row["size0"])
        assert np.array_equal(ds.label(i), label[y0 : y0 + size, x0 : x0 + size]), (x0, y0)


def test_large_image_geojson_gives_back_labels_tif(tiny_checkpoint, tiny_dataset, tmp_path, capsys):
    import tifffile

    from histosynth.wsi.label_sources import load_label_source
    from histosynth.wsi.schemes import load_scheme

    bank = build_bank(tiny_dataset, tmp_path / "bank", split="all", min_area_frac=0.02)
    big = tmp_path / "big"
    code, text = run_cli(["sample", tiny_checkpoint, big, "--procedural", "noise", "--size", "192x128",
                          "--crop-bank", bank.folder, "--steps", 1], capsys)  # fmt: skip
    assert code == 0, text
    doc = json.loads((big / "image.geojson").read_text())
    assert_qupath_layout(doc)
    label = tifffile.imread(big / "labels.tif")
    # the whole map, rasterised from the GeoJSON at the pixel centres
    source = load_label_source(big / "image.geojson", load_scheme(big / "classes.json"), (192, 128))
    assert np.array_equal(source.label_region(0, 0, 192, 192)[:128], label)
    # and through the commands a user runs: the patches' maps are the label TIFF's pixels
    ds = reimport(big / "image.tif", big, big / "classes.json", tmp_path, capsys)
    assert_maps_equal(ds, label)


def test_studio_geojson_gives_back_the_painted_map(tiny_checkpoint, tiny_dataset, tmp_path, capsys):
    from histosynth.sample.synthesis import Synthesizer
    from histosynth.studio.session import StudioSession

    synth = Synthesizer.from_checkpoint(tiny_checkpoint)
    bank = build_bank(tiny_dataset, tmp_path / "bank", split="all", min_area_frac=0.02)
    session = StudioSession(synth, bank)
    painted = np.ones((64, 64), np.uint8)
    painted[:, 40:] = 3
    painted[10:30, 5:20] = 2  # an island
    painted[50:, :10] = 0  # background stays unannotated
    try:
        import base64

        job = session.submit({"label": base64.b64encode(painted.tobytes()).decode(), "steps": 1, "seed": 3,
                              "guidance_map": 1.0, "guidance_crops": 1.0,
                              "sampler": "ddim", "crops": []})  # fmt: skip
        deadline = time.monotonic() + 60
        while job.state not in ("done", "failed") and time.monotonic() < deadline:
            time.sleep(0.02)
        assert job.state == "done", job.error
        image, _ = session.result_file(job, "image.png")
        geojson, _ = session.result_file(job, "annotation.geojson")
    finally:
        session.close()
    folder = tmp_path / "downloads"  # saved side by side, as the page names them: job1.png, job1.geojson
    folder.mkdir()
    (folder / f"{job.id}.png").write_bytes(image)
    (folder / f"{job.id}.geojson").write_bytes(geojson)
    assert_qupath_layout(json.loads(geojson))
    synth.classes.save(tmp_path / "classes.json")
    ds = reimport(folder / f"{job.id}.png", folder, tmp_path / "classes.json", tmp_path, capsys, mpp=0.5)
    assert len(ds) == 1
    assert_maps_equal(ds, painted)


def test_qupath_05_derived_class_names_are_read(tmp_path):
    from histosynth.wsi.annotations import read_geojson

    feature = {"type": "Feature", "id": "2b5c7f6e-0000-4000-8000-000000000000",
               "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [10, 0], [10, 10], [0, 10], [0, 0]]]},
               "properties": {"objectType": "annotation", "classification": {"names": ["Tumor", "Positive"],
                                                                               "color": [200, 0, 0]}}}  # fmt: skip
    path = tmp_path / "a.geojson"
    path.write_text(json.dumps([feature]))
    (ann,) = read_geojson(path)
    assert ann.name == "Tumor: Positive" and ann.geometry.area == pytest.approx(100)
