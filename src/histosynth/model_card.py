"""Model cards: ``README.md`` with YAML front matter in every trained pipeline folder.

The convention of diffusers and the model hubs: the front matter carries machine-readable
facts (``library_name``, ``pipeline_tag``, ``tags``, ``model-index`` with evaluation results),
the Markdown body says the same for people. histosynth's own facts sit under the
``histosynth`` key: the training data (dataset id and folder, slides, classes, patches, mpp),
the config, the step count, and the latest evaluation of samples from this model.

``train`` writes the card into ``<run>/model/`` when the run finishes; ``evaluate`` rewrites it
whenever it has scored a synthetic dataset sampled from that model (found through the
dataset's manifest, ``inputs.model``). The card is a pure function of its front matter, so
updating it means: read the front matter, change it, render again. Training writes it without
a date, so a resumed run's model folder is byte-equal to an uninterrupted run's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from histosynth.artifacts import atomic_write_text

__all__ = ["CARD", "read_model_card", "record_evaluation", "render_model_card", "write_model_card"]

CARD = "README.md"
_TAGS = ["histosynth", "histopathology", "semantic-image-synthesis", "latent-diffusion", "synthetic-data"]
# Per-variant metrics copied into the card (with their detector suffix), then detector-free ones.
_DISTRIBUTION = ("fd", "kid", "precision", "recall", "density", "coverage")
_CHECKS = (
    "c2st",
    "speckle_ratio",
    "mask_miou",
    "tstr_miou",
    "memo_offending_images",
    "hallucination_flagged",
)


def _plain(obj: Any) -> Any:
    """JSON-ready (tuples become lists, paths strings): what a YAML safe dumper accepts."""
    return json.loads(json.dumps(obj, default=str))


def write_model_card(model_dir: str | Path, dataset: Any, config: Mapping[str, Any], steps: int) -> Path:
    """Write the card of a freshly trained model.

    Parameters
    ----------
    model_dir
        The pipeline folder (``<run>/model``).
    dataset
        The :class:`~histosynth.data.patch_dataset.PatchDataset` it was trained on.
    config
        The training config (as a dict).
    steps
        Optimiser steps done.
    """
    model_dir = Path(model_dir)
    index = dataset.index
    model = config.get("model", {})
    facts = {
        "run": model_dir.parent.name,
        "steps": int(steps),
        "conditioning": model.get("conditioning"),
        "backbone": model.get("backbone"),
        "codec": model.get("codec"),
        "image_size": config.get("data", {}).get("image_size"),
        "seed": config.get("run", {}).get("seed"),
        "dataset": {
            "id": dataset.id,
            "folder": str(dataset.folder),
            "split": config.get("data", {}).get("split"),
            "patches": len(dataset),
            "slides": sorted(map(str, index["slide"].unique())) if "slide" in index else [],
            "mpp": float(index["mpp"].median()) if len(index) and "mpp" in index else None,
            "classes": [{"id": c.id, "name": c.name} for c in dataset.classes.classes],
        },
        "config": _plain(config),
    }
    card = {"library_name": "diffusers", "pipeline_tag": "image-to-image", "tags": _TAGS, "histosynth": facts}
    return _write(model_dir, card)


def read_model_card(model_dir: str | Path) -> dict[str, Any] | None:
    """The front matter of ``model_dir``'s card, or None when it has no histosynth card."""
    import yaml

    path = Path(model_dir) / CARD
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):
        return None
    if not text.startswith("---\n") or "\n---\n" not in text[4:]:
        return None
    try:
        front = yaml.safe_load(text[4 : text.index("\n---\n", 4)])
    except yaml.YAMLError:
        return None
    return front if isinstance(front, dict) and "histosynth" in front else None


def record_evaluation(
    result: Mapping[str, Any], synthetic: Mapping[str, Any], folder: str | Path
) -> list[Path]:
    """Put an evaluation's numbers into the card of each model whose samples it scored.

    Parameters
    ----------
    result
        The evaluation's ``metrics.json`` content.
    synthetic
        Variant name → its dataset (the datasets evaluated; plain folders have no model).
    folder
        The evaluation's output folder.

    Returns
    -------
    list of Path
        The cards rewritten.
    """
    written = []
    for variant, ds in synthetic.items():
        manifest = getattr(ds, "manifest", None) or {}
        model_dir = manifest.get("inputs", {}).get("model")
        card = read_model_card(model_dir) if model_dir else None
        if card is None:
            continue
        card["histosynth"]["evaluation"] = _evaluation(result, variant, ds, folder)
        card["model-index"] = _model_index(card["histosynth"], result, variant)
        written.append(_write(Path(model_dir), card))
    return written


def _pick(metrics: Mapping[str, Any], detectors: list[str]) -> dict[str, Any]:
    keys = [f"{m}_{d}" for d in detectors for m in _DISTRIBUTION] + list(_CHECKS)
    return {k: metrics[k] for k in keys if metrics.get(k) is not None}


def _evaluation(result: Mapping[str, Any], variant: str, ds: Any, folder: str | Path) -> dict[str, Any]:
    from histosynth.evaluate.data import REAL_HELDOUT

    detectors = list(result["metric_detectors"])
    return _plain({
        "folder": str(Path(folder).resolve()),
        "variant": variant,
        "synthetic": {"folder": str(ds.folder), "id": ds.id, "images": result["counts"].get(f"synthetic_{variant}")},
        "real": {"folder": result["real"]["folder"], "id": result["real"]["id"]},
        "detectors": detectors,
        "metrics": _pick(result["metrics"][variant], detectors),
        "real_heldout": _pick(result["metrics"].get(REAL_HELDOUT, {}), detectors),
    })  # fmt: skip


def _model_index(facts: Mapping[str, Any], result: Mapping[str, Any], variant: str) -> list[dict[str, Any]]:
    """The hub's ``model-index``: one result, the distribution metrics under each detector."""
    ev = facts["evaluation"]
    metrics = [{"type": k, "name": k.replace("_", " "), "value": v} for k, v in ev["metrics"].items()]
    return [{
        "name": f"histosynth-{facts['run']}",
        "results": [{
            "task": {"type": "image-to-image", "name": "semantic-map and crop conditioned histology synthesis"},
            "dataset": {"type": "histosynth-patch-dataset", "name": ev["real"]["id"]},
            "metrics": metrics,
        }],
    }]  # fmt: skip


def _write(model_dir: Path, card: dict[str, Any]) -> Path:
    path = model_dir / CARD
    atomic_write_text(path, render_model_card(card))
    return path


def render_model_card(card: Mapping[str, Any]) -> str:
    """The card's text: YAML front matter, then Markdown made from the same facts."""
    import yaml

    front = yaml.safe_dump(_plain(card), sort_keys=False, allow_unicode=True, width=100)
    return f"---\n{front}---\n\n{_body(card['histosynth'])}"


def _row(*cells: Any) -> str:
    return "| " + " | ".join("—" if c is None else str(c) for c in cells) + " |"


def _body(f: Mapping[str, Any]) -> str:
    d = f["dataset"]
    classes = ", ".join(f"{c['id']} {c['name']}" for c in d["classes"])
    slides = ", ".join(d["slides"][:20]) + (
        f" and {len(d['slides']) - 20} more" if len(d["slides"]) > 20 else ""
    )
    lines = [
        f"# histosynth model `{f['run']}`",
        "",
        "A latent diffusion model that generates H&E patches from a semantic map (which tissue goes where)",
        "and exemplar crops of real tissue (what each tissue looks like), trained with histosynth.",
        "Every image it makes comes with the map it was made from.",
        "",
        "```python",
        "from histosynth.sample.synthesis import Synthesizer",
        f'synth = Synthesizer.from_checkpoint("{f["run"]}/model")  # this folder',
        "```",
        "",
        "## Training data",
        "",
        _row("dataset", "id", "split", "patches", "slides", "µm/px"),
        _row("---", "---", "---", "---", "---", "---"),
        _row(f"`{d['folder']}`", d["id"], d["split"], d["patches"], len(d["slides"]), d["mpp"]),
        "",
        f"Classes: {classes}.",
        f"Slides: {slides or '—'}.",
        "",
        "## Training",
        "",
        _row("steps", "conditioning", "backbone", "codec", "image size", "seed"),
        _row("---", "---", "---", "---", "---", "---"),
        _row(f["steps"], f["conditioning"], f["backbone"], f["codec"], f["image_size"], f["seed"]),
        "",
        "The full configuration is in the front matter above (`histosynth.config`).",
        "",
        "## Evaluation",
        "",
        *_evaluation_lines(f.get("evaluation")),
        "",
        "## Use and limits",
        "",
        "Synthetic images for research: augmenting training data and sharing data without patient",
        "images. They are not for diagnosis. Check memorisation (`histosynth evaluate` lists synthetic",
        "images closer to a training image than real images are) before sharing samples.",
        "",
    ]
    return "\n".join(lines)


def _evaluation_lines(ev: Mapping[str, Any] | None) -> list[str]:
    if not ev:
        return [
            "Not evaluated yet: sample from this model and run `histosynth evaluate`; its numbers appear here."
        ]
    from histosynth.console import format_value

    lines = [f"Latest `histosynth evaluate` (`{ev['folder']}`): {ev['synthetic']['images']} synthetic images of "
             f"variant `{ev['variant']}` against the real dataset `{ev['real']['id']}`; held-out real images "
             "scored the same way give the floor each number should be read against.", "",
             _row("detector", "FD", "KID", "precision", "recall", "density", "coverage"),
             _row(*["---"] * 7)]  # fmt: skip
    for det in ev["detectors"]:
        for name, m in (("this model", ev["metrics"]), ("real held-out", ev["real_heldout"])):
            vals = [format_value(m.get(f"{k}_{det}")) for k in _DISTRIBUTION]
            lines.append(_row(f"{det} ({name})", *vals))
    checks = {k: ev["metrics"][k] for k in _CHECKS if k in ev["metrics"]}
    if checks:
        lines += ["", ", ".join(f"{k.replace('_', ' ')}: {format_value(v)}" for k, v in checks.items()) + "."]
    return lines
