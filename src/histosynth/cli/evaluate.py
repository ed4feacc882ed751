"""``histosynth evaluate``: synthetic variants against one real dataset → ``metrics.json``."""

from __future__ import annotations

import click

from histosynth.cli.options import config_options, preset_choices

_PRESETS = preset_choices("histosynth.evaluate.config", "EvaluateConfig")


def _variants(values: tuple[str, ...]) -> dict[str, str]:
    from pathlib import Path

    out: dict[str, str] = {}
    for text in values:
        name, sep, folder = text.partition("=")
        if not sep:
            name, folder = Path(text).name, text
        if name in out:
            raise click.BadParameter(f"variant {name!r} given twice", param_hint="--synthetic")
        out[name.strip()] = folder.strip()
    return out


@click.command("evaluate")
@click.option(
    "--real",
    "real",
    required=True,
    type=click.Path(file_okay=False, exists=True),
    help="The real images: a patch dataset (its train split is what the model saw) or a folder of PNGs.",
)
@click.option(
    "--synthetic",
    "synthetic",
    multiple=True,
    required=True,
    metavar="NAME=DIR",
    help="A synthetic patch dataset or a folder of PNGs, and its variant name (repeatable: one per variant).",
)
@click.option(
    "--out",
    "out",
    default="histosynth-evaluation",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Output folder (resumed when it holds the same evaluation).",
)
@click.option(
    "--detector",
    "detectors",
    multiple=True,
    metavar="NAME",
    help="A detector to compute metrics in (repeatable); see --list-detectors.",
)
@click.option(
    "--detector-weights",
    "weights",
    multiple=True,
    metavar="NAME=PATH",
    help="A local weight file for a detector, e.g. inception-v3=pt_inception.safetensors.",
)
@click.option("--overwrite", is_flag=True, help="Replace an output folder holding another evaluation.")
@click.option(
    "--list-detectors",
    is_flag=True,
    is_eager=True,
    expose_value=False,
    callback=lambda ctx, _p, v: _list(ctx) if v else None,
    help="List detectors and exit.",
)
@config_options(_PRESETS)
def command(real, synthetic, out, detectors, weights, overwrite, preset, config_file, overrides) -> None:  # fmt: skip
    """Evaluate synthetic datasets against a real one: FD, KID, precision/recall/density/coverage
    per (variant, detector), per-class FD, mask fidelity, TSTR segmentation, memorisation and
    hallucination flags. Writes OUT/metrics.json; re-running resumes (features are cached).

    Example: histosynth evaluate --real data/real --synthetic map=syn/map --synthetic tokens=syn/tokens
    --detector handcrafted --detector random-cnn --out eval/ --preset cpu

    Plain folders of PNG images work too (another generator's output, a collaborator's folder):
    FD, KID, PRDC and memorisation are computed; the metrics that need label maps are skipped.
    """
    from histosynth.cli.options import resolve
    from histosynth.evaluate.config import EvaluateConfig
    from histosynth.evaluate.suite import METRICS_FILE, read_metrics, run

    cfg = resolve(EvaluateConfig, preset, config_file, overrides,
                  detectors=list(detectors) or None, detector_weights=list(weights) or None)  # fmt: skip
    result = run(_variants(synthetic), out, cfg, real=real, overwrite=overwrite)
    click.echo(_summary(read_metrics(result.folder)))
    click.echo(f"wrote {out}/{METRICS_FILE}")


def _list(ctx: click.Context) -> None:
    from histosynth.console import format_table
    from histosynth.evaluate.detectors import DETECTORS, detector_names

    rows = [
        [n, DETECTORS.help(n) if n in DETECTORS else "encoder of the embedding stage"]
        for n in detector_names()
    ]
    click.echo(format_table(["detector", "what it is"], rows))
    ctx.exit(0)


_DISTRIBUTION = (("FD", "fd"), ("KID", "kid"), ("precision", "precision"), ("recall", "recall"),
                 ("density", "density"), ("coverage", "coverage"))  # fmt: skip
_PER_VARIANT = (("C2ST", "c2st"), ("speckle ratio", "speckle_ratio"), ("mask mIoU", "mask_miou"),
                ("TSTR mIoU", "tstr_miou"), ("memorised", "memo_offending_images"), ("crop copies", "crop_copies"),
                ("flagged", "hallucination_flagged"))  # fmt: skip


def _summary(result: dict) -> str:
    """Aligned tables: distribution metrics per detector, then the per-variant checks, with the
    held-out real patches' row (the C2ST, speckle and mask mIoU floors) under the variants."""
    from histosynth.console import format_table
    from histosynth.evaluate.data import REAL_HELDOUT

    metrics = result["metrics"]
    blocks = [
        format_table(
            ["variant", *(h for h, _ in _DISTRIBUTION)],
            [[v, *(m.get(f"{k}_{det}") for _, k in _DISTRIBUTION)] for v, m in metrics.items()],
            title=f"{det}:",
            indent=2,
        )  # fmt: skip
        for det in result["metric_detectors"]
    ]
    rows = [[v, *(metrics[v].get(k) for _, k in _PER_VARIANT)] for v in result["variants"]]
    floor = [REAL_HELDOUT, *(metrics.get(REAL_HELDOUT, {}).get(k) for _, k in _PER_VARIANT)]
    if any(x is not None for x in floor[1:]):
        rows.append(floor)
    blocks.append(format_table(["variant", *(h for h, _ in _PER_VARIANT)], rows, title="checks:", indent=2))
    if result.get("domains"):
        blocks.append(_domain_table(result))
    blocks.extend(f"note: {n}" for n in result.get("notes", []))
    return "\n".join(blocks)


def _domain_table(result: dict) -> str:
    """Per-domain FD under each detector and crop adherence per space, one row per variant."""
    from histosynth.console import format_table

    dets = result["metric_detectors"]
    keys = [f"domainfd_{d}" for d in dets] + [f"adherence_{s}" for s in ("stain", *dets)]
    heads = [f"per-domain FD {d}" for d in dets] + [f"adherence {s}" for s in ("stain", *dets)]
    rows = [[v, *(m.get(k) for k in keys)] for v, m in result["metrics"].items()]
    title = f"simulated labs ({', '.join(result['domains'])}): per-domain FD, crop adherence (< 1: follows its crops):"
    return format_table(["variant", *heads], rows, title=title, indent=2)
