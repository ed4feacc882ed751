"""Every example in the package's docstrings runs and shows what it says (``+SKIP`` marks the
few that need what a unit test does not have: a trained model, a folder of slides)."""

from __future__ import annotations

import doctest
import importlib
import io
from pathlib import Path

import pytest

import histosynth

ROOT = Path(histosynth.__file__).resolve().parent
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _modules_with_examples() -> list[str]:
    names = []
    for path in sorted(ROOT.rglob("*.py")):
        if ">>>" in path.read_text(encoding="utf-8"):
            parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            names.append(".".join(parts))
    return names


MODULES = _modules_with_examples()


def test_examples_are_found():
    assert len(MODULES) >= 15 and "histosynth.stages" in MODULES and "histosynth.registry" in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # an example that writes a file writes it here
    module = importlib.import_module(name)
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    report = io.StringIO()
    for test in doctest.DocTestFinder(exclude_empty=True).find(module, module.__name__):
        if test.filename is None or Path(test.filename).resolve().is_relative_to(ROOT):
            runner.run(test, out=report.write)
    assert runner.failures == 0, report.getvalue()
