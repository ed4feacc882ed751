"""Simulated labs: a seeded stain and scanner transform of real H&E tissue.

Stain and scanner are the largest differences between H&E slides of different labs: the same
tissue stained with another hematoxylin batch, for another time, and scanned with other optics
looks different, and a model trained in one lab fails in another. A :class:`Lab` reproduces
these differences on real tissue, so one slide becomes K "labs" whose truth is known (the
tissue and its map are the same; only its appearance changes):

1. colour deconvolution into hematoxylin, eosin and a residual channel (Ruifrok & Johnston
   2001, :mod:`histosynth.domains.stain`);
2. per-stain concentration scaling and shift, ``c' = α c + β`` (the stain-intensity model of
   HED augmentation, Tellez et al. 2018, "H&E stain augmentation improves generalization of
   convolutional networks for histopathological mitosis detection", SPIE Medical Imaging);
3. re-composition with turned stain vectors: another dye's hue (hematoxylin bluer or more
   purple, eosin pinker or more orange);
4. scanner: Gaussian blur of ``blur_um`` micrometres (focus and optics) and JPEG compression
   at ``jpeg_quality`` (whole-slide formats store JPEG tiles).

Ranges (:class:`LabRanges`) and where they come from:

* ``scale`` 0.8–1.2: the multiplicative range of "HED-strong" augmentation in Tellez et al.
  2019 ("Quantifying the effects of data augmentation and stain color normalization in
  convolutional neural networks for computational pathology", Medical Image Analysis 58),
  chosen there to cover the stain variation of 9 labs;
* ``bias`` ±0.05 OD: the additive range of their "HED-light" setting. Their bias acts on
  ``skimage``'s concentrations, whose units differ from ours (natural OD, see
  :mod:`~histosynth.domains.stain`); ±0.05 natural OD is a faint tint of the glass, and the
  smaller of the two readings;
* ``h_angle`` ≤ 8°, ``e_angle`` ≤ 15°: published reference stain vectors differ by this much
  and more: Ruifrok & Johnston's hematoxylin and the reference of Macenko et al. 2009 ("A method
  for normalizing histology slides for quantitative analysis", ISBI) are 8.4° apart, their
  eosins 29.4° (:func:`reference_angles` computes both), so a turn within these bounds stays
  inside the spread of stain vectors estimated from real slides;
* ``blur_um`` 0–1 µm and ``jpeg_quality`` 70–95: our choice, not from a publication: mild
  defocus at 1 µm/px and the quality range of common slide formats; both can be switched off.

Two named strengths (:data:`LAB_STRENGTHS`): ``mild``, the ranges above (the default), and
``strong``, each range at the far end of its source: ``bias`` ±0.2 natural OD (HED-strong's
additive range, Tellez et al. 2019, read in natural OD, again the smaller reading) and the stain
vectors turned up to the whole gap between the two published references (hematoxylin ≤ 8.4°,
eosin ≤ 29.4°). ``scale``, blur and JPEG are those of ``mild``. Real held-out tissue scored
against its own lab's crops (the evaluation's ``real-heldout`` row) is what separates them: on
the bundled slide ``mild`` labs differ little more than patches of one lab do, ``strong`` ones
clearly (``docs/domains.md``).

:func:`draw_labs` draws K labs *stratified*: each parameter's range is cut into K equal strata
and every lab takes a different one (a Latin hypercube), so no two labs are near-copies however
small K is. Every draw comes from ``seed``, so the same seed gives the same labs.
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass, fields

import numpy as np

from histosynth.domains.stain import RUIFROK_HED, concentrations, from_concentrations, rotate_vector

__all__ = [
    "IDENTITY",
    "LAB_STRENGTHS",
    "HedJitter",
    "Lab",
    "LabRanges",
    "apply_lab",
    "draw_labs",
    "jitter_lab",
    "reference_angles",
]

# The stain matrix of Macenko et al.'s reference (as distributed with their method's common
# implementations): columns H and E of the published reference ``HERef``.
MACENKO_REFERENCE = np.array([[0.5626, 0.7201, 0.4062], [0.2159, 0.8012, 0.5581]])


@dataclass(frozen=True)
class Lab:
    """One simulated lab: stain intensity, dye hue and scanner.

    Attributes
    ----------
    name
        The domain name written into datasets (``domain`` column).
    h_scale, e_scale
        Concentration factor α of hematoxylin and eosin.
    h_bias, e_bias
        Concentration shift β, natural OD.
    h_angle, e_angle
        How far each stain vector turns, degrees.
    h_direction, e_direction
        Towards where, degrees around the vector (0°: out of the H–E plane; 90°: towards the
        other stain), see :func:`~histosynth.domains.stain.rotate_vector`.
    blur_um
        Gaussian blur σ in µm (0: none).
    jpeg_quality
        JPEG quality 1–100 (0: no compression).
    """

    name: str = "identity"
    h_scale: float = 1.0
    e_scale: float = 1.0
    h_bias: float = 0.0
    e_bias: float = 0.0
    h_angle: float = 0.0
    e_angle: float = 0.0
    h_direction: float = 0.0
    e_direction: float = 0.0
    blur_um: float = 0.0
    jpeg_quality: int = 0

    def matrix(self) -> np.ndarray:
        """The stain matrix images of this lab are re-composed with (residual row unchanged)."""
        h, e, d = RUIFROK_HED
        h2 = rotate_vector(h, e, self.h_angle, self.h_direction) if self.h_angle else h
        e2 = rotate_vector(e, h, self.e_angle, self.e_direction) if self.e_angle else e
        return np.stack([h2, e2, d])

    def to_json(self) -> dict:
        """The parameters as a JSON-ready dict (``Lab(**d)`` rebuilds it)."""
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()}


IDENTITY = Lab()


@dataclass(frozen=True)
class LabRanges:
    """Where :func:`draw_labs` draws each parameter (see the module notes for the sources)."""

    scale: tuple[float, float] = (0.8, 1.2)
    bias: tuple[float, float] = (-0.05, 0.05)
    h_angle: tuple[float, float] = (0.0, 8.0)
    e_angle: tuple[float, float] = (0.0, 15.0)
    blur_um: tuple[float, float] = (0.0, 1.0)
    jpeg_quality: tuple[int, int] = (70, 95)
    jpeg: bool = True

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, tuple) and (len(value) != 2 or value[0] > value[1]):
                raise ValueError(f"lab range {f.name} must be (low, high) with low ≤ high, got {value}")
        if self.scale[0] <= 0 or not 1 <= self.jpeg_quality[0] <= self.jpeg_quality[1] <= 100:
            raise ValueError("lab scales must be positive and JPEG qualities within 1..100")


LAB_STRENGTHS: dict[str, LabRanges] = {
    "mild": LabRanges(),
    "strong": LabRanges(bias=(-0.2, 0.2), h_angle=(0.0, 8.4), e_angle=(0.0, 29.4)),
}


def apply_lab(image: np.ndarray, lab: Lab, mpp: float = 1.0) -> np.ndarray:
    """``image`` (RGB uint8, H×W×3) as ``lab`` would have stained and scanned it.

    ``mpp``: the image's µm per pixel (the blur is in µm). The identity lab returns the image
    unchanged, pixel for pixel.

    >>> img = np.full((4, 4, 3), (190, 110, 170), np.uint8)
    >>> bool((apply_lab(img, IDENTITY) == img).all())
    True
    >>> apply_lab(img, Lab(h_scale=1.2))[0, 0].tolist()  # more hematoxylin: darker, bluer
    [184, 106, 168]
    """
    conc = concentrations(image)
    for i, (scale, bias) in enumerate(((lab.h_scale, lab.h_bias), (lab.e_scale, lab.e_bias))):
        c = conc[..., i]
        # A negative shift stops at no stain: below zero a stain would add light, and the
        # channels clip unequally at 255 (pale tissue and glass turned green).
        conc[..., i] = np.maximum(scale * c + bias, np.minimum(c, 0.0))
    rgb = from_concentrations(conc, lab.matrix())
    if lab.blur_um > 0:
        from scipy.ndimage import gaussian_filter

        rgb = gaussian_filter(rgb, sigma=(lab.blur_um / mpp, lab.blur_um / mpp, 0), mode="reflect")
    out = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
    if lab.jpeg_quality:
        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(out).save(buf, format="JPEG", quality=int(lab.jpeg_quality))
        out = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    return out


def _strata(k: int, low: float, high: float, rng: np.random.Generator) -> np.ndarray:
    """``k`` values of [low, high], one in each of k equal strata, in random order."""
    return low + (high - low) * (rng.permutation(k) + rng.random(k)) / k


def draw_labs(k: int, seed: int = 0, ranges: LabRanges = LabRanges(), prefix: str = "lab") -> list[Lab]:
    """``k`` labs drawn by stratified sampling within ``ranges`` (named lab-A, lab-B, ...).

    >>> [lab.name for lab in draw_labs(3)]
    ['lab-A', 'lab-B', 'lab-C']
    >>> draw_labs(3, seed=1) == draw_labs(3, seed=1) != draw_labs(3, seed=2)
    True
    """
    if not 1 <= k <= 26:
        raise ValueError(f"the number of labs must lie in 1..26, got {k}")
    rng = np.random.default_rng(seed)
    r = ranges
    draws = {
        "h_scale": _strata(k, *r.scale, rng), "e_scale": _strata(k, *r.scale, rng),
        "h_bias": _strata(k, *r.bias, rng), "e_bias": _strata(k, *r.bias, rng),
        "h_angle": _strata(k, *r.h_angle, rng), "e_angle": _strata(k, *r.e_angle, rng),
        "h_direction": rng.uniform(0, 360, k), "e_direction": rng.uniform(0, 360, k),
        "blur_um": _strata(k, *r.blur_um, rng),
        "jpeg_quality": np.rint(_strata(k, *r.jpeg_quality, rng)) if r.jpeg else np.zeros(k),
    }  # fmt: skip
    return [
        Lab(
            f"{prefix}-{chr(65 + i)}",
            **{n: (int(v[i]) if n == "jpeg_quality" else float(v[i])) for n, v in draws.items()},
        )  # fmt: skip
        for i in range(k)
    ]


def jitter_lab(rng: np.random.Generator, scale: float = 0.2, bias: float = 0.05) -> Lab:
    """A random stain intensity for augmentation (HED jitter, Tellez et al. 2018/2019).

    α ~ U(1 − scale, 1 + scale) and β ~ U(−bias, bias) per stain; vectors, blur and JPEG are
    left alone, as in the published augmentation.
    """
    a = rng.uniform(1 - scale, 1 + scale, 2)
    b = rng.uniform(-bias, bias, 2)
    return Lab("jitter", h_scale=float(a[0]), e_scale=float(a[1]), h_bias=float(b[0]), e_bias=float(b[1]))


@dataclass(frozen=True)
class HedJitter:
    """HED-jitter augmentation as a picklable callable ``(image, rng) -> image`` (see :func:`jitter_lab`)."""

    scale: float = 0.2
    bias: float = 0.05

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return apply_lab(image, jitter_lab(rng, self.scale, self.bias))


def reference_angles() -> tuple[float, float]:
    """Angles (degrees) between Ruifrok & Johnston's H and E vectors and Macenko's reference ones."""
    out = []
    for ours, ref in zip(RUIFROK_HED[:2], MACENKO_REFERENCE, strict=True):
        cos = ours @ ref / (np.linalg.norm(ours) * np.linalg.norm(ref))
        out.append(float(np.degrees(np.arccos(np.clip(cos, -1, 1)))))
    return out[0], out[1]
