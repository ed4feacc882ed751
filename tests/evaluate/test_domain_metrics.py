"""Per-domain FD and crop adherence on tiny built datasets: no training, known answers."""

import json

import numpy as np
import pytest

from histosynth.domains.labs import Lab, apply_lab

LABS = [Lab("lab-A"), Lab("lab-B", h_scale=1.35, e_scale=0.75, h_angle=8.0, h_direction=90.0),
        Lab("lab-C", h_scale=0.7, e_scale=1.3, e_angle=15.0, e_direction=45.0)]  # fmt: skip


@pytest.fixture(scope="module")
def labs_data(tmp_path_factory):
    """Real patches of 3 labs (10 train + 6 test maps each) and three generators on the test maps.

    ``copy`` fills each class region with its own conditioning crop; ``follow`` renders the
    held-out patch in its crop's lab; ``ignore`` renders it in lab A whatever the crop.
    """
    from histosynth.data.crops import region_crop
    from histosynth.evaluate.toy import toy_patches, write_patch_dataset

    root = tmp_path_factory.mktemp("labs")
    imgs, labs, _ = toy_patches(16, 64, seed=5)
    split = ["train"] * 10 + ["test"] * 6
    images = [apply_lab(im, lab) for lab in LABS for im in imgs]
    ids = [f"p{i:02d}_{lab.name}" for lab in LABS for i in range(16)]
    real = write_patch_dataset(root / "real", np.stack(images), np.concatenate([labs] * 3), ids=ids,
                               splits=split * 3, extra={"domain": [lab.name for lab in LABS for _ in range(16)]})  # fmt: skip
    out = {name: ([], [], []) for name in ("copy", "follow", "ignore")}
    rng = np.random.default_rng(0)
    for k in range(len(LABS)):
        for t in range(10, 16):
            label = labs[t]
            sources, pasted = {}, images[0 * 16 + t].copy()
            for c in (int(v) for v in np.unique(label) if v):
                donor = k * 16 + int(rng.integers(0, 10))  # a training patch of the same lab
                got = region_crop(images[donor], labs[donor % 16], c, rng, 40)  # as the crop bank cuts
                if got is None:
                    continue
                crop, (y, x) = got
                h, w = crop.shape[:2]
                sources[str(c)] = [{"slide": "toy", "patch": ids[donor], "box": [x, y, w, h]}]
                tiled = np.tile(crop, (64 // h + 1, 64 // w + 1, 1))[:64, :64]
                pasted[label == c] = tiled[label == c]
            for name, image in (("copy", pasted), ("follow", images[k * 16 + t]), ("ignore", images[t])):
                out[name][0].append(image)
                out[name][1].append(label)
                out[name][2].append(sources)
    syn = {name: write_patch_dataset(root / name, np.stack(i), np.stack(m), slide=f"syn-{name}",
                                     extra={"crop_sources": s, "seed": list(range(len(s)))})  # fmt: skip
           for name, (i, m, s) in out.items()}  # fmt: skip
    return real, syn


def _regions(real, ds):
    from histosynth.evaluate.adherence import collect_regions
    from histosynth.evaluate.domains import real_domains

    return collect_regions(ds, range(len(ds)), real, real_domains(real))


def test_a_generator_that_copies_its_crop_scores_far_below_one_and_one_that_ignores_it_about_one(labs_data):
    from histosynth.evaluate.adherence import adherence, reference_crops
    from histosynth.evaluate.detectors import build_detector
    from histosynth.evaluate.domains import real_domains

    real, syn = labs_data
    refs = reference_crops(real, [i for i in range(len(real)) if real.index.at[i, "split"] == "train"],
                           real_domains(real), per_lab=8)  # fmt: skip
    dets = {"handcrafted": build_detector("handcrafted")}
    copy = adherence(_regions(real, syn["copy"]), refs, dets, replicates=20)
    ignore = adherence(_regions(real, syn["ignore"]), refs, dets, replicates=20)
    assert copy["regions"] >= 20 and ignore["regions"] == copy["regions"]
    assert copy["stain"] < 0.3 and copy["handcrafted"] < 0.65, copy  # detector space also sees texture
    for space in ("stain", "handcrafted"):
        assert 0.85 <= ignore[space] <= 1.15, (space, ignore)
        assert copy[f"{space}_ci"][1] < ignore[f"{space}_ci"][0]


def test_real_regions_take_their_own_crop_from_another_patch_of_their_lab(labs_data):
    from histosynth.evaluate.adherence import real_regions
    from histosynth.evaluate.domains import real_domains

    real, _ = labs_data
    labs = real_domains(real)
    split = list(real.index["split"])
    test = [i for i, s in enumerate(split) if s == "test"]
    train = [i for i, s in enumerate(split) if s == "train"]
    regions = real_regions(real, test, train, labs)
    assert len(regions) >= 20 and sorted(set(regions.labs)) == ["lab-A", "lab-B", "lab-C"]
    again = real_regions(real, test, train, labs)
    assert all((a == b).all() for a, b in zip(regions.own, again.own, strict=True))  # seeded
    train_pixels = {lab: np.stack([real.image(i) for i in train if labs[i] == lab]) for lab in set(labs)}
    for crop, lab in zip(regions.own[:6], regions.labs[:6], strict=True):
        h, w = crop.shape[:2]  # cut from a training patch of its own lab
        windows = np.lib.stride_tricks.sliding_window_view(train_pixels[lab], (h, w, 3), axis=(1, 2, 3))
        assert (windows == crop).all(axis=(-3, -2, -1)).any()


def test_evaluate_reports_per_domain_fd_and_adherence(labs_data, tmp_path, tiny_config, capsys):
    from tests.conftest import run_cli

    from histosynth.evaluate.suite import read_metrics
    from histosynth.report.page import run as report

    real, syn = labs_data
    quick = ["--set", "tstr.enabled=false", "--set", "mask_fidelity=false", "--set", "c2st=false",
             "--set", "per_class=false", "--set", "hallucination.enabled=false", "--set", "bootstrap=10",
             "--set", "workers=0"]  # fmt: skip
    args = ["evaluate", "--real", real.folder, "--out", tmp_path / "ev", "--detector", "pixels-32", *quick]
    for name in ("follow", "ignore"):
        args += ["--synthetic", f"{name}={syn[name].folder}"]
    code, text = run_cli(args, capsys)
    assert code == 0, text
    m = read_metrics(tmp_path / "ev")
    assert m["domains"] == ["lab-A", "lab-B", "lab-C"]
    follow, ignore, floor = (m["metrics"][v] for v in ("follow", "ignore", "real-heldout"))
    assert follow["domainfd_pixels-32"] < ignore["domainfd_pixels-32"] / 2
    assert {"domainfd_ci_low_pixels-32", "domainfd_ci_high_pixels-32"} <= set(ignore)
    assert {"domainfd_lab-a_pixels-32", "domainfd_lab-c_pixels-32"} <= set(
        follow
    ) and "domainfd_pixels-32" in floor
    assert follow["adherence_stain"] < 0.5 and 0.8 <= ignore["adherence_stain"] <= 1.2
    # the crop-blind end of the scale is reported beside the floor (its values: the test below)
    blind = floor["domainfd_blind_pixels-32"]
    assert floor["domainfd_blind_ci_low_pixels-32"] <= blind <= floor["domainfd_blind_ci_high_pixels-32"]
    # the scale: real held-out patches with own-lab crops score what a faithful generator does
    # ("follow" renders exactly those patches; only the crops drawn for them differ)
    assert abs(floor["adherence_stain"] - follow["adherence_stain"]) < 0.15, (floor, follow)
    assert floor["adherence_regions"] >= follow["adherence_regions"] / 2
    assert "per-domain FD" in text and "adherence" in text
    page = report(tmp_path / "ev", tmp_path / "report.html").folder.read_text()
    assert "Simulated labs" in page and "lab-B" in page
    json.dumps(m)  # strict JSON


def test_blind_reference_draws_each_labs_count_from_the_pooled_labs():
    from histosynth.evaluate.domains import blind_reference

    train = np.arange(12, dtype=np.float64)[:, None]
    labs = ["a"] * 6 + ["b"] * 4 + ["c"] * 2  # c is not scored: never drawn
    rows, names = blind_reference(train, labs, ["a", "b"], seed=3)
    assert names == ["a"] * 6 + ["b"] * 4
    assert set(rows[:, 0]) <= set(range(10)) and len(set(rows[:6, 0])) == 6  # without replacement
    again, _ = blind_reference(train, labs, ["a", "b"], seed=3)
    assert (again == rows).all()


@pytest.mark.parametrize("shift", [0.0, 3.0])
def test_the_blind_reference_is_the_floor_for_equal_labs_and_far_above_it_for_distinct_ones(shift):
    from histosynth.evaluate.domains import blind_reference, domain_fd

    rng = np.random.default_rng(0)
    names = ["a", "b", "c"]
    train = np.concatenate([rng.normal(k * shift, 1.0, (300, 4)) for k in range(3)])
    held = np.concatenate([rng.normal(k * shift, 1.0, (100, 4)) for k in range(3)])
    train_labs, held_labs = np.repeat(names, 300), np.repeat(names, 100)
    floor = domain_fd(train, train_labs, held, held_labs, replicates=0)["mean"]
    blind = domain_fd(held, held_labs, *blind_reference(train, train_labs, names), replicates=0)["mean"]
    if shift == 0:
        assert blind < 3 * floor + 0.05  # both only the sampling noise of FD
    else:
        assert blind > 20 * floor


def test_blind_labs_are_those_of_the_set_covering_the_most_labs():
    from histosynth.evaluate.domains import blind_labs

    sets = {
        "map": ["lab-A", "lab-C", "lab-A", ""],
        "map.new-lab": ["lab-B"] * 3,
        "tokens": ["lab-C", "lab-A"],
    }
    assert blind_labs(sets) == ["lab-A", "lab-C"]
    assert blind_labs({}) == []
