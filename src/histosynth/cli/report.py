"""``histosynth report``: one self-contained HTML page from an evaluation folder."""

from __future__ import annotations

import click


@click.command("report")
@click.argument("evaluation", type=click.Path(file_okay=False, exists=True))
@click.option(
    "--out",
    "out",
    type=click.Path(dir_okay=False),
    default=None,
    help="The HTML file to write (default EVALUATION/report.html).",
)
@click.option(
    "--train-stats",
    "train_stats",
    multiple=True,
    metavar="NAME=FILE",
    help="A variant's diffusion training stats.jsonl (repeatable); found through the "
    "synthetic dataset's manifest when not given.",
)
@click.option("--samples", default=6, show_default=True, help="Sample-grid rows per variant.")
@click.option(
    "--max-listed", default=24, show_default=True, help="Most offenders/flagged images pictured per variant."
)
@click.option("--grid", "grid", metavar="VARIANT=PNG", multiple=True,
              help="Also write VARIANT's sample grid (map | crops | synthetic | nearest real) as a PNG.")  # fmt: skip
def command(evaluation: str, out: str | None, train_stats: tuple[str, ...], samples: int, max_listed: int,
            grid: tuple[str, ...]) -> None:  # fmt: skip
    """Write the report of EVALUATION (a `histosynth evaluate` folder): sample grids (map | crops |
    synthetic | nearest real), metric tables with the variants side by side, plots (FD per
    detector and variant, precision/recall, TSTR IoU, training loss) and the flagged images.
    Images are inlined, so the page is one file that opens offline."""
    from histosynth.report.page import ReportConfig, run

    stats = {}
    for item in train_stats:
        name, sep, path = item.partition("=")
        if not sep:
            raise click.BadParameter(f"expected NAME=FILE, got {item!r}", param_hint="--train-stats")
        stats[name] = path
    result = run(evaluation, out, ReportConfig(samples, max_listed), train_stats=stats)
    click.echo(f"wrote {result.folder}")
    for item in grid:
        name, sep, path = item.partition("=")
        if not sep:
            raise click.BadParameter(f"expected VARIANT=PNG, got {item!r}", param_hint="--grid")
        from histosynth.artifacts import atomic_write_bytes
        from histosynth.data.patch_dataset import encode_png
        from histosynth.report.page import sample_grid

        try:
            image = sample_grid(evaluation, name, samples)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--grid") from None
        atomic_write_bytes(path, encode_png(image))
        click.echo(f"wrote {path}")
