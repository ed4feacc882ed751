"""Label schemes: a class map plus how annotation names map onto it.

A scheme is a class map (:class:`~histosynth.data.classmap.ClassMap`) with two extras that a
plain ``classes.json`` may also carry as top-level keys:

``aliases``
    annotation name → class name (Camelyon16's ``_0``/``_1``/``Tumor`` groups are ``tumour``,
    its ``_2``/``Exclusion`` groups are ``normal``).
``fill``
    the class given to tissue that no annotation covers (Camelyon16 outlines only tumour, so
    the rest of the tissue is ``normal``); ``null`` leaves it as class 0.

Presets: ``camelyon16``, ``panda-radboud`` and ``panda-karolinska`` (the two PANDA centres'
label-mask values, from the PANDA challenge description).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from histosynth.data.classmap import ClassMap, ClassMapError, TissueClass

__all__ = ["SCHEMES", "LabelScheme", "load_scheme"]


@dataclass(frozen=True)
class LabelScheme:
    """Classes, name aliases and the fill class for unannotated tissue."""

    classes: ClassMap
    aliases: Mapping[str, str] = field(default_factory=dict)
    fill: str | None = None

    def __post_init__(self) -> None:
        for alias, target in self.aliases.items():
            self.classes.id_of(target, where=f"{self.classes.source}: alias {alias!r}")
        if self.fill is not None:
            self.classes.id_of(self.fill, where=f"{self.classes.source}: fill class")

    def class_id(self, name: str, where: str) -> int:
        """The id of an annotation's class name (after aliases); unknown names name ``where``."""
        return self.classes.id_of(self.aliases.get(name, name), where=where)

    @property
    def fill_id(self) -> int | None:
        return None if self.fill is None else self.classes.id_of(self.fill)


def _cm(source: str, *entries: tuple[int, str, tuple[int, int, int]]) -> ClassMap:
    return ClassMap(tuple(TissueClass(i, n, c) for i, n, c in entries), source=f"preset {source}")


SCHEMES: dict[str, LabelScheme] = {
    "camelyon16": LabelScheme(
        _cm(
            "camelyon16",
            (0, "background", (255, 255, 255)),
            (1, "normal", (31, 119, 180)),
            (2, "tumour", (214, 39, 40)),
        ),
        aliases={
            "Tumor": "tumour",
            "tumor": "tumour",
            "_0": "tumour",
            "_1": "tumour",
            "_2": "normal",
            "Exclusion": "normal",
            "None": "normal",
        },
        fill="normal",
    ),
    "panda-radboud": LabelScheme(
        _cm(
            "panda-radboud",
            (0, "background", (255, 255, 255)),
            (1, "stroma", (230, 140, 170)),
            (2, "benign-epithelium", (44, 160, 44)),
            (3, "gleason-3", (255, 187, 120)),
            (4, "gleason-4", (255, 127, 14)),
            (5, "gleason-5", (214, 39, 40)),
        ),
    ),
    "panda-karolinska": LabelScheme(
        _cm(
            "panda-karolinska",
            (0, "background", (255, 255, 255)),
            (1, "benign", (44, 160, 44)),
            (2, "cancer", (214, 39, 40)),
        ),
    ),
}


def load_scheme(spec: str | Path) -> LabelScheme:
    """A preset by name, or a ``classes.json`` file (with optional ``aliases`` and ``fill``).

    Raises
    ------
    ClassMapError
        When the file is missing or malformed, or an alias or the fill names an unknown class.
    """
    if str(spec) in SCHEMES and not Path(spec).is_file():
        return SCHEMES[str(spec)]
    path = Path(spec)
    if not path.is_file():
        raise ClassMapError(f"{path}: class map file not found (presets: {', '.join(SCHEMES)})")
    classes = ClassMap.from_json(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:  # from_json already checked; kept for a clear message
        raise ClassMapError(f"{path}: not valid JSON ({exc})") from None
    extra = data if isinstance(data, Mapping) else {}
    aliases = extra.get("aliases", {})
    fill = extra.get("fill")
    if not isinstance(aliases, Mapping) or not all(isinstance(v, str) for v in aliases.values()):
        raise ClassMapError(f"{path}: 'aliases' must map annotation names to class names")
    if fill is not None and not isinstance(fill, str):
        raise ClassMapError(f"{path}: 'fill' must be a class name or null")
    return LabelScheme(classes, {str(k): v for k, v in aliases.items()}, fill)
