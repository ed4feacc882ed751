import pytest

from histosynth.config import ConfigError, build_config, preset_names
from histosynth.evaluate.config import EvaluateConfig, TSTRConfig


def test_presets_match_the_cli_and_build():
    from histosynth.cli.evaluate import _PRESETS

    assert preset_names(EvaluateConfig) == _PRESETS
    assert preset_names(TSTRConfig) == ["cpu", "gpu"]
    cpu = build_config(EvaluateConfig, preset="cpu")
    assert cpu.device == "cpu" and cpu.tstr.segmenter.encoder == "resnet18" and cpu.tstr.seeds == 2
    gpu = build_config(TSTRConfig, preset="gpu")
    assert gpu.segmenter.encoder == "resnet50" and len(gpu.mixes) == 4
    quick = build_config(EvaluateConfig, preset="quick", overrides=["detectors=['pixels-32']"])
    assert not quick.tstr.enabled and quick.detectors == ("pixels-32",)
    assert EvaluateConfig().detectors == ("handcrafted", "random-init-cnn")  # the offline encoders


def test_bad_values_are_one_sentence():
    with pytest.raises(ConfigError, match="heldout_fraction"):
        build_config(EvaluateConfig, values={"heldout_fraction": 1.5})
    with pytest.raises(ConfigError, match="did you mean 'bootstrap'"):
        build_config(EvaluateConfig, overrides=["bootstrp=3"])
    cfg = EvaluateConfig(detector_weights=("inception-v3 = /w/i.safetensors",))
    assert cfg.weights_for("inception-v3") == "/w/i.safetensors" and cfg.weights_for("x") is None
    with pytest.raises(ValueError, match="NAME=PATH"):
        EvaluateConfig(detector_weights=("oops",)).weights_for("x")
