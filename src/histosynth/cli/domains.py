"""``histosynth domains``: stain and scanner variants of a patch dataset (simulated labs)."""

from __future__ import annotations

import click

from histosynth.cli.options import config_options
from histosynth.domains.labs import LAB_STRENGTHS


@click.command("domains")
@click.argument("dataset", type=click.Path(file_okay=False, exists=True))
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--labs", type=int, default=None, help="How many labs to draw [4].")
@click.option("--seed", type=int, default=None, help="Seed of the draw [0].")
@click.option("--assign", type=click.Choice(["all", "one"]), default=None,
              help="Every patch in every lab (all) or each patch in one lab (one) [all].")  # fmt: skip
@click.option("--strength", type=click.Choice(list(LAB_STRENGTHS)), default=None,
              help="How different the labs are (histosynth.domains.labs.LAB_STRENGTHS) [mild].")  # fmt: skip
@click.option("--only", multiple=True, metavar="LAB", help="Keep only this lab, e.g. lab-B (repeatable).")
@click.option("--overwrite", is_flag=True, help="Replace an output folder of another configuration.")
@config_options()
def command(dataset, out, labs, seed, assign, strength, only, overwrite, config_file, overrides) -> None:
    """Re-stain and re-scan DATASET as simulated labs into OUT (a patch dataset, maps unchanged).

    Each lab scales and shifts the hematoxylin and eosin concentrations, turns the stain
    vectors, blurs and JPEG-compresses, within published inter-lab ranges (see
    histosynth.domains.labs). OUT's index gains a `domain` column; OUT/domains.json lists
    every lab's parameters. Re-running resumes.

    Example: histosynth domains data/real data/labs --labs 4 --seed 0 --strength strong
    """
    import dataclasses

    from histosynth.cli.options import resolve
    from histosynth.console import format_table
    from histosynth.domains.stage import DomainsConfig, run

    ranges = dataclasses.asdict(LAB_STRENGTHS[strength]) if strength else None
    cfg = resolve(DomainsConfig, None, config_file, overrides, labs=labs, seed=seed, assign=assign,
                  only=list(only) or None, ranges=ranges)  # fmt: skip
    result = run(dataset, out, cfg, overwrite=overwrite)
    click.echo(result.summary.describe("chunks"))
    if not result.ok:
        raise SystemExit(1)
    keys = ("h_scale", "e_scale", "h_bias", "e_bias", "h_angle", "e_angle", "blur_um", "jpeg_quality")
    rows = [[lab["name"], *(lab[k] for k in keys)] for lab in result.manifest["domains"]]
    click.echo(format_table(["lab", *keys], rows))
    click.echo(f"wrote {result.manifest['counts']['patches']} patches to {result.folder}")
