"""Samples, image I/O, the project's dataset folder and splits."""
from .sample import Sample
from .imageio import read_image, write_image, ImageReadError

__all__ = ["Sample", "read_image", "write_image", "ImageReadError"]
