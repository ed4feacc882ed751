"""Options shared by stage commands: presets, TOML config, ``--set`` overrides."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def config_options(preset_choices: list[str] | None = None) -> Callable[[F], F]:
    """Add ``--preset``, ``--config FILE`` and repeatable ``--set KEY=VALUE`` to a command."""

    def deco(fn: F) -> F:
        fn = click.option(
            "--set", "overrides", multiple=True, metavar="KEY=VALUE",
            help="Override one config value, e.g. --set train.lr=1e-4 (repeatable).",
        )(fn)  # fmt: skip
        fn = click.option(
            "--config", "config_file", type=click.Path(dir_okay=False), default=None,
            help="A TOML file with config values.",
        )(fn)  # fmt: skip
        if preset_choices:
            fn = click.option(
                "--preset", type=click.Choice(preset_choices), default=None, help="A named preset."
            )(fn)
        return fn

    return deco


def resolve(
    cls: type, preset: str | None, config_file: str | None, overrides: tuple[str, ...], **values: Any
):
    """Build the config from CLI layers; explicit CLI flags (``values``) win over the file."""
    from histosynth.config import build_config

    given = {k: v for k, v in values.items() if v is not None}
    return build_config(cls, preset=preset, toml_file=config_file, values=given or None, overrides=overrides)
