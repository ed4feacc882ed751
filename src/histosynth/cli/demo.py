"""``histosynth demo``: the main job, end to end on real H&E (grows with the pipeline)."""

from __future__ import annotations

import click


@click.command("demo")
@click.option("--out", default="histosynth-demo", show_default=True, type=click.Path(file_okay=False))
def command(out: str) -> None:
    """Run the most complete job this build has on the bundled real slide."""
    from pathlib import Path

    from histosynth.doctor import run_checks
    from histosynth.samples import cmu_small_region, write_synthetic_slide

    out_dir = Path(out)
    for section, rows in run_checks().items():
        click.echo(f"{section}: " + ", ".join(f"{n} {d}" for n, s, d in rows if s == "ok"))
    slide = write_synthetic_slide(out_dir / "synthetic.tif", size=(2048, 1536))
    click.echo(f"real slide: {cmu_small_region(verify=True)}")
    click.echo(f"synthetic slide with ground truth: {slide.path}")
