"""Classifier two-sample test (C2ST): can a small CNN tell two image sets apart?

Lopez-Paz & Oquab (2017, "Revisiting classifier two-sample tests"): train a classifier to
separate set A from set B and measure its accuracy on images it did not train on. 0.5 means
the sets are indistinguishable to it, 1.0 trivially separable. Unlike a Fréchet distance it
needs no detector chosen in advance: the CNN learns whatever differs (noise, colour, texture),
which is why it catches speckle that a texture descriptor's FD forgives.

Protocol (fixed, so numbers compare across runs):

- classes balanced by a seeded subsample of the larger set to the size of the smaller;
- ``folds``-fold stratified cross-validation; every image is scored once, by the model that
  did not see it; the accuracy is over all scored images, with the spread over folds;
- paired sets (``paired=True``: image ``i`` of B was made from the map of image ``i`` of A, or
  is A's image with noise added) keep each pair in one fold: otherwise the CNN learns a
  layout from one member of a pair and mislabels the other, and the accuracy falls below
  chance for the wrong reason;
- the CNN sees the image and its high-pass residual (image minus its 3×3 mean, ×4), as
  steganalysis CNNs do with fixed high-pass filters (Fridrich & Kodovský 2012), because pixel
  noise is a small signal under tissue texture; then four stride-2 convolutions (16, 32, 64,
  64 channels; GroupNorm, SiLU), global mean
  pool, a linear logit; AdamW, ``steps`` steps of batch ``batch_size`` with the 8 dihedral
  flips as augmentation; images resized to ``size`` px (area), scaled to [-1, 1];
- seeded torch and numpy generators, one thread's worth of work: a C2ST of two sets of ~50
  images takes a few seconds on a CPU.

Read a C2ST against its floors: two real sets from different places of one slide are
themselves partly separable (the CNN learns the regions), so ``evaluate`` reports the held-out
real patches against the training patches beside every synthetic set.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["C2STResult", "c2st"]


@dataclass(frozen=True)
class C2STResult:
    """Cross-validated accuracy of telling set B from set A."""

    accuracy: float  # over every scored image
    fold_std: float  # standard deviation of the per-fold accuracies
    n_per_class: int

    def summary(self) -> dict[str, float]:
        return {"c2st": self.accuracy, "c2st_fold_std": self.fold_std, "c2st_n": self.n_per_class}


def _prepare(images: np.ndarray, size: int):
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 127.5 - 1
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(x, size=(size, size), mode="area")
    residual = x - F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    return torch.cat([x, 4 * residual], 1)  # (N, 6, S, S)


def _cnn():
    from torch import nn

    layers, c_in = [], 6
    for c in (16, 32, 64, 64):
        layers += [nn.Conv2d(c_in, c, 3, stride=2, padding=1), nn.GroupNorm(4, c), nn.SiLU()]
        c_in = c
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_in, 1))


def _dihedral(x, k: int):
    import torch

    x = torch.rot90(x, k % 4, dims=(-2, -1))
    return x.flip(-1) if k >= 4 else x


def c2st(
    a: np.ndarray,
    b: np.ndarray,
    folds: int = 5,
    steps: int = 300,
    batch_size: int = 32,
    lr: float = 2e-3,
    size: int = 64,
    seed: int = 0,
    paired: bool = False,
) -> C2STResult:
    """Cross-validated accuracy of a small CNN telling images ``b`` from images ``a``.

    Parameters
    ----------
    a, b
        uint8 images ``(N, H, W, 3)`` (sizes may differ between sets; both are resized).
    folds
        Cross-validation folds (at least 2, at most the smaller set's size).
    steps, batch_size, lr
        Training of each fold's CNN.
    size
        Side the images are resized to.
    seed
        Seeds the subsample, the folds, the initialisation and the batches.
    paired
        ``a[i]`` and ``b[i]`` belong together (same map, or the same image with noise): both
        sets must have the same length, and each pair stays in one fold.
    """
    import torch

    from histosynth.seeding import item_seed

    n = min(len(a), len(b))
    if n < folds or folds < 2:
        raise ValueError(f"C2ST needs at least {max(folds, 2)} images per set, got {len(a)} and {len(b)}")
    if paired and len(a) != len(b):
        raise ValueError(f"paired C2ST needs sets of one length, got {len(a)} and {len(b)}")
    rng = np.random.default_rng(item_seed(seed, "c2st"))
    ia = np.arange(n) if paired else np.sort(rng.permutation(len(a))[:n])
    ib = np.arange(n) if paired else np.sort(rng.permutation(len(b))[:n])
    x = torch.cat([_prepare(a[ia], size), _prepare(b[ib], size)])  # (2n, 6, S, S)
    y = torch.cat([torch.zeros(n), torch.ones(n)])
    # Stratified folds: each class split into `folds` parts by a seeded permutation (one
    # permutation for both classes when pairs must stay together).
    fold_of = np.empty(2 * n, np.int64)
    order = rng.permutation(n)
    for cls in (0, 1):
        fold_of[cls * n + order] = np.arange(n) % folds
        if not paired:
            order = rng.permutation(n)
    correct = np.zeros(2 * n, bool)
    accs = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tensors this small: more threads cost more than they give (×6 on 2 busy cores)
    try:
        for k in range(folds):
            test = np.flatnonzero(fold_of == k)
            train = np.flatnonzero(fold_of != k)
            model = _fit(x[train], y[train], steps, batch_size, lr, item_seed(seed, "c2st-fold", k))
            with torch.no_grad():
                logits = model(x[test]).squeeze(1)  # (n_test,)
            hit = ((logits > 0).float() == y[test]).numpy()
            correct[test] = hit
            accs.append(float(hit.mean()))
    finally:
        torch.set_num_threads(threads)
    return C2STResult(float(correct.mean()), float(np.std(accs)), n)


def _fit(x, y, steps: int, batch_size: int, lr: float, seed: int):
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    model = _cnn()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randint(0, len(x), (min(batch_size, len(x)),), generator=g)
        k = int(torch.randint(0, 8, (1,), generator=g))
        logits = model(_dihedral(x[idx], k)).squeeze(1)
        loss = F.binary_cross_entropy_with_logits(logits, y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return model.eval()
