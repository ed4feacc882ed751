"""Write nested dicts as TOML text: what ``--print-config`` prints and ``--config`` reads back.

Only what configs hold: tables, strings, numbers, booleans, lists and paths. ``None`` has no
TOML spelling, so a key set to ``None`` is written as a comment (it keeps its default when
read back).

>>> print(dumps({"size": 64, "variants": ["map", "tokens"], "slide_mpp": None, "train": {"optim": {"lr": 1e-3}}}))
size = 64
variants = ["map", "tokens"]
# slide_mpp = (none)
<BLANKLINE>
[train.optim]
lr = 0.001
<BLANKLINE>
>>> import tomllib; tomllib.loads(dumps({"a": {"b": 1.5, "c": "x"}}))
{'a': {'b': 1.5, 'c': 'x'}}
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

__all__ = ["dumps", "value_text"]


def value_text(value: Any) -> str:
    """One TOML value: a string, number, boolean, path or list of them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str | PurePath):
        return json.dumps(str(value), ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(value_text(v) for v in value) + "]"
    raise TypeError(f"no TOML spelling for {type(value).__name__} {value!r}")


def dumps(data: Mapping[str, Any], prefix: str = "", comment: bool = False) -> str:
    """``data`` as TOML: its plain keys, then each sub-table under its dotted header.

    Parameters
    ----------
    data
        A nested mapping.
    prefix
        The dotted name of the table ``data`` is (``""``: the document).
    comment
        Write every line as a comment (``# ``): settings shown, not set.
    """
    lines = []
    for key, value in data.items():
        if isinstance(value, Mapping):
            continue
        lines.append(f"# {key} = (none)" if value is None else f"{key} = {value_text(value)}")
    text = "".join(f"{line}\n" for line in lines)
    for key, value in data.items():
        if not isinstance(value, Mapping):
            continue
        name = f"{prefix}.{key}" if prefix else key
        inner = dumps(value, name)
        if not inner.startswith("\n[") and inner:  # a table with plain keys gets its header
            text += f"\n[{name}]\n{inner}"
        else:
            text += inner
    if comment:
        text = "".join(
            f"# {line}\n" if line and not line.startswith("#") else f"{line}\n" for line in text.splitlines()
        )
    return text
