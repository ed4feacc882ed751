"""Run a command in a fresh process and measure its whole process tree's peak resident memory.

Peak memory is sampled from /proc every 20 ms (the process plus its worker processes), because
``ru_maxrss`` of a child would include the high-water mark it inherits from its parent. Linux.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path

PAGE = os.sysconf("SC_PAGE_SIZE")


def tree_rss_bytes(root: int) -> int:
    """Resident memory of a process and all its descendants, from /proc (Linux)."""
    parent, rss = {}, {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            fields = Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended while we looked
            continue
        parent[int(d)], rss[int(d)] = int(fields[1]), int(fields[21]) * PAGE
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo += [c for c, p in parent.items() if p == pid]
    return total


def run_measured(cmd: list[str], env: dict[str, str] | None = None) -> tuple[str, float, float]:
    """Run ``cmd``; returns its stdout, wall seconds and peak tree RSS in MB (raises on failure)."""
    # Files, not pipes: a chatty child must never block on a full pipe while we poll it.
    with tempfile.TemporaryFile("w+") as fout, tempfile.TemporaryFile("w+") as ferr:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=fout, stderr=ferr, text=True, env=env)
        peak = 0
        while proc.poll() is None:
            peak = max(peak, tree_rss_bytes(proc.pid))
            time.sleep(0.02)
        wall = time.perf_counter() - t0
        fout.seek(0), ferr.seek(0)
        out, err = fout.read(), ferr.read()
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd[:4])} ... failed (exit {proc.returncode}):\n{err[-3000:]}")
    return out, wall, peak / 2**20
