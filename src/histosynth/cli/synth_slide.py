"""``histosynth synth-slide``: write a synthetic pyramidal slide with a known label map."""

from __future__ import annotations

import click


@click.command("synth-slide")
@click.argument("out", type=click.Path(dir_okay=False))
@click.option("--size", default="4096x3072", show_default=True, help="Level-0 WIDTHxHEIGHT in pixels.")
@click.option("--levels", default=3, show_default=True, help="Pyramid levels (2x each).")
@click.option("--mpp", default=0.5, show_default=True, help="Level-0 µm per pixel.")
@click.option(
    "--classes", "num_classes", default=4, show_default=True, help="Classes incl. background (2..5)."
)
@click.option("--layout", type=click.Choice(["blobs", "blocks"]), default="blobs", show_default=True)
@click.option(
    "--compression", type=click.Choice(["jpeg", "deflate", "none"]), default="jpeg", show_default=True
)
@click.option("--seed", default=0, show_default=True)
def command(out: str, size: str, levels: int, mpp: float, num_classes: int, layout: str, compression: str,
            seed: int) -> None:  # fmt: skip
    """Write OUT (a pyramidal TIFF), OUT's label map (.labels.png) and class map (.classes.json)."""
    from pathlib import Path

    from histosynth.samples import write_synthetic_slide

    try:
        w, h = (int(v) for v in size.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"expected WIDTHxHEIGHT, got {size!r}", param_hint="--size") from None
    slide = write_synthetic_slide(
        out, (w, h), levels, mpp, num_classes, layout, compression=compression, seed=seed
    )
    stem = Path(out).with_suffix("")
    if w * h <= 64e6:
        slide.save_label_png(f"{stem}.labels.png")
    slide.classes.save(f"{stem}.classes.json")
    click.echo(f"wrote {out} ({w}×{h} px, {levels} levels, {mpp} µm/px, classes {slide.classes.names})")
