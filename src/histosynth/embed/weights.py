"""Where an encoder's weights come from, and how they are loaded safely.

Weights are never downloaded. :func:`resolve_weights` looks, in order, at

1. an explicit path (``--weights``; a ``.safetensors`` file, or a folder holding one);
2. the local registry file the user maintains (TOML, see below);
3. the Hugging Face hub *cache*, only when the user opts in (``allow_hub=True``); the cache is
   read with ``huggingface_hub.try_to_load_from_cache``, which never touches the network.

When none holds the weights, :class:`MissingWeightsError` says in one sentence which file to put
where. Only safetensors are loaded: a pickled checkpoint (``.bin``, ``.pt``, ``.pth``) is refused
with the one-line command that converts it.

The registry file is ``$HISTOSYNTH_WEIGHTS``, else ``$XDG_CONFIG_HOME/histosynth/weights.toml``
(``~/.config/histosynth/weights.toml``)::

    [encoders]
    uni2-h = "/models/uni2-h/model.safetensors"          # a file, or a folder holding one
    virchow2 = { path = "virchow2/", sha256 = "ab12..." } # relative to this file; sha256 checked
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from histosynth.config import ConfigError
from histosynth.errors import UnsafeFileError

if TYPE_CHECKING:
    from histosynth.embed.spec import EncoderSpec

__all__ = [
    "MissingWeightsError",
    "ResolvedWeights",
    "WeightsError",
    "default_registry_file",
    "load_safetensors",
    "read_registry",
    "resolve_weights",
    "weights_checksum",
]

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
_CONVERT = (
    'python -c "import torch, safetensors.torch as s; '
    "s.save_file(torch.load('IN.bin', weights_only=True), 'model.safetensors')\""
)


class MissingWeightsError(FileNotFoundError):
    """An encoder's weights were found nowhere; the message says which file to put where."""

    def __str__(self) -> str:  # FileNotFoundError would prefix an errno; show the sentence only
        return str(self.args[0])


class WeightsError(ConfigError):
    """A weights file that exists but cannot serve its encoder (wrong format, shape or checksum)."""


@dataclass(frozen=True)
class ResolvedWeights:
    """A weights file found for an encoder, and where it was found (``path``/``registry``/``hub``)."""

    path: Path
    source: str
    sha256: str | None = None  # the checksum the registry promised, verified on load


def default_registry_file() -> Path:
    """The user's weights registry file (it need not exist)."""
    env = os.environ.get("HISTOSYNTH_WEIGHTS")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "histosynth" / "weights.toml"


def read_registry(path: str | Path | None = None) -> dict[str, dict[str, Any]]:
    """Entries of a weights registry file: name → ``{"path": Path, "sha256": str | None}``.

    A file that does not exist yet is an empty registry (the missing-weights sentence says what
    to write into it).
    """
    path = Path(path).expanduser() if path is not None else default_registry_file()
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    table = data.get("encoders", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [encoders] must be a table of name = path entries")
    out: dict[str, dict[str, Any]] = {}
    for name, entry in table.items():
        if isinstance(entry, str):
            entry = {"path": entry}
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
            raise ConfigError(f"{path}: encoders.{name} must be a path or a table with a 'path' string")
        p = Path(entry["path"]).expanduser()
        out[name] = {"path": p if p.is_absolute() else path.parent / p, "sha256": entry.get("sha256")}
    return out


def _weights_file(path: Path, spec: EncoderSpec) -> Path:
    """The file to load from ``path``: itself, or ``spec.weight_file`` inside a folder."""
    if path.is_dir() and spec.backend != "transformers":
        for name in (spec.weight_file, "model.safetensors"):
            if (path / name).is_file():
                return path / name
        pickles = sorted(p.name for p in path.iterdir() if p.suffix in PICKLE_SUFFIXES)
        if pickles:
            _refuse_pickle(path / pickles[0], spec)
        return path / spec.weight_file
    return path


def _refuse_pickle(path: Path, spec: EncoderSpec) -> None:
    raise UnsafeFileError(
        f"{path}: encoder {spec.name!r} loads only safetensors, not pickled checkpoints; "
        f"convert it once with: {_CONVERT.replace('IN.bin', str(path))}"
    )


def hub_cached_file(repo: str, filename: str) -> Path | None:
    """A file of a hub repository if it is already in the local cache (never downloads)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    # HF_HUB_CACHE is read at call time (huggingface_hub reads it once, at import).
    found = try_to_load_from_cache(repo, filename, cache_dir=os.environ.get("HF_HUB_CACHE") or None)
    return Path(found) if isinstance(found, str) else None


def missing_sentence(spec: EncoderSpec, registry_file: str | Path | None, detail: str = "") -> str:
    """The one sentence that tells the user which file to put where."""
    reg = Path(registry_file) if registry_file is not None else default_registry_file()
    what = (
        "a folder with config.json and model.safetensors"
        if spec.backend == "transformers"
        else spec.weight_file
    )
    where = f" from {spec.source}" if spec.source else ""
    prefix = f"encoder {spec.name!r} has no weights{detail}"
    hub = (
        f", or pass --allow-hub to use a copy of {spec.hub_repo} already in the hub cache"
        if spec.hub_repo
        else ""
    )
    return (
        f'{prefix}: get {what}{where} and pass --weights PATH, or add `{spec.name} = "PATH"` under '
        f"[encoders] in {reg}{hub}."
    )


def resolve_weights(
    spec: EncoderSpec,
    weights: str | Path | None = None,
    registry_file: str | Path | None = None,
    allow_hub: bool = False,
) -> ResolvedWeights | None:
    """Find the weights of ``spec`` without any network access.

    Returns ``None`` for encoders that need no weights (or whose weights are optional and were
    not given).

    Raises
    ------
    MissingWeightsError
        When required weights are found nowhere (the message says which file to put where).
    UnsafeFileError
        When the file found is a pickle.
    """
    if spec.weights == "none":
        return None
    found: ResolvedWeights | None = None
    if weights is not None:
        path = _weights_file(Path(weights).expanduser(), spec)
        if not path.exists():
            raise MissingWeightsError(missing_sentence(spec, registry_file, f" at {path}"))
        found = ResolvedWeights(path, "path")
    else:
        entry = read_registry(registry_file).get(spec.name)
        if entry is not None:
            path = _weights_file(entry["path"], spec)
            if not path.exists():
                reg = registry_file or default_registry_file()
                raise MissingWeightsError(
                    missing_sentence(spec, registry_file, f" at {path} (listed in {reg})")
                )
            found = ResolvedWeights(path, "registry", entry["sha256"])
        elif allow_hub and spec.hub_repo:
            found = _from_hub(spec)
    if found is None:
        if spec.weights == "optional":
            return None
        raise MissingWeightsError(missing_sentence(spec, registry_file))
    if found.path.is_file() and found.path.suffix in PICKLE_SUFFIXES:
        _refuse_pickle(found.path, spec)
    return found


def _from_hub(spec: EncoderSpec) -> ResolvedWeights | None:
    if spec.backend == "transformers":
        cfg = hub_cached_file(spec.hub_repo, "config.json")
        model = hub_cached_file(spec.hub_repo, "model.safetensors")
        return ResolvedWeights(cfg.parent, "hub") if cfg is not None and model is not None else None
    path = hub_cached_file(spec.hub_repo, spec.weight_file)
    if path is not None:
        return ResolvedWeights(path, "hub")
    pickled = hub_cached_file(spec.hub_repo, "pytorch_model.bin")
    if pickled is not None:
        _refuse_pickle(pickled, spec)
    return None


def weights_checksum(resolved: ResolvedWeights) -> str:
    """SHA-256 of the weights (of ``model.safetensors`` inside a folder); checked against the
    registry's ``sha256`` when it gives one."""
    from histosynth.artifacts import file_sha256

    path = resolved.path / "model.safetensors" if resolved.path.is_dir() else resolved.path
    digest = file_sha256(path)
    if resolved.sha256 and resolved.sha256.lower() != digest:
        raise WeightsError(f"{path}: checksum {digest} differs from the registry's {resolved.sha256}")
    return digest


def load_safetensors(path: str | Path) -> dict[str, Any]:
    """A state dict from a ``.safetensors`` file (CPU tensors), through :mod:`histosynth.safe_io`,
    which also refuses pickles by their content, whatever their name."""
    from histosynth.safe_io import load_safetensors as load

    path = Path(path)
    if path.suffix in PICKLE_SUFFIXES:
        raise UnsafeFileError(f"{path}: a pickled checkpoint; only .safetensors files are loaded")
    return load(path)
