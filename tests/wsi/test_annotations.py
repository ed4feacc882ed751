import numpy as np
import pytest

from histosynth.data.classmap import ClassMapError
from histosynth.errors import USER_ERRORS, UnsafeFileError
from histosynth.samples import SYNTHETIC_CLASSES
from histosynth.wsi.annotations import AnnotationError, read_asap_xml, read_geojson, read_polygons
from histosynth.wsi.label_sources import PolygonLabels, load_label_source
from histosynth.wsi.schemes import SCHEMES, LabelScheme, load_scheme

from ._helpers import FIXTURES

SLIDE = (1024, 768)
SYN = LabelScheme(SYNTHETIC_CLASSES)


def test_asap_xml_groups_order_and_types():
    anns = read_asap_xml(FIXTURES / "camelyon_like.xml")
    assert [a.name for a in anns] == ["_0", "_2", "Tumor"]  # the Dot annotation carries no area
    assert anns[0].geometry.bounds == (100, 100, 400, 300)
    assert anns[1].geometry.bounds == (200, 150, 250, 250)  # vertices joined in Order, not file order
    assert anns[1].geometry.area == 50 * 100


def test_camelyon_exclusion_paints_over_tumour():
    src = load_label_source(FIXTURES / "camelyon_like.xml", SCHEMES["camelyon16"], SLIDE)
    lab = src.label_region(0, 0, 512, 512)
    tumour, normal = 2, 1
    assert lab[120, 120] == tumour and lab[200, 225] == normal and lab[50, 50] == 0
    assert (lab[100:300, 100:400] == tumour).sum() == 300 * 200 - 50 * 100


@pytest.mark.parametrize("name", ["external_entity.xml", "entity_expansion.xml"])
def test_hostile_xml_refused(name):
    with pytest.raises(UnsafeFileError, match=name) as exc:
        read_asap_xml(FIXTURES / name)
    assert isinstance(exc.value, USER_ERRORS)


def test_malformed_files_name_the_file():
    with pytest.raises(AnnotationError, match=r"malformed\.xml: not well-formed"):
        read_polygons(FIXTURES / "malformed.xml")
    with pytest.raises(AnnotationError, match=r"malformed\.geojson: not valid JSON"):
        read_polygons(FIXTURES / "malformed.geojson")


def test_xml_too_few_vertices(tmp_path):
    p = tmp_path / "two.xml"
    p.write_text(
        '<ASAP_Annotations><Annotations><Annotation Name="A" Type="Polygon" PartOfGroup="_0">'
        '<Coordinates><Coordinate Order="0" X="1" Y="1"/><Coordinate Order="1" X="5" Y="1"/>'
        "</Coordinates></Annotation></Annotations></ASAP_Annotations>"
    )
    with pytest.raises(AnnotationError, match="'A' has 2 vertices"):
        read_asap_xml(p)


@pytest.mark.parametrize("name", ["outside.xml", "outside.geojson"])
def test_coordinates_outside_slide(name):
    scheme = SCHEMES["camelyon16"] if name.endswith("xml") else SYN
    with pytest.raises(AnnotationError, match=rf"{name}.*outside the 1024×768 px slide"):
        load_label_source(FIXTURES / name, scheme, SLIDE)


def test_unknown_class_names_file_and_name():
    with pytest.raises(ClassMapError, match=r"unknown_class\.geojson.*'Necrotic debris'"):
        load_label_source(FIXTURES / "unknown_class.geojson", SYN, SLIDE)


def test_geojson_holes_multipolygons_and_skips():
    anns = read_geojson(FIXTURES / "holes_multi.geojson")
    assert [a.name for a in anns] == ["stroma", "lymphoid", "epithelium"]  # unclassified and Point skipped
    src = load_label_source(FIXTURES / "holes_multi.geojson", SYN, SLIDE)
    lab = src.label_region(0, 0, 1024, 1024)
    want = np.zeros((1024, 1024), np.uint8)
    want[64:320, 64:448] = 2
    want[128:256, 128:256] = 0  # the hole
    want[160:224, 160:224] = 1  # an annotation inside the hole
    want[64:192, 512:640] = 3
    want[384:512, 576:704] = 3
    np.testing.assert_array_equal(lab[:768], want[:768])
    # at half resolution each output pixel is a 2×2 block: still exact for these edges
    np.testing.assert_array_equal(src.label_region(0, 0, 1024, 512), want[1::2, 1::2])


def test_self_intersecting_polygon_is_repaired(tmp_path):
    import json

    bowtie = {
        "type": "Feature",
        "properties": {"classification": {"name": "stroma"}},
        "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [100, 100], [100, 0], [0, 100], [0, 0]]]},
    }
    p = tmp_path / "bowtie.geojson"
    p.write_text(json.dumps(bowtie))
    (a,) = read_geojson(p)
    assert a.geometry.is_valid and a.geometry.area == pytest.approx(5000)


def test_scheme_file_with_aliases_and_fill(tmp_path):
    import json

    p = tmp_path / "classes.json"
    p.write_text(
        json.dumps(
            {
                "classes": [
                    {"id": 0, "name": "bg"},
                    {"id": 1, "name": "tissue"},
                    {"id": 7, "name": "tumour"},
                ],
                "aliases": {"_0": "tumour"},
                "fill": "tissue",
            }
        )
    )
    scheme = load_scheme(p)
    assert scheme.class_id("_0", "x") == 7 and scheme.fill_id == 1
    p.write_text(json.dumps({"classes": [{"id": 0, "name": "bg"}], "aliases": {"_0": "tumor"}}))
    with pytest.raises(ClassMapError, match="alias '_0'.*'tumor'"):
        load_scheme(p)
    with pytest.raises(ClassMapError, match="not found"):
        load_scheme(tmp_path / "nope.json")
    assert load_scheme("panda-radboud").classes.names[3] == "gleason-3"


def test_polygon_source_pickles_without_index():
    import pickle

    src = load_label_source(FIXTURES / "holes_multi.geojson", SYN, SLIDE)
    src.label_region(0, 0, 256, 64)  # builds the spatial index
    clone = pickle.loads(pickle.dumps(src))
    np.testing.assert_array_equal(clone.label_region(0, 0, 700, 100), src.label_region(0, 0, 700, 100))
    assert isinstance(PolygonLabels([], SYN.classes).label_region(0, 0, 10, 4), np.ndarray)
