"""The record every frame source yields (see dmsl_core.sources)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np


@dataclass
class FramePair:
    """One synchronised visible + thermal frame pair; either side may be missing.

    ``vis``: HxWx3 uint8 RGB or None. ``th``: HxW uint8 / uint16 / float32 or None.
    ``th_celsius``: HxW float32 degrees C when the source is radiometric, else None.
    ``homography_th_to_vis``: 3x3 mapping thermal pixels to visible pixels, or None
    (None with both present means the pair is pixel-registered only if ``registered``).
    """

    vis: Optional[np.ndarray]
    th: Optional[np.ndarray]
    t: float = 0.0
    index: int = 0
    source: str = ""
    th_celsius: Optional[np.ndarray] = None
    homography_th_to_vis: Optional[np.ndarray] = None
    registered: bool = False
    meta: dict = field(default_factory=dict)
