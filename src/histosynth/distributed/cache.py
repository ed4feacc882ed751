"""One of each per worker: the per-process cache of loaded models and label sources.

A work function that needs a model (an encoder, a sampler) or a slide's label source asks
:func:`per_worker` for it by a key naming what is loaded (checkpoint path, encoder name and
weights, device; artefact and slide). Each process (the calling one, a pool process, a Ray
worker or actor) loads it the first time and reuses it for every later item, so nothing is
reloaded per item, and nothing heavy is pickled along with the work.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

__all__ = ["clear", "per_worker", "remember"]

T = TypeVar("T")

# Few entries: a worker serves one stage at a time, and a model can hold gigabytes
# (the dataset stage works slide by slide: two slides' label sources at most).
MAXSIZE = 2
_CACHE: OrderedDict[Hashable, Any] = OrderedDict()


def per_worker(key: Hashable, load: Callable[[], T]) -> T:
    """The object cached under ``key`` in this process, loaded by ``load()`` the first time."""
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    obj = load()
    remember(key, obj)
    return obj


def remember(key: Hashable, obj: Any) -> None:
    """Cache an object already loaded here (the calling process reuses the stage's model)."""
    _CACHE[key] = obj
    _CACHE.move_to_end(key)
    while len(_CACHE) > MAXSIZE:
        _CACHE.popitem(last=False)


def clear() -> None:
    """Forget every cached object (tests; freeing memory between stages)."""
    _CACHE.clear()
