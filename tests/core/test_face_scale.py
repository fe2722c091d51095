"""tools/face_scale.py: the canvas that makes the face fill less of the frame (README known gap)."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest

_spec = importlib.util.spec_from_file_location(
    "face_scale", Path(__file__).resolve().parents[2] / "tools" / "face_scale.py")
face_scale = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(face_scale)


@pytest.mark.parametrize("shape", [(40, 60), (40, 60, 3)], ids=["grey", "rgb"])
def test_the_image_lands_whole_on_a_median_filled_canvas_with_its_points_shifted(shape):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, shape, dtype=np.uint8)
    pts = np.array([[5.0, 7.0], [50.5, 30.25]])
    canvas, moved = face_scale.on_canvas(img, pts, 1.8, np.random.default_rng(3))
    assert canvas.shape[:2] == (72, 108) and canvas.dtype == img.dtype and canvas.shape[2:] == shape[2:]
    x, y = (moved - pts)[0]
    assert x == int(x) and y == int(y) and np.allclose(moved - pts, [x, y])
    x, y = int(x), int(y)
    np.testing.assert_array_equal(canvas[y:y + 40, x:x + 60], img)
    outside = np.ones(canvas.shape[:2], bool)
    outside[y:y + 40, x:x + 60] = False
    fill = np.median(img.reshape(40 * 60, -1), axis=0).astype(img.dtype)
    assert (canvas[outside].reshape(-1, fill.size) == fill).all()
    with pytest.raises(ValueError, match="--scale 0.5"):
        face_scale.on_canvas(img, pts, 0.5, rng)
