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


def executor_options(what: str, workers_flag: str = "--workers") -> Callable[[F], F]:
    """Add ``--executor local|ray``, ``--ray-address ADDR`` and a worker count to a stage command.

    Parameters
    ----------
    what
        What the workers run in parallel, for the help text ("slides", "batches").
    workers_flag
        The worker-count flag (``embed`` keeps ``--workers`` for its patch readers).
    """

    def deco(fn: F) -> F:
        fn = click.option(
            workers_flag, "executor_workers", type=int, default=None,
            help=f"{what.capitalize()} run in parallel: local processes [1], or Ray actors for "
            "model stages [one per GPU, or CPU, of the cluster].",
        )(fn)  # fmt: skip
        fn = click.option(
            "--ray-address", default=None, metavar="ADDR",
            help="Ray cluster address (host:port) for --executor ray; default: start Ray here.",
        )(fn)  # fmt: skip
        return click.option(
            "--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
            help="Where items run: processes on this machine, or a Ray cluster. Outputs are the same.",
        )(fn)  # fmt: skip

    return deco


def make_stage_executor(
    executor: str = "local",
    ray_address: str | None = None,
    executor_workers: int | None = None,
    models: bool = False,
    device: str = "cpu",
):
    """The executor the ``executor_options`` ask for (one GPU per Ray worker on a CUDA device).

    Takes the options by their names, so a command can pass them on as ``**executor_args``.
    """
    from histosynth.config import ConfigError
    from histosynth.distributed.executors import make_executor

    if ray_address is not None and executor != "ray":
        raise ConfigError("--ray-address is for --executor ray")
    if executor_workers is not None and executor_workers < 1:
        raise ConfigError(f"the worker count must be at least 1, got {executor_workers}")
    gpus = 1 if executor == "ray" and device.startswith("cuda") else 0
    return make_executor(executor, executor_workers, ray_address, models=models, gpus_per_worker=gpus)


def echo_failures(summary: Any) -> None:
    """One line on standard error per failed item of a stage's summary."""
    for rec in summary.failed:
        click.echo(f"  failed: {rec.key}: {rec.error}", err=True)


def classes_option(fn: F) -> F:
    """``--classes``: a classes.json file or a named label scheme."""
    return click.option(
        "--classes", default=None,
        help="classes.json (with optional aliases/fill) or a preset: camelyon16, panda-radboud, panda-karolinska.",
    )(fn)  # fmt: skip


def annotations_option(fn: F) -> F:
    """``--annotations DIR``: per-slide annotation files."""
    return click.option(
        "--annotations", type=click.Path(exists=True, file_okay=False), default=None,
        help="Folder of per-slide annotations: <slide>.xml (ASAP/Camelyon16), .geojson/.json (QuPath), "
        "or a label mask <slide>[_mask].tif/.png.",
    )(fn)  # fmt: skip


def data_stage_options(split_help: str, seed_help: str, what: str) -> Callable[[F], F]:
    """The options ``tile`` and ``dataset`` share: annotations and classes, ``--split-file``,
    ``--seed``, ``--overwrite`` and the executor options (``what`` runs in parallel)."""

    def deco(fn: F) -> F:
        fn = executor_options(what)(fn)
        fn = click.option(
            "--overwrite", is_flag=True, help="Replace an output folder that holds another artefact."
        )(fn)
        fn = click.option("--seed", type=int, default=None, help=seed_help)(fn)
        fn = click.option(
            "--split-file", type=click.Path(exists=True, dir_okay=False), default=None, help=split_help
        )(fn)
        return annotations_option(classes_option(fn))

    return deco


def preset_choices(module: str, cls: str) -> list[str]:
    """Preset names of the config class ``module.cls`` (imported only when the CLI is built)."""
    import importlib

    from histosynth.config import preset_names

    return preset_names(getattr(importlib.import_module(module), cls))
