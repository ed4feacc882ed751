"""The user-facing error types: the CLI prints these as one sentence, without a traceback."""

from __future__ import annotations

from histosynth.artifacts import ArtifactError
from histosynth.config import ConfigError
from histosynth.data.classmap import ClassMapError
from histosynth.disk import DiskFullError
from histosynth.locking import FolderBusyError
from histosynth.registry import RegistryError
from histosynth.wsi.base import SlideError

__all__ = ["USER_ERRORS", "UnsafeFileError"]


class UnsafeFileError(ValueError):
    """A file that would need unsafe loading (a pickle) or parsing (XML entities)."""


USER_ERRORS: tuple[type[BaseException], ...] = (
    ArtifactError,
    ConfigError,
    ClassMapError,
    DiskFullError,
    FolderBusyError,
    RegistryError,
    SlideError,
    UnsafeFileError,
    FileNotFoundError,
)
