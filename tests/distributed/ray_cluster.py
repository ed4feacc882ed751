"""Run a scenario against a real two-node Ray cluster on loopback only.

Ray registers nodes under the machine's primary address even when told 127.0.0.1, so the
cluster runs inside a private network namespace (``unshare --net``) whose only interface is
``lo``: every byte stays on 127.0.0.1. Usage (from tests)::

    results = run_in_private_network("tests.distributed.ray_scenarios:executor_scenario", tmp)

The named function receives ``(address, workdir)`` and returns a JSON-ready dict.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_DISABLE_DOCKER_CPU_WARNING": "1", "HISTOSYNTH_PROGRESS": "0"}
PORT = 6390


def can_unshare_network() -> bool:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return False
    probe = subprocess.run(["unshare", "--net", "true"], capture_output=True, check=False)
    return probe.returncode == 0


def run_in_private_network(target: str, workdir: Path, timeout: float = 420) -> dict:
    """Start the cluster and run ``module:function`` inside a loopback-only namespace."""
    out = workdir / "result.json"
    cmd = (
        "ip link set lo up && "
        f"exec {sys.executable} -m tests.distributed.ray_cluster {target} {workdir} {out}"
    )
    env = {**os.environ, **RAY_ENV}
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        ["unshare", "--net", "bash", "-c", cmd], cwd=root, env=env, capture_output=True, text=True,
        timeout=timeout, check=False,
    )  # fmt: skip
    if proc.returncode != 0 or not out.is_file():
        raise RuntimeError(
            f"ray scenario {target} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    return json.loads(out.read_text())


def _main(target: str, workdir: str, out: str) -> None:
    ray_bin = str(Path(sys.executable).with_name("ray"))
    address = f"127.0.0.1:{PORT}"
    common = ["--num-cpus=1", "--disable-usage-stats"]
    Path(workdir).mkdir(parents=True, exist_ok=True)

    def ray(*args: str) -> None:
        subprocess.run([ray_bin, *args], check=True, capture_output=True, timeout=120)

    try:
        ray("start", "--head", f"--port={PORT}", "--include-dashboard=false", *common)
        ray("start", f"--address={address}", *common)
        module, func = target.split(":")
        result = getattr(importlib.import_module(module), func)(address, Path(workdir))
        Path(out).write_text(json.dumps(result))
    finally:
        subprocess.run([ray_bin, "stop", "--force"], capture_output=True, timeout=120, check=False)


if __name__ == "__main__":
    _main(*sys.argv[1:4])
