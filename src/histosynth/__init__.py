"""histosynth: synthetic, pixel-annotated histopathology data.

Latent diffusion conditioned on a semantic map (which tissue goes where) and on raw visual
crops of real tissue (what each tissue looks like). Imports here are light; heavy libraries
(torch, diffusers, openslide) load inside the functions that need them.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("histosynth")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
