"""One writer per output folder: an advisory lock a stage holds while it writes the folder.

A stage takes the lock when it claims its folder (:func:`histosynth.artifacts.prepare_output`)
and gives it back when it writes the manifest (or when the command that claimed it ends). A
second process that claims the same folder meanwhile is refused with one sentence naming the
holder's pid and command, instead of both writing and both reporting success.

The lock is ``flock`` on ``<folder>/.lock``. The kernel drops it when the holding process dies
in any way (SIGKILL included), so a lock left by a killed run is stale by construction: the
file stays behind with the dead process's pid, and the next writer takes it over and writes its
own. A released lock's file is removed; a process that opened the old file just before the
removal notices (the path no longer names the file it locked) and tries again, so two
processes can never both hold the lock. Within one process the lock is re-entrant.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shlex
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["LOCK", "FolderBusyError", "acquire", "held", "release", "releasing_new_locks"]

LOCK = ".lock"
# Folder (resolved) → descriptor of its locked file, for the locks this process holds.
_HELD: dict[Path, int] = {}
_NO_LOCKS = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL)


class FolderBusyError(RuntimeError):
    """Another process is writing the output folder (a user error: :data:`histosynth.errors.USER_ERRORS`).

    Not an :class:`~histosynth.artifacts.ArtifactError`: :mod:`histosynth.artifacts` takes the lock,
    so this module imports nothing of histosynth's (no import cycle)."""


def _command() -> str:
    """How this process was started, as a user would type it (``histosynth tile ...``)."""
    argv = list(sys.argv) or ["python"]
    if argv[0].endswith(("__main__.py", "/histosynth")) or Path(argv[0]).name == "histosynth":
        argv[0] = "histosynth"
    return shlex.join(argv)


def _holder_text(fd: int) -> str:
    """'pid N on HOST, since T: COMMAND' of the lock file's holder, as far as it is written."""
    try:
        info = json.loads(os.pread(fd, 65536, 0).decode("utf-8") or "{}")
    except (OSError, ValueError):
        info = {}
    if not isinstance(info, dict) or "pid" not in info:
        return "a process that has not yet written its pid"
    host = f" on {info['host']}" if info.get("host") and info["host"] != socket.gethostname() else ""
    since = f", since {info['started']}" if info.get("started") else ""
    return f"pid {info['pid']}{host}{since}: {info.get('command', '?')}"


def _describe(info: dict[str, Any]) -> bytes:
    return (json.dumps(info, sort_keys=True) + "\n").encode("utf-8")


def acquire(folder: str | Path) -> None:
    """Hold the write lock of ``folder`` (created if missing) for this process.

    Raises
    ------
    FolderBusyError
        When another live process holds it; the message names that process.
    """
    folder = Path(folder).resolve()
    if folder in _HELD:
        return
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder_text(fd)
            os.close(fd)
            raise FolderBusyError(
                f"{folder}: another process is writing this folder ({holder}); wait for it to finish, "
                f"or stop it and re-run this command to resume"
            ) from None
        except OSError as exc:
            if exc.errno not in _NO_LOCKS:
                os.close(fd)
                raise
            break  # a file system without locks (some network mounts): proceed unlocked
        # The holder we waited on may have released (and removed) the file we opened: the lock
        # counts only on the file the path still names.
        try:
            current = os.stat(path)
            mine = os.fstat(fd)
            if (current.st_ino, current.st_dev) == (mine.st_ino, mine.st_dev):
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    info = {"pid": os.getpid(), "host": socket.gethostname(), "command": _command(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}  # fmt: skip
    os.ftruncate(fd, 0)  # a killed holder's pid is replaced: the lock is taken over
    os.pwrite(fd, _describe(info), 0)
    _HELD[folder] = fd


def release(folder: str | Path) -> None:
    """Give back the lock of ``folder`` if this process holds it, removing its file."""
    folder = Path(folder).resolve()
    fd = _HELD.pop(folder, None)
    if fd is None:
        return
    try:
        (folder / LOCK).unlink(missing_ok=True)  # removed while still held: see the module doc
    finally:
        os.close(fd)


def held() -> list[Path]:
    """The folders whose locks this process holds."""
    return list(_HELD)


@contextlib.contextmanager
def releasing_new_locks() -> Iterator[None]:
    """Release on exit every lock taken inside the block (a command's end, however it ends)."""
    before = set(_HELD)
    try:
        yield
    finally:
        for folder in [f for f in _HELD if f not in before]:
            release(folder)
