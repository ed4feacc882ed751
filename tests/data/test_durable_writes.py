import os
import stat

import pytest

from histosynth.data.durable_writes import DurableWrites, write_synced


@pytest.mark.parametrize("threads", [0, 4])
def test_flush_returns_once_every_file_is_written(tmp_path, threads):
    with DurableWrites(threads, max_pending=3) as sink:
        for i in range(40):
            sink.submit(tmp_path / f"{i}.bin", bytes([i]) * (1000 + i))
        sink.flush()
        assert all((tmp_path / f"{i}.bin").read_bytes() == bytes([i]) * (1000 + i) for i in range(40))
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary file is left


def test_a_failed_write_is_raised_by_flush(tmp_path):
    sink = DurableWrites(2)
    sink.submit(tmp_path / "missing-folder" / "a.bin", b"x")  # the folder must exist
    with pytest.raises(FileNotFoundError):
        sink.flush()
    sink.close()


def test_write_synced_replaces_whole_files_with_mode_0644(tmp_path):
    target = tmp_path / "a.png"
    target.write_bytes(b"old contents")
    old = os.umask(0o077)
    try:
        write_synced(target, b"new")
    finally:
        os.umask(old)
    assert target.read_bytes() == b"new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
