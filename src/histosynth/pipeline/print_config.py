"""``histosynth run --print-config``: the run's settings as a TOML file ``--config`` reads back,
followed, as comments, by the full config every stage will run with.

The first part is live: save it, edit it and pass it with ``--config``. The comments are what
the top-level keys and the stage tables resolve to for each stage; copy a line into that
stage's table (``[train]``, ``[evaluate]``...) to change it.
"""

from __future__ import annotations

from typing import Any

from histosynth.config import config_to_dict
from histosynth.pipeline.config import STAGE_TABLES, RunConfig
from histosynth.pipeline.steps import Step
from histosynth.toml_text import dumps

__all__ = ["config_toml", "stages_toml"]


def config_toml(cfg: RunConfig) -> str:
    """The run's settings as TOML (``histosynth run --config`` reads it back to the same settings)."""
    data = config_to_dict(cfg)
    head = "# histosynth run settings: pass this file with --config; tables hold any setting of their stage\n"
    empty = [name for name in STAGE_TABLES if not data[name]]
    for name in empty:
        data.pop(name)
    tail = f"\n# empty stage tables: {', '.join(f'[{n}]' for n in empty)}\n" if empty else ""
    return head + dumps(data) + tail


def stages_toml(steps: list[Step]) -> str:
    """Every stage's resolved config, commented, one block per distinct stage config."""
    seen: list[tuple[str, Any]] = []
    text = "\n# ---- what each stage runs with (copy a line into its table above to change it) ----\n"
    for step in steps:
        cfg = step.args[2]
        if (step.stage, cfg) in seen:
            continue
        seen.append((step.stage, cfg))
        table = next(t for t, s in STAGE_TABLES.items() if s == step.stage)
        text += f"\n# [{table}]  ({step.stage} → {step.folder})\n" + dumps(
            config_to_dict(cfg), table, comment=True
        )
    return text
