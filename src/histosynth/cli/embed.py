"""``histosynth embed``: sub-tile features of every tile, from a registered encoder."""

from __future__ import annotations

import click

from histosynth.cli.options import config_options, echo_failures, executor_options


def _list_encoders(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    from histosynth.console import format_table
    from histosynth.embed.encoders import ENCODERS, encoder_status

    status = encoder_status(registry_file=ctx.params.get("weights_registry"))
    rows = [["✓" if r["available"] else "·", r["name"], ENCODERS.get(r["name"]).dim, ENCODERS.get(r["name"]).help]
            for r in status]  # fmt: skip
    click.echo(format_table(["", "encoder", "dim", "what it is"], rows))
    missing = [f"  {r['detail']}" for r in status if not r["available"]]
    if missing:
        click.echo("\nnot available (· above):\n" + "\n".join(missing))
    ctx.exit(0)


@click.command("embed")
@click.argument("tiles", type=click.Path(exists=True), required=False)
@click.option("-o", "--out", type=click.Path(file_okay=False), help="Output embeddings folder.")
@click.option("--encoder", default=None, help="Encoder name (see --list-encoders); default handcrafted.")
@click.option("--weights", default=None, help="Weights file (.safetensors) or folder for the encoder.")
@click.option("--weights-registry", type=click.Path(dir_okay=False), default=None,
              help="Local weights registry (TOML); default ~/.config/histosynth/weights.toml.")  # fmt: skip
@click.option("--allow-hub", is_flag=True, default=None, help="Also use weights already in the HF hub cache.")
@click.option(
    "--subtile", type=int, default=None, help="Sub-tile side in px (at the tiles' mpp); default 64."
)
@click.option("--stride", type=int, default=None, help="Sub-tile step in px; must divide the patch size.")
@click.option("--batch-size", type=int, default=None, help="Sub-tiles per forward pass; default 256.")
@click.option("--workers", type=int, default=None, help="DataLoader workers reading patches; default 2.")
@click.option("--device", default=None, help="Torch device (cpu, cuda, cuda:1, mps).")
@click.option(
    "--fit-ssl", is_flag=True, default=None, help="Train the ssl-tiny encoder on these tiles first."
)
@click.option("--overwrite", is_flag=True, help="Replace an output folder that holds another artefact.")
@click.option("--list-encoders", is_flag=True, expose_value=False, is_eager=False, callback=_list_encoders,
              help="List encoders, whether their weights are found, and exit.")  # fmt: skip
@executor_options("slides", workers_flag="--jobs")
@config_options(["handcrafted", "ssl", "random", "foundation"])
def command(tiles: str | None, out: str | None, weights_registry: str | None, overwrite: bool, preset: str | None,
            config_file: str | None, overrides: tuple[str, ...], fit_ssl: bool | None, executor: str,
            ray_address: str | None, executor_workers: int | None, **values: object) -> None:  # fmt: skip
    """Embed the sub-tiles of every tile in TILES (a `histosynth tile` folder or tiles.parquet).

    Features are float16 shards with a parquet index (slide, patch, sub-tile offset); the
    manifest records the encoder's identity and weight checksum. Re-running resumes per slide.
    Weights are never downloaded: pass --weights, list them in the registry file, or opt in to
    the hub cache with --allow-hub. `--fit-ssl` trains a small in-domain encoder (minutes, CPU).
    With --executor ray, slides are embedded by Ray actors that each load the encoder once
    (one GPU each with --device cuda).
    """
    from histosynth.cli.options import make_stage_executor, resolve
    from histosynth.embed.stage import EmbedConfig, run

    if tiles is None or out is None:
        raise click.UsageError("TILES and --out are required (or use --list-encoders)")
    if fit_ssl:
        values["fit_ssl"] = True
        values["encoder"] = values.get("encoder") or "ssl-tiny"
    cfg = resolve(EmbedConfig, preset, config_file, overrides, **values)
    with make_stage_executor(
        executor, ray_address, executor_workers, models=True, device=cfg.device
    ) as runner:
        result = run(tiles, out, cfg, registry_file=weights_registry, executor=runner, overwrite=overwrite)
    c, enc = result.manifest["counts"], result.manifest["encoder"]
    click.echo(f"{out}: {c['vectors']} sub-tile vectors from {c['slides']} slides "
               f"({enc['name']}, {enc['identity']}), {c['failed']} failed")  # fmt: skip
    echo_failures(result.summary)
    if c["slides"] == 0:
        raise SystemExit(1)
