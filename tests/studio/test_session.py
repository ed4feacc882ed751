import base64
import json

import numpy as np
import pytest

from histosynth.data.classmap import ClassMap, ClassMapError
from histosynth.studio.session import MapSource, StudioSession, check_same_classes
from histosynth.studio.uploads import UploadError
from tests.studio.conftest import painted_label


def body(label=None, **over):
    label = painted_label() if label is None else label
    out = dict(label=base64.b64encode(label.tobytes()).decode(), crops=[], guidance_map=1.5,
               guidance_crops=2.0, steps=2, sampler="euler", seed=7)  # fmt: skip
    out.update(over)
    return out


def test_config_lists_classes_samplers_and_limits(session, crop_bank):
    cfg = session.config()
    assert cfg["size"] == 64 and cfg["background"] == 0 and cfg["samplers"] == ["ddim", "euler"]
    assert [c["name"] for c in cfg["classes"]] == crop_bank.classes.names
    assert sum(c["crops"] for c in cfg["classes"]) == len(crop_bank)
    assert cfg["maps"] == 4 and cfg["defaults"]["sampler"] == "ddim"


def test_crop_listing_and_pngs(session, crop_bank):
    listing = session.crop_listing(1, 0, 2)
    assert listing["total"] == int((crop_bank.index["class_id"] == 1).sum()) and len(listing["items"]) == 2
    item = listing["items"][0]
    assert set(item) == {"id", "slide", "patch", "box"}
    assert session.crop_png(item["id"]).startswith(b"\x89PNG")
    assert session.crop_png("../manifest") is None


def test_submit_resolves_crops_and_records_provenance(session, crop_bank, generator):
    c1 = session.crop_listing(1)["items"][0]["id"]
    c3 = session.crop_listing(3)["items"][0]["id"]
    job = session.submit(body(crops=[{"class_id": 1, "crop": c1}, {"class_id": 3, "crop": c3}]))
    assert session.queue.wait(job, 10) and job.state == "done"
    # class 3 is not on the map: its crop is not passed to the model
    assert [c.class_id for c in generator.calls[0]["crops"]] == [1]
    assert generator.calls[0]["sampler"] == "euler" and generator.calls[0]["seed"] == 7
    status = session.job_status(job)
    assert status["classes"] == [1, 2] and status["size"] == [64, 64] and status["state"] == "done"
    prov = json.loads(session.result_file(job, "provenance.json")[0])
    assert json.loads(prov["crop_sources"][0]["source"])["crop"] == c1 and prov["crop_bank"] == crop_bank.id
    gj = json.loads(session.result_file(job, "annotation.geojson")[0])
    names = {f["properties"]["classification"]["name"] for f in gj["features"]}
    assert names == {crop_bank.classes.names[1], crop_bank.classes.names[2]}
    assert session.result_file(job, "nope.txt") is None


@pytest.mark.parametrize(
    ("over", "match"),
    [
        ({"sampler": "plms"}, "sampler 'plms'"),
        ({"steps": 0}, "steps must lie between 1 and 1000"),
        ({"guidance_map": -1}, "map guidance scale"),
        ({"guidance_crops": 99}, "crop guidance scale"),
        ({"seed": -3}, "the seed"),
        ({"crops": [{"class_id": 1, "crop": "nope"}]}, "unknown or its upload has expired"),
        ({"crops": [{"class_id": 9, "crop": "x"}]}, "class id 9 is not a class"),
        ({"crops": [{"class_id": 1, "crop": "upload-1-x"}] * 9}, "at most 8 crops"),
    ],
)
def test_bad_requests_are_one_sentence(session, over, match):
    with pytest.raises(UploadError, match=match):
        session.submit(body(**over))


def test_crop_of_other_class_is_refused(session):
    c2 = session.crop_listing(2)["items"][0]["id"]
    with pytest.raises(UploadError, match="shows class 2, not class 1"):
        session.submit(body(crops=[{"class_id": 1, "crop": c2}]))


def test_maps_resize_and_class_checks(tiny_dataset, crop_bank):
    maps = MapSource(tiny_dataset, "test", 32)
    assert len(maps) == 4 and maps.label(0).shape == (32, 32)
    assert {"index", "id", "slide"} == set(maps.listing()[0])
    with pytest.raises(IndexError, match="no held-out map 9"):
        maps.label(9)
    renamed = ClassMap.from_names(["background", "tumour", "stroma", "fat"])
    with pytest.raises(ClassMapError, match="class 1 is 'tumour' there"):
        check_same_classes(crop_bank.classes, renamed, "x")

    class Small:
        classes, image_size, samplers = ClassMap.from_names(["bg", "a"]), 64, ["ddim"]

    with pytest.raises(ClassMapError, match="crop bank"):
        StudioSession(Small(), crop_bank)


def test_uploaded_crop_is_used(session, generator):
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.full((16, 16, 3), 200, np.uint8)).save(buf, "PNG")
    up = session.uploads.add(buf.getvalue(), "mine.png", 2)
    job = session.submit(body(crops=[{"class_id": 2, "crop": up.id}]))
    assert session.queue.wait(job, 10)
    crop = generator.calls[0]["crops"][0]
    assert crop.class_id == 2 and json.loads(crop.source)["upload"] == "mine.png"
    assert session.crop_png(up.id).startswith(b"\x89PNG")
