"""Progress bars for long work (tqdm on stderr); ``HISTOSYNTH_PROGRESS=0`` turns them off."""

from __future__ import annotations

import os
from typing import Any

from tqdm.auto import tqdm

__all__ = ["progress"]


def progress(iterable: Any = None, *, desc: str = "", total: int | None = None, **kwargs: Any) -> tqdm:
    """A tqdm bar with the project's defaults (unit scaling, quiet when disabled by env)."""
    disable = kwargs.pop("disable", False) or os.environ.get("HISTOSYNTH_PROGRESS", "1") == "0"
    return tqdm(iterable, desc=desc, total=total, dynamic_ncols=True, disable=disable, **kwargs)
