"""A training / evaluation sample: one image of one spectrum with its 68 landmarks."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from .imageio import read_image

SPECTRA = ("vis", "th")


@dataclass
class Sample:
    """One annotated face image.

    ``landmarks`` is (68, 2) float in pixel coordinates of the image (0-based, pixel centres at
    integers); missing points are NaN. The image is either held in ``image`` or read lazily from
    ``path`` by :meth:`load`.
    """

    spectrum: str
    landmarks: np.ndarray
    subject: str = ""
    variation: str = ""
    path: Optional[str] = None
    image: Optional[np.ndarray] = field(default=None, repr=False)
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.spectrum not in SPECTRA:
            raise ValueError(f"spectrum must be one of {SPECTRA}, got {self.spectrum!r}")
        lm = np.asarray(self.landmarks, dtype=np.float64)
        if lm.shape != (68, 2):
            raise ValueError(f"landmarks must have shape (68, 2), got {lm.shape} ({self.path or 'in memory'})")
        self.landmarks = lm

    def load(self) -> np.ndarray:
        if self.image is not None:
            return self.image
        if self.path is None:
            raise ValueError("sample has neither an image nor a path")
        return read_image(self.path)

    @property
    def name(self) -> str:
        return self.path or f"{self.subject}/{self.variation}/{self.spectrum}"
