"""Fuzzing the config override parser: any text gives a config or one ConfigError, never a crash."""

from dataclasses import dataclass, field
from typing import Literal

from hypothesis import example, given, settings
from hypothesis import strategies as st

from histosynth.config import ConfigError, build_config


@dataclass(frozen=True)
class Inner:
    lr: float = 1e-3
    ks: tuple[int, ...] = (1, 2)


@dataclass(frozen=True)
class Outer:
    steps: int = 1
    name: str = "x"
    mode: Literal["a", "b"] = "a"
    limit: int | None = None
    flag: bool = False
    inner: Inner = field(default_factory=Inner)


keys = st.sampled_from(
    ["steps", "name", "mode", "limit", "flag", "inner.lr", "inner.ks", "inner", "nope", "inner.x"]
)
values = st.one_of(st.text(max_size=20), st.integers().map(str), st.floats(allow_nan=False).map(repr),
                   st.sampled_from(["true", "[1,2]", '"a"', "none", "[", "{", "1e999", "inf"]))  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.one_of(st.builds(lambda k, v: f"{k}={v}", keys, values), st.text(max_size=30)), max_size=4)
)
@example(["nope=\n"])  # found by CI: the error quoted the override's newline
def test_overrides_give_a_config_or_a_config_error(overrides):
    try:
        cfg = build_config(Outer, overrides=overrides)
    except ConfigError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    assert isinstance(cfg.steps, int) and cfg.mode in ("a", "b") and isinstance(cfg.inner.ks, tuple)
