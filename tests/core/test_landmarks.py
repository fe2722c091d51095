import numpy as np
import pytest

from dmsl_core import landmarks as L


def symmetric_face(cx=50.0):
    """A 68-point layout that is exactly left/right symmetric about x = cx."""
    rng = np.random.default_rng(1)
    pts = np.zeros((68, 2))
    perm = L.MIRROR_PERM
    for i in range(68):
        j = perm[i]
        if i > j:
            continue
        if i == j:
            pts[i] = [cx, rng.uniform(10, 90)]
        else:
            dx, y = rng.uniform(2, 40), rng.uniform(10, 90)
            pts[i] = [cx - dx, y]
            pts[j] = [cx + dx, y]
    return pts


def test_mirror_permutation_is_an_involution_and_pairs_the_right_points():
    perm = L.MIRROR_PERM
    assert sorted(perm.tolist()) == list(range(68))
    assert (perm[perm] == np.arange(68)).all()
    assert perm[0] == 16 and perm[8] == 8 and perm[17] == 26 and perm[36] == 45 and perm[39] == 42
    assert perm[48] == 54 and perm[51] == 51 and perm[60] == 64 and perm[66] == 66 and perm[30] == 30
    # every group maps onto its mirror group
    assert set(perm[list(L.GROUPS["right_eye"])]) == set(L.GROUPS["left_eye"])
    assert set(perm[list(L.GROUPS["outer_lips"])]) == set(L.GROUPS["outer_lips"])


def test_mirroring_twice_is_identity_and_symmetric_face_is_fixed():
    pts = np.random.default_rng(0).uniform(0, 99, (68, 2))
    np.testing.assert_allclose(L.mirror_points(L.mirror_points(pts, 101), 101), pts)
    sym = symmetric_face(cx=50.0)  # symmetric about x = 50 -> width 101 mirrors x to 100 - x
    np.testing.assert_allclose(L.mirror_points(sym, 101), sym)


def test_mirrored_image_and_permuted_points_land_on_the_mirrored_features():
    rng = np.random.default_rng(3)
    h, w = 60, 80
    pts = np.column_stack([rng.integers(0, w, 68), rng.integers(0, h, 68)]).astype(float)
    for idx in (36, 0, 48, 30):
        img = np.zeros((h, w), np.uint8)
        x, y = pts[idx].astype(int)
        img[y, x] = 255
        flipped = img[:, ::-1]
        m = L.mirror_points(pts, w)
        mx, my = m[L.MIRROR_PERM[idx]].astype(int)
        assert flipped[my, mx] == 255


def test_boundary_from_points_and_missing_points():
    pts = np.array([[10.0, 20.0]] * 68)
    pts[5] = [30, 25]
    pts[7] = [12, 60]
    np.testing.assert_allclose(L.boundary_from_points(pts), [10, 20, 20, 40])
    pts[10] = np.nan
    np.testing.assert_allclose(L.boundary_from_points(pts), [10, 20, 20, 40])
    with pytest.raises(ValueError):
        L.boundary_from_points(np.full((68, 2), np.nan))
