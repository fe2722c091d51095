import numpy as np
import pytest
import torch
from torch import nn

from dmsl_core import preprocess as pp
from dmsl_core.models import get_config
from dmsl_core.pipeline import Predictor


def test_views_map_points_both_ways_and_sample_the_right_pixels():
    img = np.zeros((240, 320), np.float32)
    img[100, 200] = 1000.0
    v = pp.box_view(np.array([180.0, 80.0, 40.0, 40.0]), 64, 1.5)
    p = v.to_view(np.array([[200.0, 100.0]]))[0]
    np.testing.assert_allclose(v.to_source(p[None])[0], [200, 100])
    view = pp.warp_view(img, v)
    r, c = np.unravel_index(np.nanargmax(view), view.shape)
    assert abs(c - p[0]) <= 1 and abs(r - p[1]) <= 1
    # mirrored view: x flips around the view centre
    vf = pp.box_view(np.array([180.0, 80.0, 40.0, 40.0]), 64, 1.5, flip=True)
    pf = vf.to_view(np.array([[200.0, 100.0]]))[0]
    assert pf[0] == pytest.approx(63 - p[0]) and pf[1] == pytest.approx(p[1])


def test_full_view_pads_to_square_and_normalise_handles_16_bit():
    v = pp.full_view(100, 200, 64)  # wide image: padded top and bottom
    corners = v.to_view(np.array([[-0.5, -0.5], [199.5, 99.5]]))
    np.testing.assert_allclose(corners[:, 0], [-0.5, 63.5])
    np.testing.assert_allclose(corners[:, 1], [15.5, 47.5])
    raw = (np.random.default_rng(0).integers(29000, 31000, (100, 200))).astype(np.uint16)
    out = pp.normalise(pp.warp_view(pp.prepare_gray(raw), v))
    assert out.min() == 0.0 and out.max() == 1.0
    assert (out[:15] == 0).all()  # padding is black


def _warp_whole_frame(gray, view):
    """Reference: the anti-aliasing pre-shrink applied to the whole frame (what warp_view did before
    it shrank only the region a view covers)."""
    import cv2
    m = view.matrix
    f = max(float(np.sqrt(abs(np.linalg.det(m[:2, :2])))) * 1.5, 1.0 / min(gray.shape))
    sh, sw = max(1, int(round(gray.shape[0] * f))), max(1, int(round(gray.shape[1] * f)))
    src = cv2.resize(gray, (sw, sh), interpolation=cv2.INTER_AREA)
    fx, fy = sw / gray.shape[1], sh / gray.shape[0]
    m = m @ np.linalg.inv(np.array([[fx, 0, 0.5 * fx - 0.5], [0, fy, 0.5 * fy - 0.5], [0, 0, 1]]))
    return cv2.warpAffine(src, m[:2], (view.size, view.size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=float("nan"))


@pytest.mark.parametrize("view", [
    pp.full_view(512, 640, 128),                                        # the whole frame: unchanged
    pp.box_view(np.array([200.0, 120.0, 240.0, 270.0]), 128, 1.3),      # a face crop inside
    pp.box_view(np.array([560.0, 400.0, 240.0, 270.0]), 128, 1.3),      # running off the corner
    pp.square_view(320, 250, 350, 128, angle_deg=30, flip=True),         # turned and mirrored
    pp.box_view(np.array([2000.0, 1200.0, 240.0, 270.0]), 128, 1.3),    # wholly outside
], ids=["full", "inside", "corner", "turned", "outside"])
def test_shrinking_only_the_viewed_region_matches_the_whole_frame_shrink(view):
    """The pre-shrink of a crop covers only its region: the same pixels are NaN (outside the
    image) and the values match the whole-frame shrink up to the area filter's grid phase."""
    import cv2
    rng = np.random.default_rng(0)
    gray = cv2.GaussianBlur((rng.random((512, 640)) * 255).astype(np.float32), (0, 0), 6)
    got, ref = pp.warp_view(gray, view), _warp_whole_frame(gray, view)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
    if np.isfinite(ref).any():
        span = np.nanmax(ref) - np.nanmin(ref)
        assert np.nanmax(np.abs(got - ref)) < 0.01 * span


class BrightBox(nn.Module):
    """Stand-in M_b: the box of the pixels above 0.5, normalised like the real model's output."""
    def forward(self, x):
        out = []
        S = x.shape[-1]
        for img in x[:, 0]:
            ys, xs = torch.nonzero(img > 0.5, as_tuple=True)
            x0, x1, y0, y1 = xs.min().float(), xs.max().float(), ys.min().float(), ys.max().float()
            out.append(torch.stack([(x0 + 0.5) / S, (y0 + 0.5) / S, (x1 - x0) / S, (y1 - y0) / S]))
        return torch.stack(out)


class Centroid(nn.Module):
    """Stand-in M_l: every landmark at the centroid of the non-black pixels."""
    def forward(self, x):
        S = x.shape[-1]
        out = []
        for img in x[:, 0]:
            ys, xs = torch.nonzero(img > 0.5, as_tuple=True)
            c = torch.stack([(xs.float().mean() + 0.5) / S, (ys.float().mean() + 0.5) / S])
            out.append(c.repeat(68))
        return torch.stack(out)


def test_coarse_to_fine_maps_outputs_back_to_input_pixels():
    cfg = get_config("dmsl-tiny")
    pred = Predictor(BrightBox(), Centroid(), cfg, device="cpu")
    img = np.full((480, 640, 3), 10, np.uint8)
    img[300:341, 420:461] = 240          # a small bright "face": x 420..460, y 300..340
    p = pred.predict([img])[0]
    # coarse pass on a 64-px view of a 640-px frame: a few pixels of error; refined: about a pixel
    assert np.abs(p.coarse_boundary - [420, 300, 40, 40]).max() < 12
    assert np.abs(p.boundary - [420, 300, 40, 40]).max() < 2.5
    assert np.abs(p.landmarks - [440, 320]).max() < 2.0
    # a box given (tracking) skips the coarse pass
    p2 = pred.predict([img], boxes=[np.array([415.0, 295, 50, 50])])[0]
    assert p2.coarse_boundary is None and np.abs(p2.landmarks - [440, 320]).max() < 2.0


def test_untrained_predictor_accepts_every_input_kind_and_batches():
    pred = Predictor.untrained("dmsl-tiny")
    imgs = [np.random.default_rng(0).integers(0, 255, (90, 120, 3), dtype=np.uint8),
            np.random.default_rng(1).integers(0, 65535, (64, 80), dtype=np.uint16),
            (np.random.default_rng(2).random((70, 50)) * 10 + 25).astype(np.float32)]
    batch = pred.predict(imgs)
    assert len(batch) == 3
    for im, p in zip(imgs, batch):
        assert p.landmarks.shape == (68, 2) and p.boundary.shape == (4,)
        single = pred.predict([im])[0]
        np.testing.assert_allclose(single.landmarks, p.landmarks, atol=1e-3)
    assert pred.predict([]) == []


def test_display_stretch_is_one_rule_for_every_depth():
    """The one display stretch (app views, thumbnails, previews, exported videos): percentiles
    1-99.5 of the finite pixels to 0-255, colour averaged, NaN shown as the low end."""
    from dmsl_core.preprocess import DISPLAY_PERCENTILES, display_uint8
    assert DISPLAY_PERCENTILES == (1.0, 99.5)
    ramp = np.linspace(20.0, 40.0, 200 * 100, dtype=np.float32).reshape(200, 100)
    g = display_uint8(ramp)
    assert g.dtype == np.uint8 and g.shape == ramp.shape
    assert g[0, 0] == 0 and g[-1, -1] == 255 and 120 <= g[100, 50] <= 135
    counts = (ramp * 1000).astype(np.uint16)                     # raw counts: the same picture
    assert np.abs(display_uint8(counts).astype(int) - g.astype(int)).max() <= 1
    nan = ramp.copy()
    nan[:10] = np.nan
    assert (display_uint8(nan)[:10] == 0).all() and display_uint8(np.full((4, 4), np.nan)).max() == 0
    rgb = np.stack([ramp] * 3, axis=2)
    assert np.array_equal(display_uint8(rgb), g)
