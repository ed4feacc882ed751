"""The ``embed`` stage: tiles → sub-tile features (float16 shards + parquet index), per slide, resumable.

Each slide is one item of :func:`histosynth.jobs.run_items`: a DataLoader reads its patches
(workers open their own slide handle) and cuts them into sub-tiles, the encoder runs on batches
of sub-tiles, and the features stream into the slide's shard. A re-run skips finished slides.
With ``fit_ssl`` the ``ssl-tiny`` encoder is first trained on sub-tiles sampled evenly across
the slides and saved in ``encoder/``; a re-run reuses it.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from histosynth.artifacts import Kind, StageResult, safe_filename
from histosynth.config import ConfigError, config_to_dict, register_presets
from histosynth.distributed.cache import per_worker, remember
from histosynth.embed.ssl import SSLConfig
from histosynth.embed.store import ShardWriter, merge_parquet
from histosynth.embed.subtiles import SlidePatches, default_opener, read_tiles, subtile_offsets

if TYPE_CHECKING:
    from histosynth.distributed.executors import Executor

__all__ = ["EmbedConfig", "run"]

Opener = Callable[[str, float | None], Any]


@dataclass(frozen=True)
class EmbedConfig:
    """Settings of ``histosynth embed``.

    Attributes
    ----------
    encoder
        A name from :data:`histosynth.embed.encoders.ENCODERS`.
    weights
        Explicit weights file or folder (else the registry file, else the hub cache if allowed).
    allow_hub
        Accept weights already in the Hugging Face hub cache (never downloads).
    subtile, stride
        Sub-tile side and step in pixels at the tiles' mpp; ``stride`` must divide the patch size.
    batch_size
        Sub-tile images per forward pass.
    workers
        DataLoader worker processes reading patches (0 reads in the main process).
    device, precision
        Where and how the encoder runs (``precision="auto"``: bfloat16 on CUDA, else float32).
    fit_ssl
        Train ``ssl-tiny`` on these tiles first (``encoder`` must be ``"ssl-tiny"``).
    ssl
        Training settings for ``fit_ssl``.
    """

    encoder: str = "handcrafted"
    weights: str | None = None
    allow_hub: bool = False
    subtile: int = 64
    stride: int = 64
    batch_size: int = 256
    workers: int = 2
    device: str = "cpu"
    precision: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    fit_ssl: bool = False
    ssl: SSLConfig = field(default_factory=SSLConfig)

    def __post_init__(self) -> None:
        if self.fit_ssl and self.encoder != "ssl-tiny":
            raise ValueError(f"fit_ssl trains 'ssl-tiny', but encoder is {self.encoder!r}")
        if self.batch_size < 1 or self.workers < 0:
            raise ValueError("batch_size must be ≥ 1 and workers ≥ 0")


register_presets(EmbedConfig, {
    "handcrafted": {"encoder": "handcrafted"},
    "ssl": {"encoder": "ssl-tiny", "fit_ssl": True},
    "random": {"encoder": "random-init-cnn"},
    # Foundation models take 224 px; 128-px sub-tiles every 64 px keep some context per vector.
    "foundation": {"encoder": "uni2-h", "subtile": 128, "stride": 64, "batch_size": 128},
})  # fmt: skip


def _tiles_frame(tiles: Any) -> tuple[Any, str]:
    import pandas as pd

    if isinstance(tiles, pd.DataFrame):
        df = tiles.reset_index(drop=True).copy()
        df["tile"] = np.arange(len(df), dtype=np.int64)
        if "split" not in df:
            df["split"] = "train"
        digest = pd.util.hash_pandas_object(df[["slide", "slide_path", "x0", "y0", "size0", "size", "mpp"]])
        return df, f"tiles-frame-{int(digest.sum()) & (2**63 - 1):016x}"
    return read_tiles(tiles)


def _slide_geometry(rows: Any, cfg: EmbedConfig, slide: str) -> tuple[int, np.ndarray, float]:
    sizes = rows["size"].unique()
    if len(sizes) != 1:
        raise ValueError(f"slide {slide}: patches of several sizes {sorted(sizes)}; expected one")
    size = int(sizes[0])
    offsets = subtile_offsets(size, cfg.subtile, cfg.stride)
    if "slide_mpp" in rows and np.isfinite(rows["slide_mpp"].iloc[0]):
        slide_mpp = float(rows["slide_mpp"].iloc[0])
    else:  # size0 = size · mpp / slide_mpp
        slide_mpp = float(rows["mpp"].iloc[0] * size / rows["size0"].iloc[0])
    return size, offsets, slide_mpp


def _dataset(rows: Any, cfg: EmbedConfig, opener: Opener, slide: str) -> SlidePatches:
    _, offsets, slide_mpp = _slide_geometry(rows, cfg, slide)
    arr = rows[["x0", "y0", "size", "mpp"]].to_numpy(np.float64)
    return SlidePatches(str(rows["slide_path"].iloc[0]), arr, slide_mpp, offsets, cfg.subtile, opener)


def _subtile_index(rows: Any, ds: SlidePatches, tissue: np.ndarray, cfg: EmbedConfig) -> Any:
    """One index row per sub-tile, patch-major (the shard's row order)."""
    import pandas as pd

    s = len(ds.offsets)
    rep = rows.loc[rows.index.repeat(s)].reset_index(drop=True)
    scale = (rep["size0"] / rep["size"]).to_numpy()
    sx, sy = np.tile(ds.offsets[:, 0], len(rows)), np.tile(ds.offsets[:, 1], len(rows))
    out = pd.DataFrame({
        "slide": rep["slide"].astype(str), "row": np.arange(len(rep), dtype=np.int64),
        "tile": rep["tile"].to_numpy(np.int64), "patch": np.repeat(np.arange(len(rows)), s),
        "x0": rep["x0"].to_numpy(np.int64), "y0": rep["y0"].to_numpy(np.int64),
        "size0": rep["size0"].to_numpy(np.float64), "size": rep["size"].to_numpy(np.int32),
        "mpp": rep["mpp"].to_numpy(np.float64), "sx": sx, "sy": sy,
        "subtile": np.full(len(rep), cfg.subtile, np.int32),
        "sub_x0": rep["x0"].to_numpy() + sx * scale, "sub_y0": rep["y0"].to_numpy() + sy * scale,
        "sub_size0": cfg.subtile * scale, "tissue": tissue.astype(np.float32),
        "split": rep["split"].astype(str), "slide_path": rep["slide_path"].astype(str),
        "slide_mpp": np.full(len(rep), ds.slide_mpp, np.float64),
    })  # fmt: skip
    return out


def _embed_slide(slide: str, rows: Any, *, enc: Any, cfg: EmbedConfig, folder: Path, opener: Opener,
                 show_progress: bool) -> dict[str, Any]:  # fmt: skip
    from torch.utils.data import DataLoader

    from histosynth.embed.base import TorchEncoder
    from histosynth.progress import progress

    start = time.perf_counter()
    rows = rows.reset_index(drop=True)
    ds = _dataset(rows, cfg, opener, slide)
    s = len(ds.offsets)
    loader = DataLoader(ds, batch_size=max(1, cfg.batch_size // s), shuffle=False, num_workers=cfg.workers,
                        pin_memory=cfg.device.startswith("cuda"),
                        prefetch_factor=4 if cfg.workers else None)  # fmt: skip
    writer = ShardWriter(folder, slide, len(rows) * s, enc.dim)
    tissue = np.zeros(len(rows) * s, np.float32)
    bar = progress(total=len(rows) * s, desc=f"  {slide}", leave=False, unit="img", disable=not show_progress)
    try:
        for subs, tis, idx in loader:
            flat = subs.reshape(-1, *subs.shape[2:])
            if isinstance(enc, TorchEncoder):
                feats = enc.encode_tensor(flat).numpy()
            else:
                feats = enc.encode(flat.numpy())
            first = int(idx[0]) * s
            writer.write(first, feats)
            tissue[first : first + len(feats)] = tis.reshape(-1).numpy()
            bar.update(len(feats))
        writer.commit(_subtile_index(rows, ds, tissue, cfg))
    except BaseException:
        writer.abort()
        raise
    finally:
        bar.close()
        del loader
    return {"vectors": len(rows) * s, "seconds": round(time.perf_counter() - start, 3)}


def _ssl_images(tiles: Any, cfg: EmbedConfig, opener: Opener) -> np.ndarray:
    """Sub-tiles for SSL training, evenly across slides, tissue-rich ones only (seeded)."""
    from histosynth.seeding import numpy_rng

    groups = tiles.groupby(tiles["slide"].astype(str), sort=False)
    quota = math.ceil(cfg.ssl.images / groups.ngroups)
    chunks = []
    for slide, rows in groups:
        rows = rows.reset_index(drop=True)
        ds = _dataset(rows, cfg, opener, slide)
        rng = numpy_rng(cfg.ssl.seed, "ssl", slide)
        n_patches = min(len(rows), 2 * math.ceil(quota / len(ds.offsets)))
        subs, tis = [], []
        for i in sorted(rng.choice(len(rows), n_patches, replace=False)):
            a, t, _ = ds[int(i)]
            subs.append(a), tis.append(t)
        subs_arr, tis_arr = np.concatenate(subs), np.concatenate(tis)
        keep = np.flatnonzero(tis_arr >= 0.5)
        keep = keep if len(keep) >= 2 else np.arange(len(tis_arr))
        chunks.append(subs_arr[rng.permutation(keep)[:quota]])
    images = np.concatenate(chunks)
    return images[: cfg.ssl.images]


def _fit_encoder(tiles: Any, cfg: EmbedConfig, folder: Path, opener: Opener, show_progress: bool) -> Path:
    from histosynth.artifacts import atomic_write_json
    from histosynth.embed.ssl import fit_ssl

    path = folder / "encoder" / "ssl-tiny.safetensors"
    record = folder / "encoder" / "fit.json"
    if path.is_file() and record.is_file():  # fitted in an earlier, interrupted run
        return path
    images = _ssl_images(tiles, cfg, opener)
    info = fit_ssl(images, cfg.ssl, path, show_progress=show_progress)
    atomic_write_json(record, info)
    return path


def run(
    tiles: Any,
    out: str | Path,
    cfg: EmbedConfig | None = None,
    *,
    registry_file: str | Path | None = None,
    opener: Opener = default_opener,
    executor: Executor | None = None,
    overwrite: bool = False,
    show_progress: bool = True,
) -> StageResult:
    """Embed every patch's sub-tiles.

    >>> result = run("tiles", "embeddings", EmbedConfig(subtile=16, stride=16))   # doctest: +SKIP
    >>> result.manifest["counts"]["vectors"], result.summary.failed              # doctest: +SKIP

    Parameters
    ----------
    tiles
        A ``histosynth tile`` folder, a ``tiles.parquet`` path, or a DataFrame with its columns.
    out
        The embeddings folder (resumed when it holds an unfinished run of the same config).
    cfg
        Stage settings (defaults: handcrafted encoder, 64-px sub-tiles).
    registry_file
        The user's weights registry file.
    opener
        ``opener(slide_path, mpp) -> SlideReader`` (default :func:`histosynth.wsi.open_slide`).
    overwrite
        Replace a folder that holds another artefact.
    executor
        Where slides are embedded (:mod:`histosynth.distributed.executors`; default: here).
        Each worker loads the encoder once; each slide writes its own shard, merged in slide
        order, so the output is the same whichever executor ran it.
    overwrite
        Replace a folder that holds another artefact.

    Returns
    -------
    StageResult
        The folder, its manifest (the encoder's identity, counts) and the outcome per slide.
    """
    import json

    from histosynth.artifacts import prepare_output, read_manifest, write_manifest
    from histosynth.embed.encoders import load_encoder
    from histosynth.jobs import RunSummary, run_items

    cfg = cfg or EmbedConfig()
    df, tiles_id = _tiles_frame(tiles)
    if df.empty:
        raise ConfigError("embed: the tiles table has no rows")
    enc = None
    load_args: tuple = (cfg.encoder, cfg.weights, None if registry_file is None else str(registry_file),
                        cfg.allow_hub, cfg.device, cfg.precision)  # fmt: skip
    if not cfg.fit_ssl:
        enc = load_encoder(*load_args)
    config = config_to_dict(cfg)
    inputs = {"tiles": tiles_id, "encoder": enc.identity if enc else "ssl-tiny:fit"}
    claim = prepare_output(out, Kind.EMBEDDINGS, config, inputs, overwrite=overwrite)
    folder = claim.folder
    if claim.complete:
        return StageResult(folder, read_manifest(folder, Kind.EMBEDDINGS), RunSummary.recorded(folder))
    training = None
    if cfg.fit_ssl:
        weights = _fit_encoder(df, cfg, folder, opener, show_progress)
        load_args = ("ssl-tiny", str(weights), None, False, cfg.device, cfg.precision)
        enc = load_encoder(*load_args)
        training = json.loads((folder / "encoder" / "fit.json").read_text(encoding="utf-8"))
    assert enc is not None
    groups = dict(list(df.groupby(df["slide"].astype(str), sort=False)))
    slides = list(groups)
    for slide in slides:  # fail early on geometry, not after hours of work
        _slide_geometry(groups[slide], cfg, slide)
    remember(_encoder_key(load_args), enc)  # items run here reuse the encoder just loaded
    work = _SlideWork(load_args, cfg, folder, opener, show_progress)
    items = [(s, groups[s]) for s in slides]
    summary = run_items(items, work, folder, desc="embed", executor=executor, show_progress=show_progress)
    done = [s for s in slides if s in summary.outputs()]
    n_rows = merge_parquet(
        [folder / "index" / f"{safe_filename(s)}.parquet" for s in done], folder / "index.parquet"
    )
    outputs = summary.outputs()
    counts = {
        "slides": len(done),
        "failed": len(summary.failed),
        "vectors": int(n_rows),
        "seconds": round(sum(outputs[s]["seconds"] for s in done), 3),
    }
    failures = {r.key: r.error for r in summary.failed}
    manifest = write_manifest(
        folder, Kind.EMBEDDINGS, config, inputs, counts, encoder=enc.describe(), failures=failures, slides=done,
        geometry={"subtile": cfg.subtile, "stride": cfg.stride}, ssl_training=training,
    )  # fmt: skip
    return StageResult(folder, manifest, summary)


def _encoder_key(load_args: tuple) -> tuple:
    return ("encoder", *load_args)


@dataclasses.dataclass
class _SlideWork:
    """One slide's work; carries how to load the encoder, never the encoder itself."""

    load_args: tuple  # load_encoder(name, weights, registry_file, allow_hub, device, precision)
    cfg: EmbedConfig
    folder: Path
    opener: Opener
    show_progress: bool

    def __call__(self, slide: str, rows: Any) -> dict[str, Any]:
        from histosynth.embed.encoders import load_encoder

        enc = per_worker(_encoder_key(self.load_args), lambda: load_encoder(*self.load_args))
        return _embed_slide(slide, rows, enc=enc, cfg=self.cfg, folder=self.folder, opener=self.opener,
                            show_progress=self.show_progress)  # fmt: skip
