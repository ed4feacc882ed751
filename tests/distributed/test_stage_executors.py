"""Every executor-aware stage gives the same bytes with 1 or 2 local workers, and loads its
model once per worker, not once per item."""

import pytest

from histosynth.config import ConfigError
from tests.distributed.artefacts import cli, compare_folders, two_slides


def _same(a, b):
    c = compare_folders(a, b)
    assert c["files"] > 4 and c["same_names"] and c["differ"] == [], c
    assert c["same_counts"] and c["same_id"], c


@pytest.fixture(scope="module")
def tiles(tmp_path_factory):
    root = tmp_path_factory.mktemp("stages")
    slides = two_slides(root / "slides")
    cli("tile", slides, "-o", root / "tiles", "--size", 128, "--min-tissue", 0.3)
    return root / "tiles"


def test_tile_and_dataset_same_bytes_with_two_workers(tiles, tmp_path):
    cli("tile", tiles.parent / "slides", "-o", tmp_path / "tiles2", "--size", 128, "--min-tissue", 0.3,
        "--workers", 2)  # fmt: skip
    _same(tiles, tmp_path / "tiles2")
    args = ["dataset", tiles, "--derived", "stain", "--set", "chunk=8", "--max-per-slide", 12]
    cli(*args, "-o", tmp_path / "ds1")
    cli(*args, "-o", tmp_path / "ds2", "--executor", "local", "--workers", 2)
    _same(tmp_path / "ds1", tmp_path / "ds2")


def test_embed_same_bytes_and_one_encoder_per_worker(tiles, tmp_path, monkeypatch):
    import histosynth.embed.encoders as encoders
    from histosynth.distributed import cache

    args = ["embed", tiles, "--encoder", "handcrafted", "--workers", 0]
    cli(*args, "-o", tmp_path / "e2", "--jobs", 2)
    cache.clear()
    loads = []
    real = encoders.load_encoder
    monkeypatch.setattr(encoders, "load_encoder", lambda *a, **k: loads.append(a) or real(*a, **k))
    cli(*args, "-o", tmp_path / "e1")
    assert len(loads) == 1  # two slides, one encoder: the stage's own, reused by its items
    _same(tmp_path / "e1", tmp_path / "e2")


def test_sample_same_bytes_with_two_workers_and_one_model_per_worker(
    tiny_checkpoint, tiny_dataset, tmp_path, monkeypatch
):
    from histosynth.distributed import cache
    from histosynth.sample.synthesis import Synthesizer
    from tests.conftest import build_bank

    bank = build_bank(tiny_dataset, tmp_path / "bank", split="all")
    args = ["sample", tiny_checkpoint, "--crop-bank", bank.folder, "--maps-from", tiny_dataset, "-n", 4,
            "--batch-size", 1, "--steps", 2, "--sampler", "ddim", "--set", "split=all"]  # fmt: skip
    cli(*args[:2], tmp_path / "s2", *args[2:], "--workers", 2)
    cache.clear()
    loads = []
    real = Synthesizer.from_checkpoint.__func__
    monkeypatch.setattr(
        Synthesizer, "from_checkpoint", classmethod(lambda c, *a, **k: loads.append(a) or real(c, *a, **k))
    )
    cli(*args[:2], tmp_path / "s1", *args[2:])
    assert len(loads) == 1  # four batches, one model
    _same(tmp_path / "s1", tmp_path / "s2")


def test_executor_option_errors():
    from histosynth.cli.options import make_stage_executor

    with pytest.raises(ConfigError, match="--ray-address"):
        make_stage_executor("local", "127.0.0.1:6379")
    with pytest.raises(ConfigError, match="at least 1"):
        make_stage_executor("local", None, 0)
    assert make_stage_executor("local", None, 3).workers == 3
