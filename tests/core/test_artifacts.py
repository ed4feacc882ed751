import json
import os

import pytest

from histosynth.artifacts import (
    ArtifactError,
    artifact_id,
    atomic_write_bytes,
    is_complete,
    prepare_output,
    read_manifest,
    write_manifest,
)


def test_ids_change_with_config_and_inputs():
    a = artifact_id("tiles", {"size": 256}, ["slides-1"])
    assert a == artifact_id("tiles", {"size": 256}, ["slides-1"])
    assert a != artifact_id("tiles", {"size": 512}, ["slides-1"])
    assert a != artifact_id("tiles", {"size": 256}, ["slides-2"])
    assert a.startswith("tiles-")


def test_manifest_written_last_and_read(tmp_path):
    out = prepare_output(tmp_path / "a", "tiles", {"size": 256}, {"slides": "s1"})
    assert not out.complete and not is_complete(out.folder)
    with pytest.raises(ArtifactError, match="has not finished"):
        read_manifest(out.folder)
    m = write_manifest(out.folder, "tiles", {"size": 256}, {"slides": "s1"}, {"tiles": 3})
    assert m["id"] == out.id and m["schema_version"] == 1 and m["counts"] == {"tiles": 3}
    assert "torch" in m["versions"] and "histosynth" in m["versions"]
    assert read_manifest(out.folder, "tiles")["id"] == out.id
    assert not (out.folder / ".pending.json").exists()
    with pytest.raises(ArtifactError, match="expected 'embeddings'"):
        read_manifest(out.folder, "embeddings")
    again = prepare_output(tmp_path / "a", "tiles", {"size": 256}, {"slides": "s1"})
    assert again.complete


def test_other_config_refused_unless_overwrite(tmp_path):
    prepare_output(tmp_path, "tiles", {"size": 256})
    with pytest.raises(ArtifactError, match="another tiles artefact"):
        prepare_output(tmp_path, "tiles", {"size": 512})
    (tmp_path / "_journal.jsonl").write_text('{"key": "slide-1", "status": "done"}\n')  # the other's work
    (tmp_path / "_shards").mkdir()
    (tmp_path / "_shards" / "slide-1.parquet").write_bytes(b"old")
    out = prepare_output(tmp_path, "tiles", {"size": 512}, overwrite=True)
    assert json.loads((tmp_path / ".pending.json").read_text())["id"] == out.id
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock", ".pending.json"]  # nothing left to resume


def test_atomic_write_leaves_old_file_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "f.bin"
    atomic_write_bytes(target, b"old")

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def test_bad_schema_version(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps({"schema_version": 99, "kind": "x"}))
    with pytest.raises(ArtifactError, match="schema_version 99"):
        read_manifest(tmp_path)
