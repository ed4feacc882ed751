"""``histosynth train-codec``: train the KL autoencoder that maps patches to latents."""

from __future__ import annotations

import click

from histosynth.cli.options import config_options

PRESETS = ["cpu-tiny", "cpu-small", "paper", "large"]  # histosynth.train.codec presets (a test checks)


@click.command("train-codec")
@click.argument("dataset", type=click.Path(file_okay=False, exists=True))
@click.argument("out", type=click.Path(file_okay=False))
@config_options(PRESETS)
@click.option("--steps", type=int, default=None, help="Optimiser steps in all.")
@click.option("--batch-size", type=int, default=None)
@click.option("--lr", type=float, default=None)
@click.option("--adv-weight", type=float, default=None, help="Weight of the adversarial term (0: off).")
@click.option("--max-minutes", type=float, default=None, help="Stop with a checkpoint after this much time.")
@click.option("--threads", type=int, default=None, help="torch CPU threads.")
@click.option("--overwrite", is_flag=True, help="Start afresh when OUT holds another run.")
def command(dataset: str, out: str, preset: str | None, config_file: str | None, overrides: tuple[str, ...],
            steps: int | None, batch_size: int | None, lr: float | None, adv_weight: float | None,
            max_minutes: float | None, threads: int | None, overwrite: bool) -> None:  # fmt: skip
    """Train a KL codec on DATASET into OUT (default preset: cpu-tiny); re-running resumes.

    Pass OUT to `histosynth train --codec OUT`. A diffusers AutoencoderKL you already have
    (e.g. a Stable Diffusion VAE folder) needs no training: pass its folder to --codec.
    """
    from histosynth.cli.options import resolve
    from histosynth.train.codec import CodecTrainConfig, run

    run_values = {k: v for k, v in dict(steps=steps, batch_size=batch_size, lr=lr, max_minutes=max_minutes,
                                        threads=threads).items() if v is not None}  # fmt: skip
    values = {"run": run_values} if run_values else {}
    if adv_weight is not None:
        values["loss"] = {"adv_weight": adv_weight}
    cfg = resolve(CodecTrainConfig, preset or "cpu-tiny", config_file, overrides, **values)
    result = run(dataset, out, cfg, overwrite=overwrite)
    done = result.summary
    if done.finished:
        click.echo(f"done: {done.step} steps; use --codec {result.folder}")
    else:
        click.echo(f"stopped at step {done.step} of {cfg.run.steps}; re-run the same command to continue")
