import importlib.util
from pathlib import Path

import numpy as np
import pytest

from dmsl_core.baselines import DlibBaseline, dlib_available, to_uint8
from dmsl_core.data.imageio import read_image

ok, why = dlib_available()
pytestmark = pytest.mark.skipif(not ok, reason=why)


def astronaut():
    """A real face photo that ships with scikit-image (Eileen Collins, public domain)."""
    spec = importlib.util.find_spec("skimage")
    if spec is None:
        pytest.skip("scikit-image (dev extra) not installed")
    return read_image(Path(list(spec.submodule_search_locations)[0]) / "data" / "astronaut.png")


def test_dlib_finds_the_68_points_on_a_real_face():
    img = astronaut()
    res = DlibBaseline().predict([img])[0]
    assert res.landmarks is not None and res.landmarks.shape == (68, 2)
    lm = res.landmarks
    # loose anatomical checks on this 512x512 portrait (face roughly x 170-270, y 70-190)
    assert 150 < lm[:, 0].min() and lm[:, 0].max() < 290 and 60 < lm[:, 1].min() and lm[:, 1].max() < 200
    assert lm[36, 0] < lm[39, 0] < lm[42, 0] < lm[45, 0]            # eye corners left to right
    assert lm[19, 1] < lm[37, 1] < lm[30, 1] < lm[51, 1] < lm[57, 1] < lm[8, 1]  # brow > eye > nose > lips > chin
    iod = np.linalg.norm(lm[36] - lm[45])
    assert 40 < iod < 90


def test_no_face_is_a_miss_not_an_error():
    blank = np.full((200, 200, 3), 128, np.uint8)
    assert DlibBaseline().predict([blank])[0].landmarks is None


def test_thermal_16_bit_is_converted_for_dlib():
    raw = np.random.default_rng(0).integers(29000, 31000, (60, 80)).astype(np.uint16)
    u8 = to_uint8(raw)
    assert u8.dtype == np.uint8 and u8.min() == 0 and u8.max() == 255
