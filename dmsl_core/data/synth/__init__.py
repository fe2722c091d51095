"""Synthetic paired visible/thermal face generator (stand-in for the Eurecom VIS-TH database).

A 3D mean face with identity shape modes, expressions and head pose is projected by a pinhole
camera; the same geometry is painted in the visible (shading, light direction, noise, JPEG) and
as a temperature field in the thermal band (sensor blur, lower native resolution, noise,
fixed-pattern non-uniformity, vignetting), so the 68 iBUG landmarks are exact and both images
are pixel-registered. Default frame size 320x256 (W x H); thermal sensor grid 160x128.

Public API::

    ident = make_identity(seed, index)
    frame = FaceRenderer(size=(320, 256)).render(ident, variation_state("smile", rng), rng)
    generate_dataset("out/", subjects=50, seed=0)          # 50 x 21 pairs, manifest.csv
"""
from .face3d import EXPRESSIONS, ShapeParams
from .identity import Identity, make_identity
from .render import DEFAULT_SIZE, FaceRenderer, SynthFrame, misregistration_homography
from .state import OCCLUSIONS, VARIATIONS, FaceState, interpolate, variation_state
from .dataset import generate_dataset

__all__ = [
    "FaceRenderer", "Identity", "FaceState", "SynthFrame", "VARIATIONS", "OCCLUSIONS", "EXPRESSIONS",
    "ShapeParams", "DEFAULT_SIZE", "make_identity", "variation_state", "generate_dataset", "interpolate",
    "misregistration_homography",
]
