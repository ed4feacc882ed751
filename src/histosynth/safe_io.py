"""Loading files a user handed in, without trusting them more than needed.

Weights load from safetensors only; a pickle-based checkpoint (``.pt``, ``.pth``, ``.bin``,
``.ckpt``, ``.pkl``) is refused with a sentence saying how to convert it, because unpickling
runs arbitrary code. Training state, which histosynth writes itself, loads with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

from histosynth.errors import UnsafeFileError

__all__ = ["is_pickle", "load_safetensors", "load_training_state"]

_CONVERT = (
    'convert it once, in an environment you trust, with: python -c "import torch, safetensors.torch as st; '
    "st.save_file({{k: v.contiguous() for k, v in torch.load('{src}', weights_only=True).items()}}, "
    "'{dst}')\""
)


def is_pickle(path: str | Path) -> bool:
    """True when ``path`` is a raw pickle or a torch zip checkpoint (which holds a pickle)."""
    path = Path(path)
    with open(path, "rb") as fh:
        head = fh.read(4)
    if head[:1] == b"\x80" and head[1:2] in {bytes([p]) for p in range(2, 6)}:
        return True
    if head[:2] == b"PK" and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            return any(name.endswith(".pkl") for name in zf.namelist())
    return False


def load_safetensors(path: str | Path, device: str = "cpu") -> dict[str, Any]:
    """A state dict from a safetensors file; pickles are refused with conversion advice.

    Raises
    ------
    UnsafeFileError
        When the file is a pickle or a torch checkpoint.
    FileNotFoundError
        When the file does not exist.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: weights file not found")
    if is_pickle(path):
        dst = path.with_suffix(".safetensors")
        raise UnsafeFileError(
            f"{path}: is a pickle checkpoint, which histosynth never loads (it can run code); "
            + _CONVERT.format(src=path, dst=dst)
        )
    try:
        return load_file(str(path), device=device)
    except (SafetensorError, OSError, ValueError) as exc:
        raise UnsafeFileError(f"{path}: not a valid safetensors file ({exc})") from None


def load_training_state(path: str | Path) -> Any:
    """Training state that histosynth wrote itself, loaded with ``weights_only=True``."""
    import torch

    return torch.load(Path(path), map_location="cpu", weights_only=True)
