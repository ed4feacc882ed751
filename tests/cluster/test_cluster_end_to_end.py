"""Embeddings → clusters → pseudo-maps on synthetic slides with known tissue, and the report."""

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score

from histosynth.cluster.pseudo_maps import pseudo_map_sources
from histosynth.cluster.stage import ClusterConfig, ReportConfig
from histosynth.cluster.stage import run as cluster
from histosynth.config import ConfigError
from histosynth.embed.stage import EmbedConfig
from histosynth.embed.stage import run as embed
from histosynth.wsi.base import ArrayReader

# The middle half of the session's synthetic slide holds all three tissues in similar amounts.
XS, YS = range(512, 1536, 256), range(0, 1536, 256)


def _grid_tiles(slide, name, size=256):
    return pd.DataFrame([dict(slide=name, slide_path=str(slide.path), x0=x, y0=y, size0=size, size=size,
                              mpp=slide.mpp, split="train") for y in YS for x in XS])  # fmt: skip


class TiffOpener:
    """Level 0 of written synthetic slides, decoded once, served as in-memory readers."""

    def __init__(self):
        self.cache = {}

    def __call__(self, path, mpp):
        if path not in self.cache:
            import tifffile

            self.cache[path] = tifffile.imread(path, level=0)
        return ArrayReader(self.cache[path], mpp=mpp, name=path)


class Truth:
    """Ground truth of a synthetic slide as a LabelSource."""

    def __init__(self, slide):
        self.slide, self.classes = slide, slide.classes

    def label_region(self, x0, y0, size0, out_size):
        lab = self.slide.label(x0, y0, int(size0), int(size0))
        step = max(1, int(size0) // out_size)
        return lab[::step, ::step][:out_size, :out_size]


@pytest.fixture(scope="module")
def embedded(synthetic_slide, tmp_path_factory):
    folder = tmp_path_factory.mktemp("e2e")
    opener = TiffOpener()
    cfg = EmbedConfig(subtile=32, stride=32, workers=0, batch_size=512)
    embed(_grid_tiles(synthetic_slide, "syn"), folder / "emb", cfg, opener=opener, show_progress=False)
    return folder, opener


def test_handcrafted_pseudo_maps_match_ground_truth(embedded, synthetic_slide):
    folder, opener = embedded
    cfg = ClusterConfig(k=3, per_slide=4000, report=ReportConfig(enabled=False))
    m = cluster(folder / "emb", folder / "k3", cfg, show_progress=False).manifest
    assert m["levels"] == [3] and m["background_id"] == 0
    classes, sources = pseudo_map_sources(folder / "k3")  # the dataset stage's entry point
    assert classes.names == ["background", "cluster-001", "cluster-002", "cluster-003"]
    src = sources["syn"]
    pred, true = [], []
    for y in YS:  # patch by patch, as the dataset stage asks
        for x in XS:
            pred.append(src.label_region(x, y, 256, 128).ravel())
            true.append(synthetic_slide.label(x, y, 256, 256)[::2, ::2].ravel())
    ari = adjusted_rand_score(np.concatenate(true), np.concatenate(pred))
    print(f"pixel ARI {ari:.3f}")
    assert ari >= 0.8, ari


def test_hierarchy_report_truth_and_reuse(embedded, synthetic_slide, tmp_path):
    folder, opener = embedded
    cfg = ClusterConfig(k=6, levels=(3,), per_slide=4000, report=ReportConfig(examples=4, stability_seeds=2))
    m = cluster(folder / "emb", tmp_path / "cl", cfg, truth={"syn": Truth(synthetic_slide)}, opener=opener,
                    show_progress=False).manifest  # fmt: skip
    out = tmp_path / "cl"
    assert m["levels"] == [3, 6] and (out / "report" / "index.html").is_file()
    metrics = json.loads((out / "report" / "metrics.json").read_text())
    k3 = metrics["levels"]["3"]
    assert k3["truth"]["purity"] > 0.9 and len(k3["stability_ari"]) == 2 and -1 <= k3["silhouette"] <= 1
    assert len(list((out / "report" / "mosaics").glob("*.png"))) == 4 + 7
    page = (out / "report" / "index.html").read_text()
    assert "0 background" in page and "mosaics/k6_c1.png" in page and "overlays/syn_k3.png" in page
    hier = json.loads((out / "hierarchy.json").read_text())
    assert hier["fine_k"] == 6 and len(hier["levels"]["3"]) == 7 and hier["levels"]["3"][0] == 0
    # the training curriculum reads this file as written: 7 fine ids (background + 6), then 4 coarse
    from histosynth.train.data import Curriculum

    cur = Curriculum(out, 7, ((3, 10), (6, 0)))
    assert cur.num_classes == 7 + 4 and cur.lut(0)[:7].tolist() == [7 + p for p in hier["levels"]["3"]]
    assert cur.lut(10)[:7].tolist() == list(range(7))
    # re-running the finished command does nothing and returns the same manifest
    assert cluster(folder / "emb", out, cfg, opener=opener, show_progress=False).manifest["id"] == m["id"]
    # the saved model applied elsewhere reproduces the labels exactly
    reuse = cluster(folder / "emb", tmp_path / "reuse", ClusterConfig(report=ReportConfig(enabled=False)),
                        model=out / "model.npz", show_progress=False).manifest  # fmt: skip
    assert reuse["levels"] == [3, 6] and not reuse["model"]["fitted_here"]
    a = pd.read_parquet(out / "assignments.parquet")
    b = pd.read_parquet(tmp_path / "reuse" / "assignments.parquet")
    assert a.equals(b)


def test_model_from_another_encoder_is_refused(embedded, tmp_path):
    from histosynth.cluster.model import fit_model

    folder, _ = embedded
    x = np.random.default_rng(0).normal(size=(50, 42)).astype(np.float32)
    model, _ = fit_model(x, (2,), meta={"encoder": "random-init-cnn-v1-seed0"})
    model.save(tmp_path / "m.npz")
    with pytest.raises(ConfigError, match="encoder"):
        cluster(folder / "emb", tmp_path / "x", model=tmp_path / "m.npz", show_progress=False)


def test_cli_tile_embed_cluster_dataset(tmp_path):
    """The offline path through the commands, ending in a patch dataset of pseudo-classes."""
    from click.testing import CliRunner

    from histosynth.cli.main import cli
    from histosynth.data.patch_dataset import PatchDataset
    from histosynth.samples import write_synthetic_slide

    slide = write_synthetic_slide(tmp_path / "s.tif", size=(1024, 1024), seed=3)
    (tmp_path / "truth").mkdir()
    slide.save_label_png(tmp_path / "truth" / "s_mask.png")
    slide.classes.save(tmp_path / "classes.json")
    run = CliRunner().invoke
    res = run(cli, ["tile", str(tmp_path / "s.tif"), "-o", str(tmp_path / "tiles")])
    assert res.exit_code == 0, res.output
    res = run(cli, ["embed", str(tmp_path / "tiles"), "-o", str(tmp_path / "emb"), "--workers", "0"])
    assert res.exit_code == 0, res.output
    res = run(cli, ["cluster", str(tmp_path / "emb"), "-o", str(tmp_path / "cl"), "--k", "4", "--levels", "2",
                    "--annotations", str(tmp_path / "truth"), "--classes", str(tmp_path / "classes.json"),
                    "--set", "report.stability_seeds=1",
                    "--set", "report.examples=4"])  # fmt: skip
    assert res.exit_code == 0, res.output
    metrics = json.loads((tmp_path / "cl" / "report" / "metrics.json").read_text())
    assert metrics["levels"]["4"]["truth"]["purity"] > 0.8
    res = run(cli, ["dataset", str(tmp_path / "tiles"), "--pseudo-maps", str(tmp_path / "cl"), "--k", "4",
                    "-o", str(tmp_path / "ds")])  # fmt: skip
    assert res.exit_code == 0, res.output
    ds = PatchDataset(tmp_path / "ds")
    assert len(ds) > 0 and ds.classes.names[0] == "background" and len(ds.classes) == 5
    assert ds.label(0).max() <= 4
    # the dataset carries its maps' hierarchy, which the training curriculum reads as it is
    from histosynth.train.data import Curriculum

    hier = json.loads((tmp_path / "ds" / "hierarchy.json").read_text())
    assert hier["fine_k"] == 4 and len(hier["levels"]["2"]) == 5 and set(hier["levels"]["2"]) == {0, 1, 2}
    assert Curriculum(tmp_path / "ds", len(ds.classes), ((2, 5), (4, 0))).num_classes == 5 + 3
