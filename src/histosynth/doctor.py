"""Environment checks behind ``histosynth doctor``; every check is offline unless asked."""

from __future__ import annotations

import os
import platform
from importlib import metadata

Row = tuple[str, str, str]  # (name, "ok" | "missing" | "error", detail)


def _version(pkg: str) -> Row:
    try:
        return pkg, "ok", metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return pkg, "missing", "not installed"


def versions() -> list[Row]:
    pkgs = ["histosynth", "torch", "torchvision", "diffusers", "accelerate", "timm",
            "segmentation-models-pytorch", "faiss-cpu", "scikit-image", "pyarrow", "safetensors"]  # fmt: skip
    return [("python", "ok", platform.python_version()), *map(_version, pkgs)]


def compute() -> list[Row]:
    import torch

    rows: list[Row] = [("cpu", "ok", f"{os.cpu_count()} cores, torch threads {torch.get_num_threads()}")]
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            rows.append((f"cuda:{i}", "ok", f"{p.name}, {p.total_memory / 2**30:.0f} GiB"))
    else:
        rows.append(("gpu", "missing", "no CUDA device; CPU presets (cpu-tiny, cpu-small) apply"))
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        rows.append(("mps", "ok", "Apple GPU available"))
    return rows


def readers() -> list[Row]:
    rows: list[Row] = []
    try:
        import openslide

        rows.append(("openslide", "ok", f"library {openslide.__library_version__}"))
    except (ImportError, OSError) as exc:
        rows.append(("openslide", "missing", f"{exc}; pip install openslide-bin"))
    try:
        import tiffslide

        rows.append(("tiffslide", "ok", tiffslide.__version__))
    except ImportError as exc:
        rows.append(("tiffslide", "missing", str(exc)))
    rows.append(("plain images", "ok", "PNG/JPEG/TIFF through Pillow and tifffile (give --mpp)"))
    return rows


def encoders(weights_registry: str | None) -> list[Row]:
    try:
        from histosynth.embed.encoders import encoder_status
    except ImportError:
        return [("encoders", "missing", "the embedding stage is not part of this build")]
    return [
        (s["name"], "ok" if s["available"] else "missing", s["detail"])
        for s in encoder_status(registry_file=weights_registry)
    ]


def ray_cluster(address: str) -> list[Row]:
    try:
        import ray
    except ImportError:
        return [("ray", "error", "not installed; pip install 'ray[default]'")]
    try:
        ray.init(address=address, logging_level="ERROR", log_to_driver=False)
        res = ray.cluster_resources()
        ray.shutdown()
    except Exception as exc:  # any connection failure is reported, not raised
        return [("ray", "error", f"no cluster at {address}: {exc}")]
    return [("ray", "ok", f"{address}: {int(res.get('CPU', 0))} CPUs, {int(res.get('GPU', 0))} GPUs")]


def run_checks(ray_address: str | None = None, weights_registry: str | None = None) -> dict[str, list[Row]]:
    """All checks, grouped by section."""
    out = {
        "versions": versions(),
        "compute": compute(),
        "slide readers": readers(),
        "encoders": encoders(weights_registry),
    }
    if ray_address:
        out["ray"] = ray_cluster(ray_address)
    return out
