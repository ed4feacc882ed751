"""Stage configuration: frozen dataclasses, named presets, TOML files and ``--set`` overrides.

Every stage declares one frozen dataclass (nested dataclasses allowed). A resolved config is
built in three layers, later ones winning::

    defaults of the dataclass  <  named preset  <  TOML file  <  --set a.b=c overrides

Unknown keys are an error with a "did you mean" suggestion; values are checked against the
field's annotation (``int``, ``float``, ``bool``, ``str``, ``Path``, ``Literal[...]``,
``tuple[...]``, ``X | None`` and nested dataclasses).

Presets live in a dict next to the dataclass they configure (``register_presets``) so CLI
choices derive from the same dict, as in DiT's model presets.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import tomllib
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

__all__ = [
    "ConfigError",
    "build_config",
    "config_to_dict",
    "parse_override",
    "preset_names",
    "register_presets",
    "without_defaults",
]

T = TypeVar("T")

_PRESETS: dict[type, dict[str, dict[str, Any]]] = {}


class ConfigError(ValueError):
    """A configuration value or key that the user supplied is wrong."""


def register_presets(cls: type[T], presets: Mapping[str, Mapping[str, Any]]) -> None:
    """Attach named presets (nested dicts of overrides) to a config dataclass."""
    for name, values in presets.items():
        _check_keys(cls, values, source=f"preset {name!r}")
    _PRESETS[cls] = {k: dict(v) for k, v in presets.items()}


def preset_names(cls: type) -> list[str]:
    """Names of the presets registered for ``cls`` (empty when none)."""
    return list(_PRESETS.get(cls, {}))


def parse_override(text: str) -> tuple[list[str], Any]:
    """Parse ``a.b=c`` into (``["a", "b"]``, value).

    The value is read as a TOML value when it parses as one (numbers, booleans, quoted strings,
    arrays), else taken as a bare string, so ``--set data.root=/x/y`` needs no quotes.
    """
    if "=" not in text:
        raise ConfigError(f"override {text!r} is not of the form key=value (e.g. train.lr=1e-4)")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part.isidentifier() for part in key.split(".")):
        raise ConfigError(f"override {text!r} has an invalid key {key!r}")
    raw = raw.strip()
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key.split("."), value


def build_config(
    cls: type[T],
    preset: str | None = None,
    toml_file: str | Path | None = None,
    overrides: Iterable[str] = (),
    values: Mapping[str, Any] | None = None,
) -> T:
    """Resolve a config of type ``cls`` from its layers.

    Parameters
    ----------
    cls
        A (frozen) dataclass type.
    preset
        Name of a preset registered with :func:`register_presets`.
    toml_file
        A TOML file whose tables mirror the dataclass fields.
    overrides
        ``key.sub=value`` strings, applied last.
    values
        A nested dict applied after the TOML file and before ``overrides`` (Python API use).

    Raises
    ------
    ConfigError
        On unknown presets, unknown keys, or values of the wrong type.

    Examples
    --------
    >>> from histosynth.wsi.tiling import TileConfig
    >>> cfg = build_config(TileConfig, values={"size": 128}, overrides=["split.by=region"])
    >>> cfg.size, cfg.split.by
    (128, 'region')
    >>> build_config(TileConfig, overrides=["sise=128"])
    Traceback (most recent call last):
    ...
    histosynth.config.ConfigError: --set sise=128: unknown key 'sise'; did you mean 'size'?
    """
    merged: dict[str, Any] = {}
    origin: dict[str, str] = {}  # dotted key → the config file that set it (named in errors)
    if preset is not None:
        presets = _PRESETS.get(cls, {})
        if preset not in presets:
            raise ConfigError(f"unknown preset {preset!r}{_suggest(preset, presets)}")
        _deep_update(merged, presets[preset])
    if toml_file is not None:
        path = Path(toml_file)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{path}: config file not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML ({exc})") from None
        _check_keys(cls, data, source=str(path))
        _deep_update(merged, data)
        origin.update(dict.fromkeys(_dotted(data), str(path)))
    if values:
        _check_keys(cls, values, source="values")
        _deep_update(merged, dict(values))
        for key in _dotted(values):
            origin.pop(key, None)
    for text in overrides:
        keys, value = parse_override(text)
        value_dict: dict[str, Any] = {}
        nested = value_dict
        for k in keys[:-1]:
            nested = nested.setdefault(k, {})
        nested[keys[-1]] = value
        # repr only when needed: an error is one line, even for a value holding a newline
        _check_keys(cls, value_dict, source=f"--set {text if text.isprintable() else repr(text)}")
        _deep_update(merged, value_dict)
        origin.pop(".".join(keys), None)
    try:
        return _instantiate(cls, merged, prefix="")
    except ConfigError as exc:
        key = str(exc).split(":", 1)[0]
        if key in origin:
            raise ConfigError(f"{origin[key]}: {exc}") from None
        raise


def _dotted(data: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Every key of a nested mapping, dotted (``a``, ``a.b``...)."""
    keys = []
    for k, v in data.items():
        keys.append(f"{prefix}{k}")
        if isinstance(v, Mapping):
            keys += _dotted(v, f"{prefix}{k}.")
    return keys


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config (paths and tuples become strings and lists)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg), default=str))


def without_defaults(config: dict[str, Any], cfg: Any, names: Iterable[str]) -> dict[str, Any]:
    """``config`` without the fields ``names`` of ``cfg`` that hold their default value.

    Fields added to a config after its artefacts' ids were fixed are left out of the id (and the
    manifest) while at their default, so artefacts made before them keep their id and bytes.
    """
    defaults = {f.name: f.default for f in dataclasses.fields(cfg)}
    return {k: v for k, v in config.items() if not (k in names and getattr(cfg, k) == defaults[k])}


# --------------------------------------------------------------------------------------------
# internals


def _suggest(name: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close else f"; choose from {sorted(choices)}"


def _deep_update(dst: dict[str, Any], src: Mapping[str, Any]) -> None:
    """Merge ``src`` into ``dst``, copying its tables: a preset's nested tables stay unchanged."""
    for k, v in src.items():
        if isinstance(v, Mapping) and not isinstance(dst.get(k), dict):
            dst[k] = {}
        if isinstance(v, Mapping):
            _deep_update(dst[k], v)
        else:
            dst[k] = v


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _check_keys(cls: type, data: Mapping[str, Any], source: str, prefix: str = "") -> None:
    hints = _hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if key not in fields:
            raise ConfigError(f"{source}: unknown key {dotted!r}{_suggest(key, fields)}")
        sub = _dataclass_of(hints[key])
        if sub is not None and isinstance(value, Mapping):
            _check_keys(sub, value, source, prefix=f"{dotted}.")


def _dataclass_of(tp: Any) -> type | None:
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return tp
    return None


def _instantiate(cls: type[T], data: Mapping[str, Any], prefix: str) -> T:
    hints = _hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        sub = _dataclass_of(tp)
        if sub is not None:
            base = data.get(f.name, {})
            if not isinstance(base, Mapping):
                raise ConfigError(f"{prefix}{f.name}: expected a table of settings, got {base!r}")
            kwargs[f.name] = _instantiate(sub, base, prefix=f"{prefix}{f.name}.")
        elif f.name in data:
            kwargs[f.name] = _coerce(data[f.name], tp, f"{prefix}{f.name}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{prefix or cls.__name__}: {exc}") from None


def _coerce(value: Any, tp: Any, name: str) -> Any:
    """Check ``value`` against annotation ``tp``, converting where it is lossless."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, name)
            except ConfigError as exc:
                errors.append(str(exc))
        if isinstance(value, str) and value.lower() in ("none", "null") and type(None) in args:
            return None
        raise ConfigError(errors[0] if errors else f"{name}: bad value {value!r}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(
                f"{name}: {value!r} is not one of {list(args)}{_suggest(str(value), map(str, args))}"
            )
        return value
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{name}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{name}[{i}]") for i, v in enumerate(value))
        if len(args) != len(value):
            raise ConfigError(f"{name}: expected {len(args)} values, got {len(value)}")
        return tuple(_coerce(v, a, f"{name}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True)))
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{name}: expected a table, got {value!r}")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{name}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{name}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{name}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{name}: expected a string, got {value!r}")
    if tp is Path:
        if isinstance(value, str | Path):
            return Path(value)
        raise ConfigError(f"{name}: expected a path, got {value!r}")
    return value
