"""Artefact folders: atomic writes, manifests written last, and artefact ids.

A stage writes into one folder. The folder's ``manifest.json`` is written last and atomically
(temp file + ``os.replace``): a folder without one is incomplete, and re-running the same
command resumes it. While a stage runs, ``.pending.json`` records the id it is building so a
re-run with a *different* config is refused instead of silently mixing two artefacts.

Every stage is one function of one shape, ``run(inputs, out, cfg=None, *, overwrite=False,
...) -> StageResult`` (see :mod:`histosynth.stages`); :class:`StageResult` and the artefact
kinds (:class:`Kind`) are defined here, once.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import IO, Any, Protocol

from histosynth.disk import DISK_FULL_ERRNOS, as_disk_full
from histosynth.locking import LOCK, acquire, release

__all__ = [
    "MANIFEST",
    "SCHEMA_VERSION",
    "ArtifactError",
    "Kind",
    "Output",
    "StageResult",
    "Summary",
    "artifact_id",
    "atomic_write_bytes",
    "atomic_writer",
    "atomic_write_json",
    "atomic_write_text",
    "file_sha256",
    "is_complete",
    "package_versions",
    "prepare_output",
    "read_manifest",
    "safe_filename",
    "sweep_temp_files",
    "write_manifest",
]

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
PENDING = ".pending.json"
_VERSIONED = ("histosynth", "numpy", "torch", "diffusers", "openslide-python", "tiffslide", "faiss-cpu")


class ArtifactError(RuntimeError):
    """An artefact folder is missing, incomplete, or belongs to another configuration."""


class Kind:
    """The artefact kinds: the ``kind`` of each stage's manifest, and what a reader checks."""

    TILES = "tiles"
    PATCH_DATASET = "patch-dataset"  # real (dataset) and synthetic (sample) data alike
    EMBEDDINGS = "embeddings"
    CLUSTERS = "clusters"
    CROP_BANK = "crop-bank"
    CODEC = "codec"
    MODEL = "model"
    LARGE_IMAGE = "large-image"
    METRICS = "metrics"
    READER_STUDY = "reader-study"


class Summary(Protocol):
    """What one call of a stage did: :class:`histosynth.jobs.RunSummary` for stages that work
    item by item (slides, batches), :class:`histosynth.train.skeleton.TrainSummary` for trainers."""

    @property
    def ok(self) -> bool:
        """No item failed."""
        ...

    @property
    def failed(self) -> Sequence[Any]:
        """The items that failed, each with its ``key`` and its reason (``error``)."""
        ...

    def describe(self, noun: str = "items") -> str:
        """One line for the end of a command, then one line per failure."""
        ...


@dataclass(frozen=True)
class StageResult:
    """What a stage's ``run`` returns.

    Attributes
    ----------
    folder
        Where the stage wrote: the artefact's folder (for ``report``, its one HTML page).
    manifest
        The artefact's manifest; ``None`` while the artefact is unfinished (a training run
        stopped early, a sample run with failed batches) and for the report, which has none.
    summary
        What this call did; every stage's failures are ``summary.failed``.
    """

    folder: Path
    manifest: dict[str, Any] | None
    summary: Summary

    @property
    def ok(self) -> bool:
        return self.summary.ok


@contextlib.contextmanager
def atomic_writer(path: str | Path, mode: str = "wb") -> Iterator[IO[Any]]:
    """A file to write ``path``'s new contents into, piece by piece: when the block ends without
    an error the file is synced and replaces ``path`` (readers see the old file or the whole new
    one); on an error it is removed and ``path`` is left as it was.

    >>> import tempfile
    >>> target = Path(tempfile.mkdtemp()) / "out.txt"
    >>> with atomic_writer(target, "w") as fh:
    ...     _ = fh.write("a") + fh.write("b")
    >>> target.read_text()
    'ab'
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes owner-only files; artefacts are for sharing
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS:
            raise as_disk_full(exc, path) from None
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so readers see either the old file or the whole new one."""
    with atomic_writer(path) as fh:
        fh.write(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Text flavour of :func:`atomic_write_bytes` (UTF-8)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented, key-sorted JSON, atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def canonical_json(obj: Any) -> str:
    """Deterministic JSON used for hashing (sorted keys, no whitespace)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def artifact_id(kind: str, config: Mapping[str, Any], inputs: Iterable[str] = ()) -> str:
    """Content id of an artefact: changes whenever its config or any input id changes."""
    payload = canonical_json({"kind": kind, "config": config, "inputs": sorted(inputs)})
    return f"{kind}-{hashlib.sha256(payload.encode()).hexdigest()[:16]}"


def safe_filename(key: str) -> str:
    """``key`` (a slide name, an item key) as a file name: characters other than letters,
    digits, ``-``, ``_`` and ``.`` become ``_``.

    >>> safe_filename("TCGA 01/a:b.svs")
    'TCGA_01_a_b.svs'
    """
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in key)


def file_fingerprint(path: str | Path, edge: int = 1 << 20) -> str:
    """``size:hash`` of a file's size, first and last ``edge`` bytes: an identity that does not
    depend on where the file lies (a moved or re-cloned slide keeps its artefact ids) and costs
    two reads, not a pass over a multi-gigabyte slide."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        size = fh.seek(0, 2)
        fh.seek(0)
        h.update(fh.read(edge))
        if size > edge:
            fh.seek(max(edge, size - edge))
            h.update(fh.read(edge))
    return f"{size}:{h.hexdigest()[:16]}"


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file, streamed."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def package_versions(names: Iterable[str] = _VERSIONED) -> dict[str, str]:
    """Installed versions of the packages that shape an artefact (missing ones are skipped)."""
    out = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def is_complete(folder: str | Path) -> bool:
    """True when ``folder`` holds a manifest, i.e. its stage finished."""
    return (Path(folder) / MANIFEST).is_file()


def read_manifest(folder: str | Path, kind: str | None = None) -> dict[str, Any]:
    """Read a finished artefact's manifest, checking its kind and schema version.

    Raises
    ------
    ArtifactError
        When the folder has no manifest (incomplete or not an artefact), or another kind.
    """
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise ArtifactError(f"{folder}: no {MANIFEST}; the stage that writes it has not finished")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{path}: not valid JSON ({exc.msg})") from None
    if manifest.get("schema_version") != SCHEMA_VERSION:
        raise ArtifactError(
            f"{path}: schema_version {manifest.get('schema_version')!r}, this histosynth reads {SCHEMA_VERSION}"
        )
    if kind is not None and manifest.get("kind") != kind:
        raise ArtifactError(f"{path}: holds a {manifest.get('kind')!r} artefact, expected {kind!r}")
    return manifest


def write_manifest(
    folder: str | Path,
    kind: str,
    config: Mapping[str, Any],
    inputs: Mapping[str, str] | None = None,
    counts: Mapping[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Write ``manifest.json`` last and atomically; remove the pending marker.

    Parameters
    ----------
    folder
        The artefact folder.
    kind
        Artefact kind (``tiles``, ``embeddings``, ``patch-dataset``, ...).
    config
        The resolved stage config (JSON-ready dict).
    inputs
        Role → artefact id of each input (e.g. ``{"tiles": "tiles-ab12..."}``).
    counts
        Item counts (``{"slides": 3, "failed": 0}``).
    extra
        Further JSON-ready fields specific to the kind.
    """
    folder = Path(folder)
    inputs = dict(inputs or {})
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "kind": kind,
        "id": artifact_id(kind, config, inputs.values()),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "config": dict(config),
        "inputs": inputs,
        "counts": dict(counts or {}),
        "versions": package_versions(),
        **extra,
    }
    atomic_write_json(folder / MANIFEST, manifest)
    (folder / PENDING).unlink(missing_ok=True)
    release(folder)
    return manifest


def sweep_temp_files(folder: str | Path) -> int:
    """Remove the hidden ``.*.tmp`` files and folders a killed run left under ``folder``.

    Atomic writes go through such temporaries; a process killed midway leaves one behind,
    and a resumed artefact must hold exactly what an uninterrupted run writes. Only the run
    that claims the folder calls this, before any of its own writes.

    Returns
    -------
    int
        How many were removed.
    """
    import shutil

    stale = [p for p in Path(folder).rglob(".*.tmp") if p.is_file() or p.is_dir()]
    for p in sorted(stale, reverse=True):  # deepest first: a folder's contents before it
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
    return len(stale)


@dataclass(frozen=True)
class Output:
    """An output folder claimed by a stage run (see :func:`prepare_output`)."""

    folder: Path
    id: str
    complete: bool


def _clear(folder: Path) -> None:
    """Remove everything in an artefact folder but its write lock."""
    import shutil

    for entry in folder.iterdir():
        if entry.name == LOCK:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def prepare_output(
    folder: str | Path,
    kind: str,
    config: Mapping[str, Any],
    inputs: Mapping[str, str] | None = None,
    overwrite: bool = False,
) -> Output:
    """Claim ``folder`` for an artefact of (kind, config, inputs).

    Returns ``complete=True`` when the folder already holds exactly this artefact. A folder
    holding a different artefact (finished or in progress) is refused unless ``overwrite``, in
    which case everything in it is removed (its journal, checkpoints and partial work too, which
    would otherwise be resumed as this artefact's) so the stage starts afresh.

    An unfinished claim holds the folder's write lock (:mod:`histosynth.locking`) until
    :func:`write_manifest`: a second process claiming it meanwhile gets
    :class:`~histosynth.locking.FolderBusyError` naming the holder.
    """
    folder = Path(folder)
    want = artifact_id(kind, config, (inputs or {}).values())
    acquire(folder)  # one writer per folder: a second process is refused here, by name
    for marker in (MANIFEST, PENDING):
        path = folder / marker
        if not path.is_file():
            continue
        try:
            have = json.loads(path.read_text(encoding="utf-8")).get("id")
        except json.JSONDecodeError:
            have = None
        if have == want:
            if marker == PENDING:
                sweep_temp_files(folder)
            else:
                release(folder)  # finished: nothing left to write
            return Output(folder, want, complete=marker == MANIFEST)
        if not overwrite:
            release(folder)
            raise ArtifactError(
                f"{folder}: holds another {kind} artefact ({have}); use a new output folder or --overwrite"
            )
        _clear(folder)  # its journal, checkpoints and partial work are not this artefact's
        break
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_json(folder / PENDING, {"id": want, "kind": kind, "config": dict(config)})
    return Output(folder, want, complete=False)
