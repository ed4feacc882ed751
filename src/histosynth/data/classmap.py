"""Class maps: the names, ids and colours of the tissue classes of a dataset.

A class map file is JSON::

    {"classes": [{"id": 0, "name": "background", "color": [255, 255, 255]},
                 {"id": 1, "name": "tumour", "color": [200, 30, 30]}]}

Ids are small non-negative integers (they are the pixel values of ``maps/*.png``, uint8).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["ClassMap", "ClassMapError", "TissueClass"]

# Distinct colours for classes without one (tab20-like, then a golden-angle hue walk).
_PALETTE = [
    (255, 255, 255), (214, 39, 40), (31, 119, 180), (44, 160, 44), (255, 127, 14),
    (148, 103, 189), (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34),
    (23, 190, 207), (174, 199, 232), (255, 187, 120), (152, 223, 138), (255, 152, 150),
]  # fmt: skip


class ClassMapError(ValueError):
    """A class map file, or a class name or id, that is wrong."""


@dataclass(frozen=True)
class TissueClass:
    id: int
    name: str
    color: tuple[int, int, int]


def default_color(i: int) -> tuple[int, int, int]:
    """A stable, distinct colour for class index ``i``."""
    if i < len(_PALETTE):
        return _PALETTE[i]
    import colorsys

    r, g, b = colorsys.hsv_to_rgb((i * 0.618034) % 1.0, 0.65, 0.9)
    return int(r * 255), int(g * 255), int(b * 255)


@dataclass(frozen=True)
class ClassMap:
    """An ordered set of tissue classes with unique ids and names."""

    classes: tuple[TissueClass, ...]
    source: str = "<memory>"

    def __post_init__(self) -> None:
        ids = [c.id for c in self.classes]
        names = [c.name for c in self.classes]
        if len(set(ids)) != len(ids) or len(set(names)) != len(names):
            raise ClassMapError(f"{self.source}: class ids and names must be unique")
        if any(not 0 <= i <= 255 for i in ids):
            raise ClassMapError(f"{self.source}: class ids must lie in 0..255 (they are uint8 pixels)")

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_names(cls, names: Sequence[str], source: str = "<memory>") -> ClassMap:
        """Classes numbered 0..n-1 in the given order, with default colours."""
        return cls(tuple(TissueClass(i, n, default_color(i)) for i, n in enumerate(names)), source)

    @classmethod
    def from_json(cls, path: str | Path) -> ClassMap:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            entries = data["classes"] if isinstance(data, dict) else data
            classes = []
            for i, e in enumerate(entries):
                cid = int(e["id"])
                color = tuple(int(v) for v in e.get("color", default_color(cid)))
                classes.append(TissueClass(cid, str(e["name"]), color))  # type: ignore[arg-type]
                if len(color) != 3:
                    raise ClassMapError(f"{path}: class #{i} colour must have 3 values")
        except FileNotFoundError:
            raise ClassMapError(f"{path}: class map file not found") from None
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, ClassMapError):
                raise
            raise ClassMapError(f"{path}: not a valid class map ({type(exc).__name__}: {exc})") from None
        return cls(tuple(classes), str(path))

    def to_json(self) -> dict:
        return {"classes": [{"id": c.id, "name": c.name, "color": list(c.color)} for c in self.classes]}

    def save(self, path: str | Path) -> None:
        from histosynth.artifacts import atomic_write_json

        atomic_write_json(path, self.to_json())

    # ------------------------------------------------------------------ lookups
    @property
    def ids(self) -> list[int]:
        return [c.id for c in self.classes]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.classes]

    @property
    def num_classes(self) -> int:
        """How many class ids a label array or a model spans: the largest id + 1 (ids may have gaps).

        >>> ClassMap.from_names(["background", "tumour"]).num_classes
        2
        """
        return max(self.ids) + 1

    def __len__(self) -> int:
        return len(self.classes)

    def id_of(self, name: str, where: str = "") -> int:
        """The id of class ``name``; an unknown name names the file it came from."""
        for c in self.classes:
            if c.name == name:
                return c.id
        import difflib

        close = difflib.get_close_matches(name, self.names, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f"; known classes: {self.names}"
        raise ClassMapError(f"{where or self.source}: unknown class {name!r}{hint}")

    def check_ids(self, ids: Iterable[int], where: str) -> None:
        """Raise when any id in ``ids`` is not a class of this map."""
        unknown = sorted(set(int(i) for i in ids) - set(self.ids))
        if unknown:
            raise ClassMapError(f"{where}: label ids {unknown} are not in the class map {self.source}")

    def colorize(self, label: np.ndarray) -> np.ndarray:
        """An RGB picture of a label map."""
        lut = np.zeros((256, 3), np.uint8)
        for c in self.classes:
            lut[c.id] = c.color
        return lut[label]
