"""Stain normalisation baselines: map a new lab's images onto the colours of a reference lab.

Both normalisers are fitted on reference images (e.g. lab A's training patches). The statistics
of the images to normalise are taken either per image or, after :meth:`adapt` on a set of
images of one lab (its unlabelled patches), pooled over that set: on small patches the
per-image estimate confuses tissue composition with stain (a patch of epidermis has more
hematoxylin than one of dermis in every lab), so a lab-level estimate is the fair baseline.

* :class:`ReinhardNormalizer` (Reinhard et al. 2001, "Color transfer between images", IEEE
  Computer Graphics and Applications 21(5)): per-channel mean and standard deviation matched in
  the lαβ space of Ruderman et al. (log LMS cone responses, decorrelated);
* :class:`MacenkoNormalizer` (Macenko et al. 2009, "A method for normalizing histology slides
  for quantitative analysis", ISBI): the image's own two stain vectors are estimated from the
  plane of its two largest optical-density eigenvectors (robust extreme angles: the 1st and 99th
  percentiles), its concentrations are rescaled so their 99th percentiles match the reference's,
  and it is re-composed with the reference's stain vectors. Pixels with optical density below
  0.15 in any channel (background) are left out of the estimate, as in the paper; a patch with
  too little tissue for an estimate is returned unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from histosynth.domains.stain import od_to_rgb, rgb_to_od

__all__ = ["MacenkoNormalizer", "ReinhardNormalizer", "make_normalizer"]

# Reinhard et al.'s RGB → LMS matrix and the lαβ decorrelation (Ruderman et al. 1998).
_RGB2LMS = np.array([[0.3811, 0.5783, 0.0402], [0.1967, 0.7244, 0.0782], [0.0241, 0.1288, 0.8444]])
_LMS2LAB = np.diag([1 / np.sqrt(3), 1 / np.sqrt(6), 1 / np.sqrt(2)]) @ np.array(
    [[1, 1, 1], [1, 1, -2], [1, -1, 0]]
)


def _to_lab(image: np.ndarray) -> np.ndarray:
    lms = np.asarray(image, np.float64).reshape(-1, 3) @ _RGB2LMS.T
    return np.log10(np.maximum(lms, 1.0)) @ _LMS2LAB.T  # black pixels: log of 1, not of 0


def _from_lab(lab: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    lms = 10.0 ** (lab @ np.linalg.inv(_LMS2LAB).T)
    rgb = lms @ np.linalg.inv(_RGB2LMS).T
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8).reshape(shape)


class ReinhardNormalizer:
    """Match each image's lαβ mean and spread to those of reference images."""

    source: tuple[np.ndarray, np.ndarray] | None = None  # pooled (mean, std) after adapt()

    @staticmethod
    def _stats(images: Iterable[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        pooled = np.concatenate([_to_lab(im) for im in images])
        return pooled.mean(0), pooled.std(0)

    def fit(self, images: Iterable[np.ndarray]) -> ReinhardNormalizer:
        """Reference statistics: per-channel lαβ mean and standard deviation of the pooled pixels."""
        images = list(images)
        if not images:
            raise ValueError("Reinhard normalisation needs at least one reference image")
        self.mean, self.std = self._stats(images)
        return self

    def adapt(self, images: Iterable[np.ndarray]) -> ReinhardNormalizer:
        """Take the statistics of the images to normalise from these (one lab's), pooled."""
        self.source = self._stats(list(images))
        return self

    def __call__(self, image: np.ndarray) -> np.ndarray:
        lab = _to_lab(image)
        mean, std = self.source or (lab.mean(0), lab.std(0))
        return _from_lab((lab - mean) / np.maximum(std, 1e-6) * self.std + self.mean, image.shape)


def _macenko_stains(image: np.ndarray, beta: float = 0.15, alpha: float = 1.0, min_pixels: int = 64):
    """(stain matrix rows H, E as unit OD vectors, concentrations of all pixels) or ``None``."""
    od = rgb_to_od(image).reshape(-1, 3)
    tissue = od[(od > beta).all(1)]
    if len(tissue) < min_pixels:
        return None
    _, vecs = np.linalg.eigh(np.cov(tissue.T))
    plane = vecs[:, 1:3]  # the two largest eigenvectors
    proj = tissue @ plane
    phi = np.arctan2(proj[:, 1], proj[:, 0])
    lo, hi = np.percentile(phi, [alpha, 100 - alpha])
    v1 = plane @ np.array([np.cos(lo), np.sin(lo)])
    v2 = plane @ np.array([np.cos(hi), np.sin(hi)])
    v1, v2 = (v1, v2) if v1[0] > v2[0] else (v2, v1)  # hematoxylin absorbs more red light
    stains = np.stack([v1, v2]) * np.sign(np.stack([v1, v2]).sum(1, keepdims=True))
    if np.linalg.matrix_rank(stains) < 2:
        return None
    conc = np.linalg.lstsq(stains.T, od.T, rcond=None)[0].T  # (pixels, 2)
    return stains, conc


def _pooled_stains(images: Iterable[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Stain vectors and 99th-percentile concentrations of the pixels of several images."""
    pooled = np.concatenate([np.asarray(im).reshape(-1, 3) for im in images])[:, None, :]
    got = _macenko_stains(pooled)
    if got is None:
        raise ValueError("Macenko normalisation needs images with tissue")
    return got[0], np.percentile(got[1], 99, axis=0)


class MacenkoNormalizer:
    """Re-compose each image with the reference's stain vectors and concentration scale."""

    source: tuple[np.ndarray, np.ndarray] | None = None  # pooled (stains, max concentrations) after adapt()

    def fit(self, images: Iterable[np.ndarray]) -> MacenkoNormalizer:
        """Reference stain vectors and 99th-percentile concentrations, from the pooled images."""
        self.stains, self.max_conc = _pooled_stains(images)
        return self

    def adapt(self, images: Iterable[np.ndarray]) -> MacenkoNormalizer:
        """Estimate the stains of the images to normalise from these (one lab's), pooled."""
        self.source = _pooled_stains(images)
        return self

    def __call__(self, image: np.ndarray) -> np.ndarray:
        if self.source is not None:
            stains, max_conc = self.source
            od = rgb_to_od(image).reshape(-1, 3)
            conc = np.linalg.lstsq(stains.T, od.T, rcond=None)[0].T
        else:
            got = _macenko_stains(image)
            if got is None:
                return np.asarray(image, np.uint8).copy()  # background-only: nothing to normalise
            conc = got[1]
            max_conc = np.percentile(conc, 99, axis=0)
        conc = conc * (self.max_conc / np.maximum(max_conc, 1e-6))
        rgb = od_to_rgb(conc @ self.stains).reshape(image.shape)
        return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def make_normalizer(name: str, reference: Iterable[np.ndarray], source: Iterable[np.ndarray] | None = None):
    """A normaliser by name (``reinhard`` or ``macenko``) fitted on ``reference`` images, and
    adapted to ``source`` images (one lab's) when given, else estimating per image."""
    kinds = {"reinhard": ReinhardNormalizer, "macenko": MacenkoNormalizer}
    if name not in kinds:
        raise ValueError(f"stain normalisation must be one of {sorted(kinds)}, got {name!r}")
    norm = kinds[name]().fit(reference)
    return norm if source is None else norm.adapt(source)
