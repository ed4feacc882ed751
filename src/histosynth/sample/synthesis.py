"""The one object that turns maps and crops into images: a trained model, ready to sample.

Used by ``histosynth sample``, the large-image synthesis, the evaluation and the studio::

    synth = Synthesizer.from_checkpoint("runs/cmu/train")     # a `histosynth train` folder
    image = synth.generate(label, crops, guidance_map=1.5, guidance_crops=2.0,
                           steps=20, sampler="dpm++-karras", seed=0)  # (H, W, 3) uint8

A tiny checkpoint for tests (seconds on a CPU)::

    from histosynth.config import build_config
    from histosynth.train.config import TrainConfig
    from histosynth.train.loop import run
    cfg = build_config(TrainConfig, preset="cpu-tiny", overrides=["run.steps=2"])
    run(dataset, out, cfg)          # then Synthesizer.from_checkpoint(out)

Each sample's noise comes from its own generator (:func:`histosynth.seeding.torch_generator`
of the run seed and the sample key), so an image does not depend on the batch it was made in.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from histosynth.data.classmap import ClassMap, ClassMapError
from histosynth.data.crops import Crop

__all__ = ["Synthesizer", "resolve_model_dir"]


def resolve_model_dir(path: str | Path) -> Path:
    """The pipeline folder of a train output, a checkpoint, or a pipeline folder itself."""
    path = Path(path)
    for cand in (path, path / "model"):
        if (cand / "model_index.json").is_file():
            return cand
    ckpts = sorted(p for p in (path / "checkpoints").glob("step-*") if (p / "model_index.json").is_file())
    if ckpts:
        return ckpts[-1]
    raise FileNotFoundError(
        f"{path}: no trained model here (expected model_index.json, model/ or checkpoints/)"
    )


class Synthesizer:
    """A loaded :class:`~histosynth.diffusion.pipeline.HistoSynthPipeline` with its class map.

    Parameters
    ----------
    pipeline
        The diffusers pipeline.
    classes
        Class map of the ids the model was trained on.
    source
        Where it was loaded from (recorded in outputs).
    """

    def __init__(self, pipeline: Any, classes: ClassMap, source: str = "<memory>") -> None:
        self.pipe = pipeline
        self.classes = classes
        self.source = source

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "cpu") -> Synthesizer:
        """Load a model from a train output folder, a checkpoint folder or a pipeline folder."""
        # diffusers resolves the components named in model_index.json among loaded modules:
        # import them before from_pretrained, or a fresh process cannot find them.
        import histosynth.diffusion.codec
        import histosynth.diffusion.denoiser  # noqa: F401
        from histosynth.diffusion.pipeline import HistoSynthPipeline

        model_dir = resolve_model_dir(path)
        from histosynth.train.checkpoint import load_checked

        pipe = load_checked(
            model_dir, lambda: HistoSynthPipeline.from_pretrained(str(model_dir), use_safetensors=True)
        ).to(device)
        pipe.set_progress_bar_config(disable=True)
        n = int(pipe.denoiser.config.num_classes)
        classes = None
        for cand in (model_dir / "classes.json", model_dir.parent / "classes.json",
                     model_dir.parent.parent / "classes.json"):  # fmt: skip
            if cand.is_file():
                classes = ClassMap.from_json(cand)
                if classes.num_classes > n:
                    raise ClassMapError(
                        f"{cand}: class ids go up to {classes.num_classes - 1}, but the model in {model_dir} "
                        f"knows ids 0..{n - 1}; use the classes.json it was trained with"
                    )
                break
        if classes is None:
            classes = ClassMap.from_names([f"class_{i}" for i in range(n)], source=str(model_dir))
        return cls(pipe, classes, str(model_dir))

    # ------------------------------------------------------------------------------ facts
    @property
    def image_size(self) -> int:
        return int(self.pipe.denoiser.config.image_size)

    @property
    def num_classes(self) -> int:
        """Class ids the model knows: ``0 .. num_classes - 1``."""
        return int(self.pipe.denoiser.config.num_classes)

    @property
    def conditioning(self) -> str:
        return str(self.pipe.denoiser.config.conditioning)

    @property
    def uses_crops(self) -> bool:
        """Whether the model reads exemplar crops (its conditioning variant says so)."""
        return bool(self.pipe.denoiser.cond.uses_crops)

    @property
    def samplers(self) -> list[str]:
        from histosynth.diffusion.pipeline import SAMPLERS

        return list(SAMPLERS)

    # ------------------------------------------------------------------------------ sampling
    def generate_batch(
        self,
        labels: Sequence[np.ndarray],
        crops: Sequence[Sequence[Crop]] | None,
        seeds: Sequence[int],
        guidance_map: float = 1.0,
        guidance_crops: float = 1.0,
        steps: int = 50,
        sampler: str = "ddim",
        eta: float = 0.0,
    ) -> np.ndarray:
        """Images ``(B, H, W, 3)`` uint8, one per label map, each from its own seed."""
        import torch

        from histosynth.seeding import torch_generator

        if len(seeds) != len(labels):
            raise ValueError(f"got {len(seeds)} seeds for {len(labels)} maps; give one per map")
        n = self.num_classes
        top = max((int(np.max(lb)) for lb in labels), default=0)
        if top >= n:  # an embedding lookup would fail deep inside the network otherwise
            raise ClassMapError(f"a label map holds class id {top}, but the model knows ids 0..{n - 1}")
        self.pipe.set_sampler(sampler)
        gens = [torch_generator(int(s), device=str(self.pipe.device)) for s in seeds]
        with torch.inference_mode():
            out = self.pipe(
                np.stack([np.asarray(lb, np.int64) for lb in labels]),
                [list(c) for c in crops] if crops is not None else None,
                guidance_map=guidance_map, guidance_crops=guidance_crops, num_inference_steps=steps,
                generator=gens, eta=eta, output_type="np",
            )  # fmt: skip
        return out.images

    def generate(
        self,
        label: np.ndarray,
        crops: Sequence[Crop],
        guidance_map: float = 1.0,
        guidance_crops: float = 1.0,
        steps: int = 50,
        sampler: str = "ddim",
        seed: int = 0,
        progress: Callable[[int, int], None] | None = None,
    ) -> np.ndarray:
        """One image ``(H, W, 3)`` uint8 for one map (the studio's call)."""
        if progress is not None:
            self.pipe.set_progress_bar_config(disable=True)
            self._progress_hook(progress, steps)
        try:
            return self.generate_batch(
                [label], [list(crops)], [seed], guidance_map, guidance_crops, steps, sampler
            )[0]
        finally:
            self._progress_hook(None, steps)

    def _progress_hook(self, fn: Callable[[int, int], None] | None, total: int) -> None:
        # diffusers pipelines iterate `self.progress_bar(timesteps)`; wrap it to report steps.
        pipe = self.pipe
        if fn is None:
            pipe.__dict__.pop("progress_bar", None)
            return

        def bar(iterable: Any = None, total_: Any = None) -> Any:
            items = list(iterable)
            for i, t in enumerate(items):
                yield t
                fn(i + 1, len(items))

        pipe.progress_bar = bar
