"""Two faults users meet with real data, each in one clear sentence: a truncated slide, and a
Camelyon16 annotation whose PartOfGroup is "None"."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from histosynth.wsi.base import SlideError
from histosynth.wsi.readers import open_slide

from ._bad_files import truncate


@pytest.fixture(scope="module")
def whole_slides(tmp_path_factory):
    """The real CMU slide (SVS) and a synthetic pyramidal TIFF, both whole."""
    from histosynth.samples import cmu_small_region, write_synthetic_slide

    root = tmp_path_factory.mktemp("whole")
    shutil.copy(cmu_small_region(), root / "cmu.svs")
    tif = write_synthetic_slide(root / "syn.tif", size=(1024, 768), seed=1).path
    return {"svs": root / "cmu.svs", "tif": Path(tif)}


@pytest.mark.parametrize("kind", ["svs", "tif"])
@pytest.mark.parametrize("fraction", [0.001, 0.3, 0.6, 0.9, 0.995])
def test_a_truncated_slide_says_it_is_truncated(whole_slides, kind, fraction, tmp_path):
    whole = whole_slides[kind]
    open_slide(whole).close()  # the whole file reads
    cut = truncate(whole, tmp_path / f"cut{whole.suffix}", fraction)
    with pytest.raises(SlideError) as err:
        open_slide(cut)
    msg = str(err.value)
    assert msg.startswith(f"{cut}: the file is truncated") and msg.endswith("copy or download it again"), msg


def test_a_slide_cut_in_place_after_a_good_read_is_checked_again(whole_slides, tmp_path):
    """The check is cached per file state: a file that changes is read again."""
    victim = tmp_path / "victim.svs"
    shutil.copy(whole_slides["svs"], victim)
    open_slide(victim).close()
    open_slide(victim).close()  # the same file again: passes (from the cache)
    truncate(victim, victim, 0.5)  # the same path, shorter
    with pytest.raises(SlideError, match="the file is truncated"):
        open_slide(victim)


def test_a_truncated_slide_in_a_batch(whole_slides, tmp_path, capsys):
    from tests.conftest import run_cli

    (tmp_path / "s").mkdir()
    shutil.copy(whole_slides["tif"], tmp_path / "s" / "good.tif")
    truncate(whole_slides["svs"], tmp_path / "s" / "cut.svs", 0.5)
    code, text = run_cli(["tile", tmp_path / "s", "-o", tmp_path / "t", "--size", 64], capsys)
    failed = [ln.strip() for ln in text.splitlines() if ln.strip().startswith("failed: ")]
    assert code == 1 and len(failed) == 1 and "Traceback" not in text, text
    assert failed[0].startswith("failed: cut: ") and "the file is truncated" in failed[0], failed[0]
    assert "invalid page offset" not in text  # tifffile's own log lines are not shown


CAMELYON_NONE = """<?xml version="1.0"?>
<ASAP_Annotations><Annotations>
  <Annotation Name="Annotation 0" Type="Polygon" PartOfGroup="None" Color="#F4FA58"><Coordinates>
    <Coordinate Order="0" X="100" Y="100"/><Coordinate Order="1" X="300" Y="100"/>
    <Coordinate Order="2" X="300" Y="300"/><Coordinate Order="3" X="100" Y="300"/>
  </Coordinates></Annotation>
  <Annotation Name="Annotation 1" Type="Polygon" PartOfGroup="_0" Color="#F4FA58"><Coordinates>
    <Coordinate Order="0" X="500" Y="100"/><Coordinate Order="1" X="700" Y="100"/>
    <Coordinate Order="2" X="700" Y="300"/><Coordinate Order="3" X="500" Y="300"/>
  </Coordinates></Annotation>
</Annotations><AnnotationGroups>
  <Group Name="_0" PartOfGroup="None" Color="#ff0000"><Attributes/></Group>
</AnnotationGroups></ASAP_Annotations>
"""


def test_partofgroup_none_follows_the_label_scheme(tmp_path):
    """camelyon16 maps the group "None" to normal; a class map that does not name it says how to."""
    from histosynth.wsi.annotations import AnnotationError
    from histosynth.wsi.label_sources import load_label_source
    from histosynth.wsi.schemes import load_scheme

    xml = tmp_path / "slide.xml"
    xml.write_text(CAMELYON_NONE)
    scheme = load_scheme("camelyon16")
    labels = load_label_source(xml, scheme, (1024, 768)).label_region(0, 0, 1024, 1024)
    normal, tumour = scheme.classes.id_of("normal"), scheme.classes.id_of("tumour")
    assert labels[200, 200] == normal and labels[200, 600] == tumour and labels[600, 600] == 0
    assert np.count_nonzero(labels == normal) == 200 * 200

    own = tmp_path / "classes.json"
    own.write_text('{"classes": [{"id": 0, "name": "background"}, {"id": 1, "name": "tumour"}], '
                   '"aliases": {"_0": "tumour"}}')  # fmt: skip
    with pytest.raises(AnnotationError) as err:
        load_label_source(xml, load_scheme(own), (1024, 768))
    msg = str(err.value)
    assert msg.startswith(f"{xml}: annotation 'Annotation 0' has PartOfGroup=\"None\"") and '"aliases"' in msg
