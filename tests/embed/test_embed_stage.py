"""The embed stage: sub-tile geometry, the float16 store, resuming per slide, the CLI."""

import functools

import numpy as np
import pandas as pd
import pytest

from histosynth.config import ConfigError
from histosynth.embed.stage import EmbedConfig, run
from histosynth.embed.store import EmbeddingStore
from histosynth.embed.subtiles import subtile_offsets
from histosynth.samples import make_label_grid, render_region
from histosynth.wsi.base import ArrayReader


@functools.cache
def _image(name: str) -> np.ndarray:
    seed = {"a": 1, "b": 2}[name]
    return render_region(make_label_grid(16, 16, 4, "blobs", seed), 32, 0, 0, 512, 512)


def _tiles(slides=("a", "b"), size=128):
    rows = [dict(slide=s, slide_path=f"/mem/{s}", x0=x, y0=y, size0=size, size=size, mpp=0.5, split="train")
            for s in slides for y in range(0, 512, size) for x in range(0, 512, size)]  # fmt: skip
    return pd.DataFrame(rows)


class Opener:
    """Opens in-memory slides; counts opens and can refuse some slides."""

    def __init__(self, refuse=()):
        self.refuse, self.opened = set(refuse), []

    def __call__(self, path, mpp):
        name = path.rsplit("/", 1)[-1]
        self.opened.append(name)
        if name in self.refuse:
            raise OSError(f"{path}: cannot open")
        return ArrayReader(_image(name), mpp=mpp, name=path)


def test_subtile_offsets():
    off = subtile_offsets(256, 64, 64)
    assert off.shape == (16, 2) and off[1].tolist() == [64, 0] and off[4].tolist() == [0, 64]
    assert len(subtile_offsets(256, 128, 64)) == 9 and len(subtile_offsets(256, 256, 256)) == 1
    with pytest.raises(ConfigError, match="divide"):
        subtile_offsets(256, 64, 48)
    with pytest.raises(ConfigError):
        subtile_offsets(256, 300, 64)


def test_store_layout_and_manifest(tmp_path):
    cfg = EmbedConfig(subtile=32, stride=32, workers=0, batch_size=64)
    m = run(_tiles(), tmp_path / "emb", cfg, opener=Opener(), show_progress=False).manifest
    assert m["kind"] == "embeddings" and m["counts"] == {"slides": 2, "failed": 0, "vectors": 512, "seconds": m[
        "counts"]["seconds"]}  # fmt: skip
    assert m["encoder"]["identity"] == "handcrafted-v1" and m["inputs"]["encoder"] == "handcrafted-v1"
    store = EmbeddingStore(tmp_path / "emb")
    assert store.slides == ["a", "b"] and len(store) == 512
    f = store.features("a")
    assert f.dtype == np.float16 and f.shape == (256, 42)
    idx = store.slide_index("a")
    assert idx["row"].tolist() == list(range(256))
    r = idx.iloc[21]  # patch 1 (x0=128), sub-tile 5: second of its second row
    assert (r.patch, r.x0, r.sx, r.sy, r.sub_x0, r.sub_y0, r.sub_size0) == (1, 128, 32, 32, 160.0, 32.0, 32.0)
    # the stored vector is the encoder's vector of that very sub-tile (to float16 precision)
    from histosynth.embed.encoders import load_encoder

    crop = _image("a")[32:64, 160:192][None]
    assert np.allclose(f[21], load_encoder("handcrafted").encode(crop)[0], rtol=2e-3, atol=2e-3)
    # tissue fractions come with every sub-tile
    assert idx["tissue"].min() == 0 and idx["tissue"].max() == 1  # glass and tissue sub-tiles


def test_resumes_per_slide_and_reports_failures(tmp_path):
    cfg = EmbedConfig(subtile=64, stride=64, workers=0)
    first = run(_tiles(), tmp_path / "emb", cfg, opener=Opener(refuse={"b"}), show_progress=False).manifest
    assert first["counts"]["slides"] == 1 and "cannot open" in first["failures"]["b"]
    assert len(EmbeddingStore(tmp_path / "emb")) == 16 * 4
    again = Opener()
    # the finished manifest belongs to the same config: re-running returns it without work;
    # drop it to resume, as after an interruption
    (tmp_path / "emb" / "manifest.json").unlink()
    m = run(_tiles(), tmp_path / "emb", cfg, opener=again, show_progress=False).manifest
    assert again.opened == ["b"] and m["counts"]["slides"] == 2 and not m["failures"]
    done = run(
        _tiles(), tmp_path / "emb", cfg, opener=Opener(refuse={"a", "b"}), show_progress=False
    ).manifest
    assert done["id"] == m["id"]
    from histosynth.artifacts import ArtifactError

    with pytest.raises(ArtifactError, match="another"):
        run(_tiles(), tmp_path / "emb", EmbedConfig(subtile=32, stride=32), opener=again)


def test_fit_ssl_in_the_stage(tmp_path):
    from histosynth.embed.ssl import SSLConfig

    cfg = EmbedConfig(encoder="ssl-tiny", fit_ssl=True, subtile=64, stride=64, workers=0,
                      ssl=SSLConfig(images=24, steps=2, batch_size=8))  # fmt: skip
    m = run(_tiles(size=256), tmp_path / "emb", cfg, opener=Opener(), show_progress=False).manifest
    assert m["encoder"]["identity"].startswith("ssl-tiny:sha256-") and m["ssl_training"]["steps"] == 2
    assert (tmp_path / "emb" / "encoder" / "ssl-tiny.safetensors").is_file()
    assert EmbeddingStore(tmp_path / "emb").features("a").shape == (64, 360)
    with pytest.raises(ConfigError):
        from histosynth.config import build_config

        build_config(EmbedConfig, values={"fit_ssl": True, "encoder": "handcrafted"})


def test_cli_embed_list_and_run(tmp_path, synthetic_slide):
    from click.testing import CliRunner

    from histosynth.cli.main import cli

    res = CliRunner().invoke(cli, ["embed", "--list-encoders"])
    assert res.exit_code == 0 and "handcrafted" in res.output and "uni2-h" in res.output
    tiles = pd.DataFrame([dict(slide="syn", slide_path=str(synthetic_slide.path), x0=x, y0=512, size0=256,
                               size=256, mpp=0.5, split="train") for x in (512, 768)])  # fmt: skip
    tiles.to_parquet(tmp_path / "tiles.parquet")
    out = tmp_path / "emb"
    res = CliRunner().invoke(cli, ["embed", str(tmp_path / "tiles.parquet"), "-o", str(out), "--workers", "0",
                                   "--set", "batch_size=8"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "32 sub-tile vectors from 1 slides" in res.output
    res = CliRunner().invoke(cli, ["embed", str(tmp_path / "tiles.parquet"), "-o", str(tmp_path / "x"),
                                   "--encoder", "uni"])  # fmt: skip
    assert res.exit_code != 0 and "has no weights" in str(res.exception)
