"""Colour deconvolution of H&E images (Ruifrok & Johnston 2001), invertible by construction.

An RGB pixel is turned into optical density (Beer–Lambert), and optical density into the
concentrations of three stains whose unit OD vectors are the rows of a stain matrix ``M``::

    OD = -ln((I + 1) / 256)        (per channel, I in 0..255)
    OD = C @ M                     (C: concentrations of hematoxylin, eosin, residual)
    C  = OD @ inv(M)

The ``+1`` / 256 convention maps 0..255 onto finite densities (no clipping of black pixels), so
RGB → concentrations → RGB is exact in floating point and a round trip through uint8 changes no
pixel. Natural logarithms are used throughout; concentrations are in units of natural OD.

The default matrix is Ruifrok & Johnston's published H, E and DAB vectors ("Quantification of
histochemical staining by color deconvolution", Anal. Quant. Cytol. Histol. 23(4), 2001), the
one ``skimage.color.rgb2hed`` uses; the DAB row serves as the residual channel of H&E images.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "RUIFROK_HED",
    "concentrations",
    "from_concentrations",
    "od_to_rgb",
    "rgb_to_od",
    "rotate_vector",
    "stain_matrix",
]

# Rows: hematoxylin, eosin, DAB (the residual channel for H&E), as published.
RUIFROK_HED = np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]])


def stain_matrix(rows: np.ndarray) -> np.ndarray:
    """The (3, 3) stain matrix of three stain OD vectors, each scaled to unit length.

    Raises
    ------
    ValueError
        When the vectors are not linearly independent (the deconvolution would not invert).
    """
    m = np.asarray(rows, np.float64)
    if m.shape != (3, 3):
        raise ValueError(f"a stain matrix has three rows of three values, got shape {m.shape}")
    m = m / np.linalg.norm(m, axis=1, keepdims=True)
    if abs(np.linalg.det(m)) < 1e-6:
        raise ValueError("the three stain vectors are linearly dependent: no deconvolution exists")
    return m


def rgb_to_od(image: np.ndarray) -> np.ndarray:
    """Optical density (float64, same shape) of RGB values in 0..255."""
    return -np.log((np.asarray(image, np.float64) + 1.0) / 256.0)


def od_to_rgb(od: np.ndarray) -> np.ndarray:
    """RGB values (float64, unclipped) of optical densities: the inverse of :func:`rgb_to_od`."""
    return 256.0 * np.exp(-np.asarray(od, np.float64)) - 1.0


def concentrations(image: np.ndarray, matrix: np.ndarray = RUIFROK_HED) -> np.ndarray:
    """Stain concentrations ``(..., 3)`` (H, E, residual) of an RGB image ``(..., 3)``.

    >>> img = np.array([[[200, 120, 180]]], np.uint8)
    >>> np.allclose(from_concentrations(concentrations(img)), img)
    True
    """
    m = stain_matrix(matrix)
    return rgb_to_od(image) @ np.linalg.inv(m)


def from_concentrations(conc: np.ndarray, matrix: np.ndarray = RUIFROK_HED) -> np.ndarray:
    """RGB (float64, unclipped) of stain concentrations under ``matrix``."""
    return od_to_rgb(np.asarray(conc, np.float64) @ stain_matrix(matrix))


def rotate_vector(
    vector: np.ndarray, other: np.ndarray, angle_deg: float, direction_deg: float
) -> np.ndarray:
    """``vector`` turned by ``angle_deg`` towards a direction perpendicular to it.

    The direction is measured around ``vector``: 0° points out of the plane spanned by
    ``vector`` and ``other`` (e.g. hematoxylin turning bluer or redder without approaching
    eosin), 90° lies in that plane, towards ``other``. Rodrigues' rotation keeps the length.
    """
    v = np.asarray(vector, np.float64) / np.linalg.norm(vector)
    out_of_plane = np.cross(v, np.asarray(other, np.float64))
    out_of_plane /= np.linalg.norm(out_of_plane)
    in_plane = np.cross(out_of_plane, v)  # unit, perpendicular to v, on the side of `other`
    phi, theta = np.deg2rad(direction_deg), np.deg2rad(angle_deg)
    towards = np.cos(phi) * out_of_plane + np.sin(phi) * in_plane
    # Rotating v by theta in the plane (v, towards): both unit and orthogonal.
    return np.cos(theta) * v + np.sin(theta) * towards
