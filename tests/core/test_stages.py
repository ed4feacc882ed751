"""Every stage is one function of one shape: ``run(inputs, out, cfg=None, *, ...) -> StageResult``."""

from __future__ import annotations

import inspect
import json

from histosynth.artifacts import StageResult
from histosynth.jobs import RunSummary
from histosynth.stages import STAGES

# Stages whose items can run in other processes or on a cluster take an executor.
WITH_EXECUTOR = {"tile", "dataset", "embed", "sample"}


def test_every_stage_has_the_one_shape():
    assert len(STAGES) == 12
    for name in STAGES:
        run = STAGES.get(name)
        assert run.__name__ == "run", name
        params = list(inspect.signature(run).parameters.values())
        positional = [p for p in params if p.kind is p.POSITIONAL_OR_KEYWORD]
        assert len(positional) == 3 and [p.name for p in positional[1:]] == ["out", "cfg"], name
        assert positional[2].default is None, name  # cfg: the stage's defaults when not given
        assert all(p.kind is p.KEYWORD_ONLY for p in params[3:]), name
        keywords = {p.name for p in params[3:]}
        assert ("executor" in keywords) == (name in WITH_EXECUTOR), name
        assert "overwrite" in keywords or name == "report", name  # a page is rewritten whole
        assert inspect.signature(run).return_annotation in ("StageResult", StageResult), name


def test_listing_the_stages_imports_none(tmp_path):
    import subprocess
    import sys

    code = (
        "import sys\nfrom histosynth.stages import STAGES\n"
        "print(len(STAGES.names()), [m for m in ('torch', 'pandas', 'histosynth.wsi') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "12 []"


def test_a_finished_stage_rerun_reports_what_its_journal_holds(tmp_path):
    from histosynth.distributed.executors import ItemRecord
    from histosynth.jobs import Journal

    journal = Journal(tmp_path / "_journal.jsonl")
    journal.append(ItemRecord("a", "done", output=1))
    journal.append(ItemRecord("b", "failed", "cannot open b"))
    summary = RunSummary.recorded(tmp_path)
    assert summary.done == [] and summary.skipped == ["a", "b"]
    assert [(r.key, r.error) for r in summary.failed] == [("b", "cannot open b")]
    assert not StageResult(tmp_path, None, summary).ok
    assert "0 slides done, 2 already done, 1 failed" in summary.describe("slides")
    assert json.loads((tmp_path / "_journal.jsonl").read_text().splitlines()[0])["key"] == "a"
