"""The thermal palettes and the level tracker (app/palettes.py)."""
from __future__ import annotations

import numpy as np
import pytest

from app.palettes import LUTS, PALETTES, LevelTracker, apply_lut


def test_palettes_and_levels():
    assert set(PALETTES) == set(LUTS) == {"white-hot", "black-hot", "iron", "rainbow"}
    for lut in LUTS.values():
        assert lut.shape == (256, 3) and lut.dtype == np.uint8
    assert tuple(LUTS["white-hot"][255]) == (255, 255, 255) and tuple(LUTS["black-hot"][255]) == (0, 0, 0)
    assert apply_lut(np.array([[0, 255]], np.uint8), "iron").shape == (1, 2, 3)
    with pytest.raises(ValueError):
        apply_lut(np.zeros((2, 2), np.uint8), "nope")
    lt = LevelTracker()
    lo, hi = lt.update(np.linspace(20, 36, 400, dtype=np.float32).reshape(20, 20))
    assert 19 < lo < 22 and 34 < hi < 37
    lo, hi = lt.update(np.full((20, 20), 30.0, np.float32))   # flat image: a minimum span, smoothed
    assert hi - lo >= 1.0
