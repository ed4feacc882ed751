"""Checkpoints: a diffusers pipeline folder (EMA weights) plus the training state.

::

    checkpoints/step-00001000/
      model_index.json, denoiser/, codec/, scheduler/   HistoSynthPipeline.from_pretrained(...)
      training_state/
        denoiser/      the raw (non-EMA) weights: config.json + safetensors
        optimizer.pt   AdamW state (torch.save of tensors and numbers; loaded weights_only)
        trainer.pt     step, global RNG states, grad-scaler state

``train-codec`` writes ``codec/`` and a ``training_state/`` of ``optimizer.pt`` (discriminator
and both optimisers) and ``trainer.pt`` the same way (:func:`write_checkpoint`).

A checkpoint is written to a hidden temporary folder and renamed into place, so a folder named
``step-*`` is always whole. Data order and per-step noise are functions of (seed, step)
(see :mod:`histosynth.train.data`), so nothing else is needed to resume exactly.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch

from histosynth.artifacts import ArtifactError
from histosynth.safe_io import load_training_state

T = TypeVar("T")

__all__ = [
    "checkpoints",
    "latest_checkpoint",
    "load_checked",
    "load_denoiser",
    "load_state",
    "load_trained",
    "save_checkpoint",
    "write_checkpoint",
]


def checkpoints(root: str | Path) -> list[Path]:
    """Finished checkpoint folders under ``root``, oldest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p for p in root.glob("step-*") if _finished(p))


def _finished(folder: Path) -> bool:
    """A checkpoint folder is finished when it has ``trainer.pt``, the last file written."""
    return folder.is_dir() and (folder / "training_state" / "trainer.pt").is_file()


def latest_checkpoint(root: str | Path) -> Path | None:
    found = checkpoints(root)
    return found[-1] if found else None


def write_checkpoint(
    root: str | Path,
    step: int,
    write: Callable[[Path], None],
    extra: dict[str, Any] | None = None,
    keep: int = 2,
) -> Path:
    """Write checkpoint ``step`` atomically and keep only the newest ``keep``.

    Parameters
    ----------
    root
        The ``checkpoints`` folder.
    step
        Optimiser steps done.
    write
        ``write(folder)`` saves the weights and optimiser state into the (temporary) checkpoint
        folder, whose ``training_state/`` exists; ``trainer.pt`` is added after it.
    extra
        More state for ``trainer.pt`` (tensors, numbers, strings, lists and dicts of them).
    keep
        Checkpoints kept (older ones are removed; 0 keeps all).
    """
    root = Path(root)
    final = root / f"step-{step:08d}"
    tmp = root / f".step-{step:08d}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "training_state").mkdir(parents=True)
    write(tmp)
    trainer = {"step": step, "torch_rng": torch.get_rng_state(), **(extra or {})}
    if torch.cuda.is_available():
        trainer["cuda_rng"] = torch.cuda.get_rng_state_all()
    torch.save(trainer, tmp / "training_state" / "trainer.pt")
    if final.exists():
        _remove(final)
    os.replace(tmp, final)
    for old in checkpoints(root)[:-keep] if keep > 0 else []:
        _remove(old)
    _remove_debris(root)
    return final


def _remove(folder: Path) -> None:
    """Remove a checkpoint folder; renamed first, so a kill midway leaves no half ``step-*`` folder."""
    trash = folder.with_name(f".{folder.name}.removing")
    shutil.rmtree(trash, ignore_errors=True)
    os.replace(folder, trash)
    shutil.rmtree(trash, ignore_errors=True)


def _remove_debris(root: Path) -> None:
    """What a killed removal left: ``.removing`` folders, and ``step-*`` folders without their
    ``trainer.pt`` (an older release removed checkpoints in place; a write never leaves one,
    since it renames a whole folder into place)."""
    for p in root.glob(".step-*.removing"):
        shutil.rmtree(p, ignore_errors=True)
    for p in root.glob("step-*"):
        if p.is_dir() and not _finished(p):
            shutil.rmtree(p, ignore_errors=True)


def save_checkpoint(
    root: str | Path,
    step: int,
    pipeline: Any,
    model: Any,
    optimizer: torch.optim.Optimizer,
    extra: dict[str, Any] | None = None,
    keep: int = 2,
) -> Path:
    """Write a ``histosynth train`` checkpoint (see :func:`write_checkpoint`).

    Parameters
    ----------
    root, step, extra, keep
        As :func:`write_checkpoint`.
    pipeline
        A ``HistoSynthPipeline`` holding the EMA denoiser, codec and scheduler.
    model
        The raw (unwrapped) denoiser.
    optimizer
        The optimiser.
    """

    def write(folder: Path) -> None:
        pipeline.save_pretrained(folder)
        model.save_pretrained(folder / "training_state" / "denoiser")
        torch.save(optimizer.state_dict(), folder / "training_state" / "optimizer.pt")

    return write_checkpoint(root, step, write, extra, keep)


def load_state(ckpt: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(trainer state, optimizer state)`` of a checkpoint, loaded with ``weights_only=True``."""
    state = Path(ckpt) / "training_state"
    return load_training_state(state / "trainer.pt"), load_training_state(state / "optimizer.pt")


def load_checked(folder: str | Path, load: Callable[[], T]) -> T:
    """Run ``load()`` (a diffusers ``from_pretrained``), turning a failure into one sentence.

    A model folder whose ``config.json`` does not match its weights (an edited or mixed-up
    checkpoint) makes diffusers raise a long ``ValueError``; the user gets the folder and the
    first line of the reason instead of a traceback.

    Raises
    ------
    ArtifactError
        When the folder cannot be loaded.
    """
    from histosynth.errors import USER_ERRORS

    try:
        return load()
    except USER_ERRORS:
        raise
    except Exception as exc:  # diffusers/safetensors raise ValueError, OSError, KeyError...
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise ArtifactError(
            f"{folder}: cannot load the model; its config does not match its weights ({reason})"
        ) from None


def load_trained(cls: type[T], folder: str | Path) -> T:
    """A model of a diffusers ``ModelMixin`` class saved in a checkpoint, with no trace of where
    it was loaded from.

    diffusers records the load path as ``_name_or_path`` in the model's config, and
    ``save_pretrained`` writes it back: a resumed run's checkpoints would then differ from an
    uninterrupted run's and carry a path of the machine that wrote them.
    """
    from diffusers.configuration_utils import FrozenDict

    model = load_checked(folder, lambda: cls.from_pretrained(folder, use_safetensors=True))
    model._internal_dict = FrozenDict({k: v for k, v in model.config.items() if k != "_name_or_path"})
    return model


def load_denoiser(folder: str | Path) -> Any:
    """A denoiser saved in a checkpoint, of the backbone family its config names (see :func:`load_trained`)."""
    from histosynth.diffusion.denoiser import denoiser_class

    return load_trained(denoiser_class(folder), folder)


def restore_rng(trainer: dict[str, Any]) -> None:
    """Restore the global torch RNG states saved by :func:`save_checkpoint`."""
    torch.set_rng_state(trainer["torch_rng"])
    if "cuda_rng" in trainer and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(trainer["cuda_rng"])
