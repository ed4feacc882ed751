"""Weight resolution: explicit path, registry file, opt-in hub cache; safe loading; no network."""

import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from histosynth.embed.encoders import ENCODERS, encoder_status, load_encoder
from histosynth.embed.spec import EncoderSpec
from histosynth.embed.weights import MissingWeightsError, WeightsError, read_registry
from histosynth.errors import USER_ERRORS, UnsafeFileError

TINY = EncoderSpec(
    "test-tiny-vit", 32, 32, "histosynth.embed.foundation:build_timm", backend="timm",
    source="huggingface.co/test/tiny-vit", hub_repo="test/tiny-vit",
    params={"arch": "vit_tiny_patch16_224", "pool": "head", "mean": (0.5,) * 3, "std": (0.25,) * 3,
            "kwargs": {"img_size": 32, "patch_size": 8, "depth": 1, "embed_dim": 32, "num_heads": 2,
                       "num_classes": 0}},
)  # fmt: skip


@pytest.fixture
def tiny_spec(monkeypatch):
    monkeypatch.setitem(ENCODERS._entries, TINY.name, TINY)
    return TINY


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture
def tiny_weights(tmp_path):
    import torch
    from safetensors.torch import save_file

    from histosynth.embed.foundation import timm_module

    torch.manual_seed(0)
    state = {k: v.contiguous() for k, v in timm_module(TINY).state_dict().items()}
    path = tmp_path / "tiny" / "model.safetensors"
    path.parent.mkdir()
    save_file(state, str(path))
    return path


def test_missing_weights_one_sentence_fast_offline(tmp_path, no_network):
    reg = tmp_path / "none.toml"
    start = time.perf_counter()
    with pytest.raises(MissingWeightsError) as exc:
        load_encoder("uni2-h", registry_file=reg)
    assert time.perf_counter() - start < 0.5
    msg = str(exc.value)
    assert msg.count(". ") == 0 and msg.endswith(".")  # one sentence
    assert (
        "model.safetensors" in msg and "MahmoodLab/UNI2-h" in msg and str(reg) in msg and "--weights" in msg
    )
    assert isinstance(exc.value, USER_ERRORS)


def test_missing_weights_imports_no_model_library(tmp_path):
    code = (
        "import sys\nfrom histosynth.embed.encoders import load_encoder\n"
        "try:\n    load_encoder('virchow2', registry_file=sys.argv[1])\nexcept FileNotFoundError:\n    pass\n"
        "print('HEAVY', [m for m in ('timm', 'transformers', 'torch') if m in sys.modules])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "r.toml")], capture_output=True, text=True
    )
    assert "HEAVY []" in out.stdout, out.stderr


def test_explicit_path_loads_tiny_vit(tiny_spec, tiny_weights, no_network):
    enc = load_encoder(tiny_spec.name, weights=tiny_weights)
    from histosynth.artifacts import file_sha256

    digest = file_sha256(tiny_weights)
    assert enc.identity == f"test-tiny-vit:sha256-{digest[:16]}" and enc.weights_sha256 == digest
    imgs = np.random.default_rng(0).integers(0, 256, (5, 40, 40, 3), dtype=np.uint8)
    a, b = enc.encode(imgs), enc.encode(imgs)
    assert a.shape == (5, 32) and a.dtype == np.float32 and np.array_equal(a, b)
    # a folder holding model.safetensors works too
    assert load_encoder(tiny_spec.name, weights=tiny_weights.parent).identity == enc.identity


def test_registry_file_and_checksum(tiny_spec, tiny_weights, tmp_path):
    reg = tmp_path / "weights.toml"
    reg.write_text(f'[encoders]\ntest-tiny-vit = "{tiny_weights.parent.name}/model.safetensors"\n')
    (tmp_path / tiny_weights.parent.name).exists()
    assert read_registry(reg)["test-tiny-vit"]["path"] == tiny_weights
    assert load_encoder(tiny_spec.name, registry_file=reg).weights_path == str(tiny_weights)
    status = {s["name"]: s for s in encoder_status(registry_file=reg)}
    assert status["test-tiny-vit"]["available"] and "registry" in status["test-tiny-vit"]["detail"]
    reg.write_text(f'[encoders.test-tiny-vit]\npath = "{tiny_weights}"\nsha256 = "{"0" * 64}"\n')
    with pytest.raises(WeightsError, match="checksum"):
        load_encoder(tiny_spec.name, registry_file=reg)


def test_hub_cache_only_when_opted_in(tiny_spec, tiny_weights, tmp_path, monkeypatch, no_network):
    snap = tmp_path / "hub" / "models--test--tiny-vit" / "snapshots" / "abc123"
    snap.mkdir(parents=True)
    (snap / "model.safetensors").write_bytes(tiny_weights.read_bytes())
    (tmp_path / "hub" / "models--test--tiny-vit" / "refs").mkdir()
    (tmp_path / "hub" / "models--test--tiny-vit" / "refs" / "main").write_text("abc123")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    reg = tmp_path / "empty.toml"
    with pytest.raises(MissingWeightsError, match="--allow-hub"):
        load_encoder(tiny_spec.name, registry_file=reg)
    enc = load_encoder(tiny_spec.name, registry_file=reg, allow_hub=True)
    assert enc.weights_path.endswith("model.safetensors")
    status = {s["name"]: s for s in encoder_status(registry_file=reg)}
    assert not status["test-tiny-vit"]["available"] and "hub cache" in status["test-tiny-vit"]["detail"]


def test_pickles_are_refused(tiny_spec, tmp_path):
    bad = tmp_path / "pytorch_model.bin"
    bad.write_bytes(b"\x80\x04not really a pickle")
    with pytest.raises(UnsafeFileError, match="weights_only=True"):
        load_encoder(tiny_spec.name, weights=bad)
    with pytest.raises(UnsafeFileError):  # a folder with only a pickle in it
        load_encoder(tiny_spec.name, weights=tmp_path)


def test_weights_of_another_architecture(tiny_spec, tmp_path):
    import torch
    from safetensors.torch import save_file

    path = tmp_path / "other.safetensors"
    save_file({"foo.weight": torch.zeros(3)}, str(path))
    with pytest.raises(WeightsError, match="do not fit"):
        load_encoder(tiny_spec.name, weights=path)
    path.write_bytes(b"garbage")
    with pytest.raises(UnsafeFileError, match="not a valid safetensors"):
        load_encoder(tiny_spec.name, weights=path)
    path.write_bytes(b"\x80\x04pickled, whatever the name says")
    with pytest.raises(UnsafeFileError, match="pickle"):
        load_encoder(tiny_spec.name, weights=path)


def test_status_covers_every_encoder(tmp_path):
    rows = encoder_status(registry_file=tmp_path / "none.toml")
    assert [r["name"] for r in rows] == ENCODERS.names()
    by = {r["name"]: r for r in rows}
    assert (
        by["handcrafted"]["available"] and by["random-init-cnn"]["available"] and by["ssl-tiny"]["available"]
    )
    for name in ("uni", "uni2-h", "virchow2", "h-optimus-0", "h-optimus-1", "dinov2-vits14", "resnet50"):
        assert not by[name]["available"] and "--weights" in by[name]["detail"]
