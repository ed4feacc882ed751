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
    help="The real patch dataset (its train split is what the model saw).",
)
@click.option(
    "--synthetic",
    "synthetic",
    multiple=True,
    required=True,
    metavar="NAME=DIR",
    help="A synthetic patch dataset and its variant name (repeatable: one per variant).",
)
@click.option("--out", "out", required=True, type=click.Path(file_okay=False), help="Output folder.")
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
    from histosynth.evaluate.detectors import DETECTORS, detector_names

    for name in detector_names():
        click.echo(
            f"{name:<20} {DETECTORS.help(name) if name in DETECTORS else 'encoder of the embedding stage'}"
        )
    ctx.exit(0)


def _fmt(v) -> str:
    return "—" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)


def _summary(result: dict) -> str:
    lines = []
    for det in result["metric_detectors"]:
        lines.append(
            f"{det}:  {'variant':<16}{'FD':>10}{'KID':>10}{'prec':>7}{'rec':>7}{'dens':>7}{'cov':>7}"
        )
        for v, m in result["metrics"].items():
            vals = [m.get(f"{k}_{det}") for k in ("fd", "kid", "precision", "recall", "density", "coverage")]
            lines.append(
                f"    {v:<16}"
                + "".join(f"{_fmt(x):>{w}}" for x, w in zip(vals, (10, 10, 7, 7, 7, 7), strict=True))
            )
    for v in result["variants"]:
        m = result["metrics"][v]
        lines.append(f"{v}: C2ST {_fmt(m.get('c2st'))} (real floor "
                     f"{_fmt(result['metrics'].get('real-heldout', {}).get('c2st'))}), mask mIoU {_fmt(m.get('mask_miou'))}, TSTR mIoU {_fmt(m.get('tstr_miou'))}, "
                     f"memorisation offenders {m.get('memo_offending_images', 0)}, crop copies "
                     f"{m.get('crop_copies', 0)}, flagged {m.get('hallucination_flagged', 0)}")  # fmt: skip
    return "\n".join(lines)
