"""``histosynth reader-study``: build a blinded real-vs-synthetic study, serve it, score it."""

from __future__ import annotations

import click


@click.group("reader-study")
def command() -> None:
    """A blinded reader study of real and synthetic images, as in the paper's pathologist evaluation.

    build: draw real and synthetic images into a shuffled folder with a hidden key;
    serve: a page on 127.0.0.1 where a rater scores realism (1-5) and guesses real or synthetic,
    each answer saved as it is given; score: discrimination accuracy with a confidence interval
    and mean realism per source.
    """


@command.command("build")
@click.option(
    "--real", required=True, type=click.Path(exists=True, file_okay=False), help="A real patch dataset."
)
@click.option(
    "--synthetic",
    required=True,
    type=click.Path(exists=True, file_okay=False),
    help="A synthetic patch dataset (histosynth sample).",
)
@click.option("-o", "--out", required=True, type=click.Path(file_okay=False), help="The study folder.")
@click.option("--n-real", type=click.IntRange(1), default=None, help="Real images drawn [all].")
@click.option("--n-synthetic", type=click.IntRange(1), default=None, help="Synthetic images drawn [all].")
@click.option(
    "--real-split", default="test", show_default=True, help="Split of --real to draw from ('all': any)."
)
@click.option("--seed", type=int, default=0, show_default=True, help="Draws, ids and orders derive from it.")
@click.option("--overwrite", is_flag=True, help="Replace a study of other settings in --out.")
def build(
    real: str,
    synthetic: str,
    out: str,
    n_real: int | None,
    n_synthetic: int | None,
    real_split: str,
    seed: int,
    overwrite: bool,
) -> None:
    """Draw images into a blinded, shuffled study folder with a hidden key (key.json)."""
    from histosynth.studio.reader_study import build_reader_study

    split = None if real_split == "all" else real_split
    study = build_reader_study(real, synthetic, out, n_real, n_synthetic, split, seed, overwrite)
    counts = study.manifest["counts"]
    click.echo(
        f"{study.folder}: {len(study)} images ({counts['real']} real, {counts['synthetic']} synthetic)"
    )
    click.echo(f"the key is {study.folder / 'key.json'}: keep it away from the raters")


@command.command("serve")
@click.argument("study_dir", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--port", type=click.IntRange(0, 65535), default=8765, show_default=True, help="Port to listen on."
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on: 0.0.0.0 (or one of this machine's addresses) serves readers at other "
    "machines, who open the printed URL with its token.",
)
def serve(study_dir: str, port: int, host: str) -> None:
    """Serve the study's rating page at /reader (the key is never served).

    The printed URL carries a token, new at every launch; give it to the raters. Without it the
    page does not open, so serving to other machines (--host) exposes nothing to the network.
    """
    from histosynth.cli.studio import run_app, web_deps

    web_deps()
    from histosynth.studio.access import Access
    from histosynth.studio.app import create_app
    from histosynth.studio.reader_study import ReaderStudy

    app = create_app(study=ReaderStudy(study_dir), access=Access.serving(host))
    run_app(app, port, "/reader", host)


def _fmt(x: float | None) -> str:
    return "–" if x is None else f"{x:.3f}"


@command.command("score")
@click.argument("study_dir", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--key",
    "key_path",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="The key, if kept outside the study folder [STUDY_DIR/key.json].",
)
@click.option("--confidence", type=click.FloatRange(0.5, 0.999), default=0.95, show_default=True)
@click.option(
    "-o",
    "--out",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write the scores as JSON here [STUDY_DIR/scores.json].",
)
def score(study_dir: str, key_path: str | None, confidence: float, out: str | None) -> None:
    """Discrimination accuracy (with a Wilson interval) and mean realism per source."""
    from pathlib import Path

    from histosynth.artifacts import atomic_write_json
    from histosynth.console import format_table
    from histosynth.studio.scoring import score_study

    s = score_study(study_dir, key_path, confidence)
    d = s["discrimination"]
    pct = f"{100 * confidence:g}%"
    click.echo(f"{s['ratings']} ratings of {s['items']} images by {len(s['per_rater'])} rater(s)")
    click.echo(
        f"discrimination accuracy {_fmt(d['accuracy'])} ({pct} CI {_fmt(d['ci'][0])}–{_fmt(d['ci'][1])}, "
        f"p vs chance {_fmt(d['p_value_vs_chance'])})"
    )
    rows = [[src, r["n"], r["mean"], f"{_fmt(r['ci'][0])}–{_fmt(r['ci'][1])}", r["called_real"]]
            for src, r in s["realism"].items()]  # fmt: skip
    header = ["source", "n", "mean realism (1-5)", f"{pct} CI", "called real"]
    click.echo(format_table(header, rows, digits=3))
    path = Path(out) if out else Path(study_dir) / "scores.json"
    atomic_write_json(path, s)
    click.echo(f"scores written to {path}")
