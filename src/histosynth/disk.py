"""A full disk stops a run with one sentence; it never fails items one by one.

Running out of space is not the fault of the slide or batch being written, so the per-item
loop (:func:`histosynth.distributed.executors.call_item`) lets it through instead of recording a failed item,
and the command stops with ``histosynth: error: <file>: no space left on the device; ...``.
Every artefact file is written atomically and the manifest last, so the folder it leaves holds
no file that looks finished; freeing space and re-running the same command resumes it.
"""

from __future__ import annotations

import errno
from pathlib import Path

from histosynth.locking import held

__all__ = ["DISK_FULL_ERRNOS", "DiskFullError", "as_disk_full", "is_disk_full"]

DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
# How libraries that write files themselves (torch's zip writer, safetensors' Rust writer)
# word the same failure when they do not raise an OSError.
_DISK_FULL_TEXT = ("no space left on device", "storagefull", "disk quota exceeded")


class DiskFullError(RuntimeError):
    """The device an artefact is written to is full (or over quota)."""


def is_disk_full(exc: BaseException) -> bool:
    """True when ``exc``, or an exception it was raised from, says the disk is full."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, DiskFullError):
            return True
        if isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS:
            return True
        if any(t in str(exc).lower() for t in _DISK_FULL_TEXT):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def as_disk_full(exc: BaseException, path: str | Path | None = None) -> DiskFullError:
    """One sentence naming what was being written when the disk filled up."""
    if isinstance(exc, DiskFullError):
        return exc
    where = path or getattr(exc, "filename", None) or _writing()
    quota = isinstance(exc, OSError) and exc.errno == errno.EDQUOT
    return DiskFullError(
        f"{where}: {'the disk quota is exceeded' if quota else 'no space left on the device'}; "
        f"free some space and re-run the same command: it resumes where it stopped"
    )


def _writing() -> str:
    """The output folder this process is writing (the one whose lock it holds), if known."""
    folders = held()
    return str(folders[-1]) if folders else "writing the output"
