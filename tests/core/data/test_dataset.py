import numpy as np
import pytest

from dmsl_core import preprocess as pp
from dmsl_core.data.torch_dataset import DMSLDataset
from dmsl_core.data.folder import load_samples
from dmsl_core.landmarks import MIRROR_PERM
from dmsl_core.crops import ViewBank


def test_dataset_drops_black_visible_images_and_counts_them(synth_data):
    ds = DMSLDataset(synth_data, config="dmsl-tiny", augment=False)
    # 3 subjects x 4 variations x 2 spectra, minus the 3 black "dark" visible images
    assert ds.report.dropped_dark == 3
    assert len(ds) == 3 * 4 * 2 - 3
    assert not any(s.variation == "dark" and s.spectrum == "vis" for s in ds.samples)
    item = ds[0]
    assert item["x"].shape == (1, 64, 64) and item["target"].shape == (136,) and item["mask"].shape == (1, 64, 64)
    th_only = DMSLDataset(synth_data, spectra=("th",), config="dmsl-tiny", augment=False, kind="boundary")
    assert len(th_only) == 12 and th_only[0]["target"].shape == (4,)


def test_augmented_items_keep_landmarks_on_their_features(synth_data):
    ds = DMSLDataset(synth_data, config="dmsl-tiny", augment=True, seed=1)
    for i in range(0, len(ds), 3):
        t = ds[i]["target"].numpy().reshape(68, 2)
        # whatever the mirroring/rotation, the iBUG order survives: image-left features stay left
        assert t[36, 0] < t[45, 0] and t[0, 0] < t[16, 0] and t[48, 0] < t[54, 0] and t[31, 0] < t[35, 0]


def test_mirrored_view_with_permuted_points_lands_on_the_mirrored_features(synth_data):
    samples = [s for s in load_samples(synth_data, ("th",)) if s.variation == "neutral"][:2]
    bank = ViewBank(samples, 128, 1.5)
    for i in range(len(bank)):
        src = bank.sources[i].astype(np.float32)
        pts = bank.points[i]
        box = np.array([pts[:, 0].min(), pts[:, 1].min(), np.ptp(pts[:, 0]), np.ptp(pts[:, 1])])
        plain = pp.box_view(box, 128, 1.5)
        flipped = pp.box_view(box, 128, 1.5, flip=True)
        img = pp.warp_view(src, plain)
        img_f = pp.warp_view(src, flipped)
        np.testing.assert_allclose(img_f, img[:, ::-1], rtol=1e-5)   # the view is the mirror image
        p = plain.to_view(pts)
        pf = flipped.to_view(pts)[MIRROR_PERM]                     # mirrored points, permuted
        for k in range(68):
            # the feature under point k of the mirrored face = the feature under point perm[k] of the
            # original face, seen in the mirror
            r, c = np.round(pf[k, ::-1]).astype(int)
            r0, c0 = np.round(p[MIRROR_PERM[k], ::-1]).astype(int)
            assert abs(pf[k, 0] - (127 - p[MIRROR_PERM[k], 0])) < 1e-6 and abs(pf[k, 1] - p[MIRROR_PERM[k], 1]) < 1e-6
            assert img_f[r, c] == pytest.approx(img[r0, 127 - c], rel=1e-5)
        # and semantically: the subject's right eye (36-41) stays on the image left
        assert pf[36:42, 0].mean() < pf[42:48, 0].mean()
