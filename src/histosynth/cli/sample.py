"""``histosynth sample``: a synthetic annotated dataset (or one large image) from a trained model."""

from __future__ import annotations

import click

from histosynth.cli.options import config_options, executor_options, make_stage_executor, resolve

SAMPLER_CHOICES = ["ddim", "dpm++", "dpm++-karras", "dpm++-sde", "unipc", "euler"]  # = SAMPLERS (tested)


@click.command("sample")
@click.argument("checkpoint", type=click.Path(exists=True, file_okay=False))
@click.argument("out", type=click.Path(file_okay=False))
@click.option(
    "--crop-bank", type=click.Path(file_okay=False), help="Crop bank folder (built if --bank-from)."
)
@click.option("--bank-from", type=click.Path(exists=True, file_okay=False),
              help="Build the crop bank from this patch dataset (train split) first.")  # fmt: skip
@click.option("--maps-from", type=click.Path(exists=True, file_okay=False),
              help="Take maps from this patch dataset (held-out split, see --set split=...).")  # fmt: skip
@click.option("--maps-png", type=click.Path(exists=True, file_okay=False), help="A folder of label PNGs.")
@click.option("--classes", "classes_file", type=click.Path(exists=True, dir_okay=False),
              help="Class map for --maps-png.")  # fmt: skip
@click.option("--procedural", type=click.Choice(["noise", "voronoi"]), help="Generate maps procedurally.")
@click.option("-n", "--n", type=int, help="Number of images.")
@click.option("--sampler", type=click.Choice(SAMPLER_CHOICES))
@click.option("--steps", type=int)
@click.option("--guidance-map", type=float, help="Classifier-free guidance scale of the map.")
@click.option("--guidance-crops", type=float, help="Classifier-free guidance scale of the crops.")
@click.option("--batch-size", type=int)
@click.option("--seed", type=int)
@click.option("--size", default=None, help="WIDTHxHEIGHT larger than the model's patch: one large image.")
@click.option("--device", default="cpu", show_default=True)
@click.option("--overwrite", is_flag=True, help="Replace an output folder of another configuration.")
@executor_options("batches")
@config_options(["paper", "fast"])
def command(checkpoint, out, crop_bank, bank_from, maps_from, maps_png, classes_file, procedural, n, sampler,
            steps, guidance_map, guidance_crops, batch_size, seed, size, device, overwrite, executor, ray_address,
            executor_workers, preset, config_file, overrides) -> None:  # fmt: skip
    """Sample images from CHECKPOINT (a `histosynth train` folder) into OUT.

    OUT is a patch dataset like real data (images/, maps/, index.parquet) whose maps are exactly
    the maps the images were conditioned on. Re-running the same command resumes it. With
    --executor ray, batches run on Ray actors that each load the model once (one GPU each with
    --device cuda); the images are the same whichever executor made them.
    """
    from pathlib import Path

    from histosynth.sample.stage import SampleConfig, run

    maps = "dataset" if maps_from else "png" if maps_png else "procedural" if procedural else None
    cfg = resolve(
        SampleConfig, preset, config_file, overrides, n=n, sampler=sampler, steps=steps, guidance_map=guidance_map,
        guidance_crops=guidance_crops, batch_size=batch_size, seed=seed, maps=maps,
        maps_dir=maps_from or maps_png, classes_file=classes_file, procedural_kind=procedural,
    )  # fmt: skip
    if bank_from:
        from histosynth.sample import crop_bank as bank_stage

        crop_bank = crop_bank or str(Path(out).with_name(Path(out).name + "-crops"))
        bank_stage.run(bank_from, crop_bank)
        click.echo(f"crop bank: {crop_bank}")
    if size:
        from histosynth.sample import large

        try:
            w, h = (int(v) for v in size.lower().split("x"))
        except ValueError:
            raise click.BadParameter(f"expected WIDTHxHEIGHT, got {size!r}", param_hint="--size") from None
        large_cfg = large.LargeConfig.from_sample(cfg, (w, h))
        made = large.run(checkpoint, out, large_cfg, crop_bank=crop_bank, device=device, overwrite=overwrite)
        facts = made.manifest["result"]
        click.echo(
            f"wrote {facts['image']} (seam score {facts['seam_score']:.3f}), labels and GeoJSON in {out}"
        )
        return
    if cfg.maps == "dataset" and not cfg.maps_dir:
        raise click.UsageError("give a map source: --maps-from DATASET, --maps-png DIR or --procedural KIND")
    with make_stage_executor(executor, ray_address, executor_workers, models=True, device=device) as runner:
        result = run(
            checkpoint, out, cfg, crop_bank=crop_bank, device=device, executor=runner, overwrite=overwrite
        )
    click.echo(result.summary.describe("batches"))
    if not result.ok:
        raise SystemExit(1)
    click.echo(f"wrote {cfg.n} synthetic images with their maps to {result.folder}")
