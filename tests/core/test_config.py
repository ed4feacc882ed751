from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from histosynth.config import ConfigError, build_config, config_to_dict, parse_override, register_presets


@dataclass(frozen=True)
class Optim:
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)


@dataclass(frozen=True)
class Cfg:
    name: str = "run"
    steps: int = 10
    seed: int = 0
    out: Path = Path("out")
    sampler: Literal["ddim", "dpm"] = "ddim"
    ks: tuple[int, ...] = (5, 10)
    limit: int | None = None
    amp: bool = False
    optim: Optim = field(default_factory=Optim)


register_presets(Cfg, {"fast": {"steps": 2, "optim": {"lr": 1e-3}}})


def test_defaults_and_preset():
    assert build_config(Cfg).steps == 10
    cfg = build_config(Cfg, preset="fast")
    assert cfg.steps == 2 and cfg.optim.lr == 1e-3 and cfg.optim.betas == (0.9, 0.999)


def test_layer_order_toml_then_overrides(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('steps = 7\nsampler = "dpm"\n[optim]\nlr = 0.5\n')
    cfg = build_config(Cfg, preset="fast", toml_file=f, overrides=["optim.lr=2e-5", "ks=[1,2,3]", "out=/x/y"])
    assert cfg.steps == 7 and cfg.sampler == "dpm"
    assert cfg.optim.lr == 2e-5 and cfg.ks == (1, 2, 3) and cfg.out == Path("/x/y")


def test_fixed_length_tuple():
    assert build_config(Cfg, overrides=["optim.betas=[0.8, 0.99]"]).optim.betas == (0.8, 0.99)


def test_optional_and_bool():
    cfg = build_config(Cfg, overrides=["limit=5", "amp=true"])
    assert cfg.limit == 5 and cfg.amp is True
    assert build_config(Cfg, overrides=["limit=none"]).limit is None


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("stpes=3", "did you mean 'steps'"),
        ("optim.lrr=3", "did you mean 'lr'"),
        ("steps=abc", "steps: expected an integer"),
        ("steps=1.5", "expected an integer"),
        ("amp=1", "expected true or false"),
        ("sampler=ddm", "not one of"),
        ("optim.betas=[0.9]", "expected 2 values"),
        ("optim=3", "expected a table"),
        ("noequals", "key=value"),
        ("a..b=1", "invalid key"),
    ],
)
def test_bad_overrides(override, message):
    with pytest.raises(ConfigError, match=message):
        build_config(Cfg, overrides=[override])


def test_bad_preset_and_file(tmp_path):
    with pytest.raises(ConfigError, match="did you mean 'fast'"):
        build_config(Cfg, preset="fats")
    bad = tmp_path / "bad.toml"
    bad.write_text("steps = [")
    with pytest.raises(ConfigError, match="bad.toml: not valid TOML"):
        build_config(Cfg, toml_file=bad)
    unknown = tmp_path / "u.toml"
    unknown.write_text("[optim]\nlearning_rate = 1\n")
    with pytest.raises(ConfigError, match=r"u.toml: unknown key 'optim.learning_rate'"):
        build_config(Cfg, toml_file=unknown)
    with pytest.raises(ConfigError, match="not found"):
        build_config(Cfg, toml_file=tmp_path / "missing.toml")


def test_parse_override_types():
    assert parse_override("a.b=3") == (["a", "b"], 3)
    assert parse_override("a=hello world") == (["a"], "hello world")
    assert parse_override('a="3"') == (["a"], "3")


def test_config_to_dict_is_json_ready():
    d = config_to_dict(build_config(Cfg))
    assert d["out"] == "out" and d["optim"]["betas"] == [0.9, 0.999]
