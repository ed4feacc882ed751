"""``histosynth domains``: a valid patch dataset out, maps unchanged, images transformed, resumable."""

import json

from tests.conftest import run_cli


def _source(tmp_path):
    from histosynth.evaluate.toy import toy_patches, write_patch_dataset

    imgs, labs, _ = toy_patches(5, 32, seed=1)
    return write_patch_dataset(tmp_path / "real", imgs, labs, splits=["train"] * 3 + ["test"] * 2)


def test_every_patch_in_every_lab_with_its_map(tmp_path):
    from histosynth.data.patch_dataset import PatchDataset
    from histosynth.domains.stage import DomainsConfig, read_labs, run

    src = _source(tmp_path)
    cfg = DomainsConfig(labs=3, seed=2)
    result = run(src.folder, tmp_path / "labs", cfg)
    assert result.ok and result.manifest["counts"]["patches"] == 15
    out = PatchDataset(result.folder)
    assert sorted(out.index["domain"].unique()) == ["lab-A", "lab-B", "lab-C"]
    assert [lab.name for lab in read_labs(result.folder)] == ["lab-A", "lab-B", "lab-C"]
    by_id = {pid: i for i, pid in enumerate(src.index["id"])}
    for j, row in out.index.iterrows():
        i = by_id[row["id"].rsplit("_", 1)[0]]
        assert (out.label(j) == src.label(i)).all() and row["split"] == src.index.at[i, "split"]
        assert not (out.image(j) == src.image(i)).all()
    again = run(src.folder, tmp_path / "labs", cfg)  # finished: returned as is
    assert again.manifest["id"] == result.manifest["id"]


def test_one_lab_per_patch_and_only(tmp_path, capsys):
    from histosynth.data.patch_dataset import PatchDataset

    src = _source(tmp_path)
    code, text = run_cli(["domains", src.folder, tmp_path / "b", "--labs", "4", "--only", "lab-B"], capsys)
    assert code == 0, text
    assert "lab-B" in text and "wrote 5 patches" in text
    assert set(PatchDataset(tmp_path / "b").index["domain"]) == {"lab-B"}
    code, text = run_cli(["domains", src.folder, tmp_path / "one", "--labs", "2", "--assign", "one"], capsys)
    assert code == 0, text
    one = PatchDataset(tmp_path / "one")
    assert len(one) == 5 and one.index["id"].str.rsplit("_", n=1).str[0].is_unique
    labs = json.loads((tmp_path / "one" / "domains.json").read_text())["labs"]
    assert [lab["name"] for lab in labs] == ["lab-A", "lab-B"]
    code, text = run_cli(["domains", tmp_path / "one", tmp_path / "again"], capsys)
    assert code == 2 and "already has a domain column" in text


def test_training_takes_foreign_crops_from_the_images_own_lab(tmp_path):
    from histosynth.data.patch_dataset import PatchDataset
    from histosynth.domains.stage import DomainsConfig, run
    from histosynth.train.config import DataConfig
    from histosynth.train.data import IDENTITY_LUT, TrainData

    folder = run(_source(tmp_path).folder, tmp_path / "labs", DomainsConfig(labs=2, seed=0)).folder
    data = TrainData(PatchDataset(folder), DataConfig(image_size=32, foreign_prob=1.0, preload=False), seed=0)
    seen = 0
    for i in range(len(data)):
        for crop in data.item(0, i, IDENTITY_LUT)[2]:
            seen += 1
            assert crop.source.split(":")[0].rsplit("_", 1)[1] == data.ids[i].rsplit("_", 1)[1]
    assert seen > 0


def test_strength_draws_the_strong_ranges(tmp_path, capsys):
    from histosynth.domains.labs import LAB_STRENGTHS
    from histosynth.domains.stage import read_labs

    src = _source(tmp_path)
    code, text = run_cli(
        ["domains", src.folder, tmp_path / "s", "--labs", "5", "--strength", "strong"], capsys
    )
    assert code == 0, text
    strong, mild = LAB_STRENGTHS["strong"], LAB_STRENGTHS["mild"]
    labs = read_labs(tmp_path / "s")
    # stratified: one lab in each fifth of the range, so the widest bias lies beyond mild's
    assert max(abs(lab.e_bias) for lab in labs) > mild.bias[1]
    assert all(strong.bias[0] <= lab.h_bias <= strong.bias[1] for lab in labs)
    assert (
        all(lab.e_angle <= strong.e_angle[1] for lab in labs)
        and max(lab.e_angle for lab in labs) > mild.e_angle[1]
    )
