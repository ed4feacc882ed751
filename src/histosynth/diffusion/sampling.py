"""The denoising loop: noise in, latents out, for a batch of patches and a large canvas alike.

The loop knows the scheduler and the noise; what a model evaluation is, it is told::

    latents = denoise(scheduler, predict, (B, C, h, w), generator=gens, num_inference_steps=20)

``predict(x, t)`` returns the model's output (ε or v, as the scheduler was configured) for the
scaled latents ``x`` at timestep ``t``: :class:`~histosynth.diffusion.pipeline.HistoSynthPipeline`
passes its guided prediction for a batch of patches, large-image synthesis the blend of its
overlapping windows (MultiDiffusion). edm2 writes its sampler as one function of the network
in the same way; diffusers' pipelines inline the loop in each ``__call__``.

Seeds. With one ``torch.Generator`` per sample, the initial noise and every noise the sampler
adds (DDIM with η > 0, DPM-Solver++ SDE) come from the sample's own generator, in that order,
so a result depends on its seed only: not on its batch, nor on torch's global RNG.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler

__all__ = ["Predict", "denoise", "draw_noise", "needs_noise", "per_sample_generators", "set_timesteps"]

Predict = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Generators = torch.Generator | list[torch.Generator] | None


def per_sample_generators(generator: Any, batch: int) -> Generators:
    """``generator`` as a list of one per sample (checked against ``batch``), or as given."""
    if isinstance(generator, Sequence):
        if len(generator) != batch:
            raise ValueError(f"got {len(generator)} generators for {batch} samples; give one per sample")
        return list(generator)
    return generator


def draw_noise(
    generators: Generators, shape: tuple[int, ...], device: Any, dtype: torch.dtype
) -> torch.Tensor:
    """Standard normal noise of ``shape`` (batch first), each sample from its own generator."""
    if isinstance(generators, list):  # one draw per sample, on the generator's device
        return torch.stack([torch.randn(shape[1:], generator=g, device=g.device) for g in generators]).to(
            device, dtype
        )
    dev = generators.device if generators is not None else device
    return torch.randn(shape, generator=generators, device=dev).to(device, dtype)


def needs_noise(scheduler: Any, eta: float = 0.0) -> bool:
    """Whether a step of ``scheduler`` adds noise (it is then drawn here, per sample)."""
    if isinstance(scheduler, DDIMScheduler):
        return eta > 0
    if isinstance(scheduler, DPMSolverMultistepScheduler):
        return str(scheduler.config.algorithm_type).startswith("sde")
    return False


def set_timesteps(scheduler: Any, num_inference_steps: int, device: Any) -> None:
    """Set the scheduler's timesteps on ``device``."""
    with warnings.catch_warnings():
        # diffusers' DPM-Solver calls np.array() on a torch tensor, which numpy 2 flags
        # (torch's __array__ lacks `copy`); harmless, and not ours to change.
        warnings.filterwarnings("ignore", "__array__ implementation", DeprecationWarning)
        scheduler.set_timesteps(num_inference_steps, device=device)


def _step_kwargs(scheduler: Any, eta: float) -> dict[str, Any]:
    params = inspect.signature(scheduler.step).parameters
    kwargs: dict[str, Any] = {"eta": eta} if "eta" in params else {}
    if needs_noise(scheduler, eta) and "variance_noise" not in params:
        raise ValueError(
            f"{type(scheduler).__name__} cannot take per-sample noise; use a sampler of SAMPLERS"
        )
    return kwargs


def denoise(
    scheduler: Any,
    predict: Predict,
    shape: tuple[int, ...],
    *,
    generator: torch.Generator | Sequence[torch.Generator] | None = None,
    num_inference_steps: int = 50,
    eta: float = 0.0,
    device: Any = "cpu",
    dtype: torch.dtype = torch.float32,
    progress: Callable[[Iterable[Any]], Iterable[Any]] = iter,
    canvas: Any = None,
) -> Any:
    """Walk ``scheduler`` from noise to latents of ``shape``, asking ``predict`` at every step.

    >>> from diffusers import DDIMScheduler
    >>> sched = DDIMScheduler(set_alpha_to_one=True)
    >>> gens = [torch.Generator().manual_seed(s) for s in (0, 1)]
    >>> x0 = denoise(sched, lambda x, t: torch.zeros_like(x), (2, 3, 4, 4), generator=gens,
    ...              num_inference_steps=5)                   # an ε-model that always says "no noise"
    >>> tuple(x0.shape)
    (2, 3, 4, 4)

    Parameters
    ----------
    scheduler
        A diffusers scheduler configured with the training schedule.
    predict
        ``predict(x, t)``: the model output for scaled latents ``x`` of ``shape`` at timestep ``t``.
    shape
        ``(B, C, h, w)`` of the latents.
    generator
        One generator per sample (results depend on the sample's seed only), one for the
        batch, or ``None`` (torch's global RNG).
    num_inference_steps
        Sampler steps.
    eta
        DDIM's η (0 is deterministic given the initial noise).
    device, dtype
        Where and in which precision the latents live.
    progress
        Wraps the timesteps (a progress bar); ``iter`` shows none.
    canvas
        A :class:`~histosynth.sample.tiled_canvas.TiledCanvas` holding the state on disk (a
        large image): ``predict(canvas, t)`` then fills the canvas's prediction, each step is
        taken block by block, the noise comes from the canvas's per-block generators, and the
        canvas is returned, its latents in ``canvas.x``.

    Returns
    -------
    torch.Tensor
        The final latents, ``shape`` (the canvas when one is given).
    """
    if canvas is not None:
        canvas.start(scheduler)
        set_timesteps(scheduler, num_inference_steps, device)
        step_kwargs, noisy = _step_kwargs(scheduler, eta), needs_noise(scheduler, eta)
        for t in progress(scheduler.timesteps):
            canvas.step(scheduler, t, predict, step_kwargs, noisy)
        return canvas
    gens = per_sample_generators(generator, shape[0])
    latents = draw_noise(gens, shape, device, dtype) * scheduler.init_noise_sigma
    set_timesteps(scheduler, num_inference_steps, device)
    step_kwargs = _step_kwargs(scheduler, eta)
    noisy = needs_noise(scheduler, eta)
    for t in progress(scheduler.timesteps):
        out = predict(scheduler.scale_model_input(latents, t), t)
        if noisy:
            step_kwargs["variance_noise"] = draw_noise(gens, shape, device, dtype)
        latents = scheduler.step(out, t, latents, **step_kwargs).prev_sample
    return latents
