"""``histosynth train``: train the map + crop conditioned diffusion model on a patch dataset."""

from __future__ import annotations

import click

from histosynth.cli.options import config_options, preset_choices
from histosynth.diffusion.backbones import BACKBONES as _BACKBONES
from histosynth.diffusion.conditioning import CONDITIONINGS as _CONDITIONINGS

# Read from the name tables, which load without torch: `histosynth --help` stays light.
PRESETS = preset_choices("histosynth.train.config", "TrainConfig")
BACKBONES = list(_BACKBONES)
CONDITIONINGS = _CONDITIONINGS.names()


@click.command("train")
@click.argument("dataset", type=click.Path(file_okay=False, exists=True))
@click.argument("out", type=click.Path(file_okay=False))
@config_options(PRESETS)
@click.option(
    "--backbone",
    type=click.Choice(BACKBONES),
    default=None,
    help="Backbone preset: a UNet (test, cpu-tiny, ...) or a DiT (dit-tiny, ...); default: the preset's.",
)
@click.option(
    "--conditioning",
    type=click.Choice(CONDITIONINGS),
    default=None,
    help="Conditioning variant (the paper's ablation: map, map+crops-spatial; ours: map+crops-tokens).",
)
@click.option(
    "--codec",
    default=None,
    help="identity, identity-p2, identity-p4, or a codec folder (train-codec output, a diffusers AutoencoderKL).",
)
@click.option("--steps", type=int, default=None, help="Optimiser steps in all (re-run with more to extend).")
@click.option("--batch-size", type=int, default=None, help="Global batch size.")
@click.option("--lr", type=float, default=None, help="Peak learning rate.")
@click.option("--seed", type=int, default=None, help="Run seed (data order, noise, crops, init).")
@click.option("--mixed-precision", type=click.Choice(["auto", "no", "fp16", "bf16"]), default=None)
@click.option("--max-minutes", type=float, default=None, help="Stop with a checkpoint after this much time.")
@click.option("--workers", type=int, default=None, help="DataLoader worker processes.")
@click.option("--threads", type=int, default=None, help="torch CPU threads.")
@click.option("--overwrite", is_flag=True, help="Start afresh when OUT holds another run.")
def command(dataset: str, out: str, preset: str | None, config_file: str | None, overrides: tuple[str, ...],
            backbone: str | None, conditioning: str | None, codec: str | None, steps: int | None,
            batch_size: int | None, lr: float | None, seed: int | None, mixed_precision: str | None,
            max_minutes: float | None, workers: int | None, threads: int | None, overwrite: bool) -> None:  # fmt: skip
    """Train on DATASET (a patch dataset folder) into OUT (default preset: cpu-tiny).

    Re-running the same command resumes; with more --steps it extends a finished run.

    Several GPUs: `accelerate launch -m histosynth train ...`. OUT/model is the final pipeline
    (HistoSynthPipeline.from_pretrained), OUT/samples the sample grids, OUT/stats.jsonl the log.
    """
    from histosynth.cli.options import resolve
    from histosynth.train.config import TrainConfig
    from histosynth.train.loop import run

    values = {
        "model": _given(backbone=backbone, conditioning=conditioning, codec=codec),
        "optim": _given(batch_size=batch_size, lr=lr),
        "run": _given(steps=steps, seed=seed, mixed_precision=mixed_precision, max_minutes=max_minutes,
                      threads=threads),
        "data": _given(workers=workers),
    }  # fmt: skip
    cfg = resolve(
        TrainConfig, preset or "cpu-tiny", config_file, overrides, **{k: v for k, v in values.items() if v}
    )
    result = run(dataset, out, cfg, overwrite=overwrite)
    done = result.summary
    if done.finished:
        click.echo(f"done: {done.step} steps; the model is {result.folder / 'model'}")
    else:
        click.echo(f"stopped at step {done.step} of {cfg.run.steps}; re-run the same command to continue")


def _given(**values: object) -> dict[str, object]:
    return {k: v for k, v in values.items() if v is not None}
