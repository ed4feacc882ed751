"""The checks of ``histosynth run``'s plan: everything that can be known before any work starts.

Each check either returns what it found or refuses with a :class:`PlanError`: one sentence
that names the file or setting and says what to do. Slides are opened (not read through),
annotations are read and matched to slides by name, their class names checked against the
class map; nothing is written.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from histosynth.config import ConfigError
from histosynth.pipeline.config import RunConfig

__all__ = ["LabelFacts", "PlanError", "SlideFacts", "check_labels", "check_slides", "label_source"]


class PlanError(ConfigError):
    """A run that would fail or mislead: refused before any work, in one sentence."""


@dataclass(frozen=True)
class SlideFacts:
    """What the plan learnt of one slide by opening it."""

    path: Path
    width: int
    height: int
    mpp: float
    reader: str


@dataclass(frozen=True)
class LabelFacts:
    """Where the training maps come from and how the annotations matched the slides.

    Attributes
    ----------
    source
        ``annotations``, ``pseudo`` or ``stain``.
    matched
        Slide → its annotation file (annotated runs).
    unannotated
        Slides without an annotation file (they give no training patches).
    orphans
        Annotation files that match no slide.
    classes
        Class names, and present the ones drawn in some annotation (or the fill class).
    skipped
        Slide → why its annotation was left out (``skip_bad``).
    """

    source: str
    matched: dict[str, Path] = field(default_factory=dict)
    unannotated: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)
    present: list[str] = field(default_factory=list)
    scheme: Any = None
    skipped: dict[str, str] = field(default_factory=dict)


def check_slides(
    inputs: Iterable[str | Path], cfg: RunConfig, skip_bad: bool = False
) -> tuple[dict[str, SlideFacts], dict[str, str]]:
    """Open every slide: readable, its resolution known.

    Returns
    -------
    slides, skipped
        Slide name → facts, and (with ``skip_bad``) slide name → why it was left out.

    Raises
    ------
    PlanError
        When no slide is found, or (without ``skip_bad``) one cannot be read or has no mpp.
    """
    from histosynth.wsi.base import SlideError
    from histosynth.wsi.readers import open_slide
    from histosynth.wsi.tile_stage import find_slides

    try:
        found = find_slides(inputs)
    except ConfigError as exc:
        raise PlanError(str(exc)) from None
    reader = str(cfg.tile.get("reader", "auto"))
    slides, skipped = {}, {}
    for name, path in found.items():
        try:
            with open_slide(path, mpp=cfg.slide_mpp, reader=reader) as slide:
                mpp = slide.require_mpp()
                level = slide.level_count - 1
                slide.read_region(0, 0, level, 8, 8)  # one tile is decoded: the file is a slide
                slides[name] = SlideFacts(Path(path), *slide.dimensions, mpp, type(slide).__name__)
        except SlideError as exc:
            if not skip_bad:
                raise PlanError(f"{exc} (or pass --skip-bad-slides to leave it out)") from None
            skipped[name] = str(exc)
    if not slides:
        raise PlanError(f"none of the {len(found)} slides can be used: {next(iter(skipped.values()))}")
    return slides, skipped


def label_source(cfg: RunConfig, annotations: str | Path | None, classes: str | None) -> str:
    """``annotations``, ``pseudo`` or ``stain``: the run's ``labels`` with ``auto`` resolved.

    Raises
    ------
    PlanError
        When ``--annotations`` and ``--classes`` do not go together, or do not fit ``labels``.
    """
    if annotations is not None and classes is None:
        raise PlanError("--annotations needs --classes: a classes.json file or a preset such as camelyon16")
    if classes is not None and annotations is None:
        raise PlanError(
            "--classes needs --annotations: the folder of <slide>.xml, .geojson, .json or mask files"
        )
    if cfg.labels == "auto":
        return "annotations" if annotations is not None else "pseudo"
    if cfg.labels == "annotations" and annotations is None:
        raise PlanError("labels = 'annotations' needs --annotations DIR and --classes")
    if cfg.labels != "annotations" and annotations is not None:
        raise PlanError(f"--annotations is given but labels = {cfg.labels!r}: drop one of them")
    return cfg.labels


def check_labels(
    source: str,
    slides: dict[str, SlideFacts],
    annotations: str | Path | None,
    classes: str | None,
    skip_bad: bool = False,
) -> LabelFacts:
    """Match annotation files to slides and read them: classes known, shapes on the slide.

    Raises
    ------
    PlanError
        When no annotation matches any slide, one is malformed or names an unknown class
        (without ``skip_bad``), or fewer than two tissue classes are drawn.
    """
    if source != "annotations":
        return LabelFacts(source)
    from histosynth.wsi.label_sources import ANNOTATION_SUFFIXES, find_annotation
    from histosynth.wsi.schemes import load_scheme

    folder = Path(annotations)
    scheme = load_scheme(classes)
    matched = {s: p for s in slides if (p := find_annotation(folder, s)) is not None}
    names = {p.name for p in matched.values()}
    classes_file = Path(classes).resolve() if Path(classes).is_file() else None
    orphans = sorted(
        p.name
        for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in ANNOTATION_SUFFIXES and p.name not in names
        and p.resolve() != classes_file and ".labels." not in p.name
    )  # fmt: skip
    if not matched:
        example = f" (e.g. {orphans[0]} for slide {next(iter(slides))})" if orphans else ""
        raise PlanError(
            f"{folder}: no annotation file matches any of the {len(slides)} slides{example}; "
            "name each <slide>.xml, .geojson, .json or <slide>[_mask].tif/.png"
        )
    present, skipped = set(), {}
    for slide, path in matched.items():
        try:
            present |= _classes_drawn(path, scheme, slides[slide])
        except (ConfigError, ValueError, RuntimeError) as exc:  # AnnotationError, ClassMapError
            if not skip_bad:
                raise PlanError(f"{exc} (or pass --skip-bad-slides to leave slide {slide!r} out)") from None
            skipped[slide] = str(exc)
    for slide in skipped:
        matched.pop(slide)
    if scheme.fill is not None:
        present.add(scheme.fill_id)
    tissue = sorted(i for i in present if i != 0)
    name_of = dict(zip(scheme.classes.ids, scheme.classes.names, strict=True))
    if len(tissue) < 2:
        drawn = ", ".join(repr(name_of[i]) for i in tissue) or "none"
        raise PlanError(
            f"{folder}: the annotations draw fewer than two tissue classes ({drawn}), so no patch "
            "can mix two; add the other classes' outlines or a fill class to the class map"
        )
    return LabelFacts(
        source,
        matched=matched,
        unannotated=[s for s in slides if s not in matched and s not in skipped],
        orphans=orphans,
        classes=list(scheme.classes.names),
        present=[name_of[i] for i in sorted(present)],
        scheme=scheme,
        skipped=skipped,
    )


def _classes_drawn(path: Path, scheme: Any, slide: SlideFacts, side: int = 1024) -> set[int]:
    """Class ids an annotation file draws, on a ``side`` px raster of the whole slide; reading it
    checks its format, its class names (or mask values) and that it lies on the slide."""
    from histosynth.wsi.label_sources import load_label_source

    source = load_label_source(path, scheme, (slide.width, slide.height))
    raster = source.label_region(0, 0, max(slide.width, slide.height), side)
    return {int(i) for i in np.unique(raster)}
