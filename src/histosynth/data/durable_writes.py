"""Atomic file writes run by a wide pool of I/O threads, made durable together.

Each file is still written as :func:`histosynth.artifacts.atomic_write_bytes` writes it (a
temporary file, ``fsync``, ``os.replace``: :func:`write_synced`), so readers see the old file
or the whole new one; the folder must exist.
What changes is who waits: an ``fsync`` on ext4 costs about 4 ms alone, more than reading a
256 px patch, but a journal commit serves every ``fsync`` pending at that moment, so sixteen
threads that sync at once pay about one commit between them (0.5 ms per file measured, against
4.1 ms one after another). The caller hands files over and goes on reading and encoding;
:meth:`DurableWrites.flush` returns once every file handed over is on disk, which is what a
resumable stage needs before it records the work as done.

>>> import tempfile
>>> from pathlib import Path
>>> folder = Path(tempfile.mkdtemp())
>>> with DurableWrites(threads=4) as sink:
...     sink.submit(folder / "a.bin", b"abc")
...     sink.flush()
>>> (folder / "a.bin").read_bytes()
b'abc'
"""

from __future__ import annotations

import functools
import os
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from histosynth.artifacts import atomic_write_bytes
from histosynth.disk import DISK_FULL_ERRNOS, as_disk_full

__all__ = ["DurableWrites", "shared_pool", "write_synced"]

_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0)


def write_synced(path: str | Path, data: bytes) -> None:
    """:func:`~histosynth.artifacts.atomic_write_bytes` for a folder that exists, in fewer steps.

    The same guarantees (a temporary file, synced, renamed over ``path``; mode 0644; a full
    disk reported as such) without the per-file folder check and random temporary name, which
    cost as much CPU as the write itself for a patch. The temporary name is unique per
    process and thread, the only writers a file of a resumable stage can have.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    try:
        fd = os.open(tmp, _FLAGS, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fchmod(fd, 0o644)  # whatever the umask, as atomic_write_bytes leaves its files
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS:
            raise as_disk_full(exc, path) from None
        raise


class DurableWrites:
    """Write files atomically in background threads; :meth:`flush` waits for all of them.

    Parameters
    ----------
    threads
        I/O threads. ``0`` writes each file in the calling thread (no pool), as
        :func:`~histosynth.artifacts.atomic_write_bytes` does.
    max_pending
        Files handed over but not yet written before :meth:`submit` waits (bounds the memory
        held in pending bytes); default four per thread.
    """

    def __init__(self, threads: int = 16, max_pending: int | None = None) -> None:
        self.threads = max(0, int(threads))
        self._pool = shared_pool(self.threads, "durable-write") if self.threads else None
        self._slots = threading.BoundedSemaphore(max_pending or 4 * max(1, self.threads))
        self._pending: deque[Future] = deque()
        self._lock = threading.Lock()

    def submit(self, path: str | Path, data: bytes) -> None:
        """Write ``data`` to ``path`` (atomically, durably) now or in the background."""
        if self._pool is None:
            atomic_write_bytes(path, data)
            return
        self._slots.acquire()
        try:
            fut = self._pool.submit(write_synced, path, data)
        except BaseException:
            self._slots.release()
            raise
        fut.add_done_callback(lambda _: self._slots.release())
        with self._lock:
            self._pending.append(fut)
            # Drop finished writes that went well, so a long run keeps no list of them.
            while self._pending and self._pending[0].done() and self._pending[0].exception() is None:
                self._pending.popleft()

    def flush(self) -> None:
        """Wait until every file handed over is written and synced; raise the first failure."""
        while True:
            with self._lock:
                if not self._pending:
                    return
                fut = self._pending.popleft()
            fut.result()

    def close(self) -> None:
        """Wait for every file handed over (the threads stay, for the next user)."""
        self.flush()

    def __enter__(self) -> DurableWrites:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.close()
            return
        # Already failing: let the writes in flight end, so none outlives this with-block.
        for fut in list(self._pending):
            fut.exception()


@functools.cache
def shared_pool(threads: int, name: str) -> ThreadPoolExecutor:
    """One pool of ``threads`` threads per name for the life of the process.

    Starting fresh threads for each chunk of work costs more than the start: glibc keeps up
    to 40 MB of freed thread stacks, with the pages they touched, for threads to come, so a
    slide's worth of chunks leaves the process that much larger than one chunk does.
    """
    return ThreadPoolExecutor(threads, name)
