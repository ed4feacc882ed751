"""What a benchmark ran on: CPU model, cores, load (a shared machine's timings need it).

>>> sorted(machine())
['cpu', 'cores', 'load_avg_at_start', 'platform', 'python']
"""

from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name (``lscpu``'s "Model name"), from /proc/cpuinfo where there is one."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        lines = []
    names = [ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")]
    return names[0] if names else platform.processor() or platform.machine()


def machine() -> dict:
    """CPU model, core count, Python, platform and the load average when the run started."""
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_avg_at_start": list(os.getloadavg()),
    }
