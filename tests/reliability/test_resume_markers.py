"""Resuming a folder a killed run left: its temporaries go, its finished files stay."""

from histosynth.artifacts import atomic_write_bytes, prepare_output


def test_resume_sweeps_temporaries_of_a_killed_run(tmp_path):
    first = prepare_output(tmp_path / "a", "tiles", {"x": 1})
    atomic_write_bytes(first.folder / "done.bin", b"kept")
    (first.folder / "sub").mkdir()
    (first.folder / "sub" / ".part.png.x1y2.tmp").write_bytes(b"half a file")  # a kill mid-write
    (first.folder / ".step-00000004.tmp").mkdir()  # a half-written checkpoint folder
    (first.folder / ".step-00000004.tmp" / "w.bin").write_bytes(b"")
    again = prepare_output(tmp_path / "a", "tiles", {"x": 1})
    assert not again.complete
    left = sorted(p.relative_to(again.folder).as_posix() for p in again.folder.rglob("*"))
    assert left == [".lock", ".pending.json", "done.bin", "sub"]  # .lock: this run holds the folder
