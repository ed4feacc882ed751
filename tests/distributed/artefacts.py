"""Helpers for the executor tests: run the CLI in-process, compare two artefacts byte for byte."""

from __future__ import annotations

from pathlib import Path


def cli(*args) -> None:
    from click.testing import CliRunner

    from histosynth.cli.main import cli as main

    res = CliRunner().invoke(main, [str(a) for a in args])
    if res.exit_code != 0:
        raise RuntimeError(f"histosynth {' '.join(map(str, args))} failed:\n{res.output}\n{res.exception!r}")


def stage_files(folder: Path) -> dict[str, bytes]:
    """Every data file of an artefact, by relative path: no journal, manifest or temp files,
    whose contents record timings and completion order."""
    skip = ("_journal", "_plan_journal", "manifest.json", ".pending")
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.name.startswith(skip) and ".tmp" not in p.name
    }


def compare_folders(a: Path, b: Path) -> dict:
    """Byte comparison of two artefacts' data files, and of their manifests' counts."""
    import json

    fa, fb = stage_files(a), stage_files(b)
    ma, mb = (json.loads((f / "manifest.json").read_text()) for f in (a, b))
    return {
        "files": len(fa),
        "same_names": sorted(fa) == sorted(fb),
        "differ": sorted(k for k in fa if fa[k] != fb.get(k)),
        "same_counts": {k: v for k, v in ma["counts"].items() if k != "seconds"}
        == {k: v for k, v in mb["counts"].items() if k != "seconds"},
        "same_id": ma["id"] == mb["id"],
    }


def two_slides(folder: Path) -> Path:
    """Two small synthetic slides (different layouts and seeds) in ``folder``."""
    from histosynth.samples import write_synthetic_slide

    folder.mkdir(parents=True, exist_ok=True)
    write_synthetic_slide(folder / "a.tif", size=(1024, 768), seed=1)
    write_synthetic_slide(folder / "b.tif", size=(1024, 768), layout="blocks", seed=2)
    return folder
