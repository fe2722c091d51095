import math

import numpy as np
import pytest

from dmsl_core.evaluation import EvalRecord, auc, build_report, ced_curve, failure_rate, nme, nme_per_image


def face(d=10.0):
    gt = np.zeros((68, 2))
    gt[:, 0] = np.linspace(0, 20, 68)
    gt[36] = [0.0, 0.0]
    gt[45] = [d, 0.0]
    return gt


def test_nme_against_hand_computed_values():
    gt = face(10.0)
    pred = gt + [3.0, 4.0]                          # every point off by 5 px
    assert nme_per_image(pred, gt) == pytest.approx(68 * 5 / (68 * 10))
    pred2 = gt.copy()
    pred2[:34] += [0.0, 2.0]                        # half the points off by 2 px
    assert nme_per_image(pred2, gt) == pytest.approx(34 * 2 / (68 * 10))
    assert nme([pred, pred2], [gt, gt]) == pytest.approx((0.5 + 0.1) / 2)


def test_nme_with_missing_points_uses_the_points_that_exist():
    gt = face(10.0)
    gt[50:60] = np.nan
    pred = np.nan_to_num(gt) + [0.0, 1.0]
    assert nme_per_image(pred, gt) == pytest.approx(58 * 1 / (58 * 10))
    gt[36] = np.nan
    with pytest.raises(ValueError):
        nme_per_image(pred, gt)


def test_ced_auc_failure():
    errs = [0.01, 0.02, 0.05, 0.09, 0.2]
    t, c = ced_curve(errs, 0.1, 11)
    assert c[1] == pytest.approx(0.2) and c[2] == pytest.approx(0.4) and c[-1] == pytest.approx(0.8)
    assert failure_rate(errs, 0.08) == pytest.approx(0.4)
    assert failure_rate(errs, 0.10) == pytest.approx(0.2)
    assert auc([0.0] * 4) == pytest.approx(1.0)
    assert auc([1.0]) == pytest.approx(0.0)
    # a single image at 0.04: CED is 0 up to 0.04 then 1 -> area 0.04 / 0.08
    assert auc([0.04]) == pytest.approx(0.5, abs=0.01)


def test_report_shape_and_misses():
    recs = [EvalRecord("a", "th", "neutral", "s1", 0.02), EvalRecord("b", "vis", "neutral", "s1", 0.06),
            EvalRecord("c", "vis", "smile", "s2", 0.12), EvalRecord("d", "th", "smile", "s2", None)]
    r = build_report(recs)
    assert set(r) >= {"nme", "per_variation", "ced", "auc_0.08", "failure_rate_0.08", "failure_rate_0.10", "n_images"}
    assert r["nme"]["th"] == pytest.approx(0.02)
    assert r["nme"]["vis"] == pytest.approx(0.09)
    assert r["nme"]["all"] == pytest.approx((0.02 + 0.06 + 0.12) / 3)
    assert r["per_variation"]["smile"]["vis"] == pytest.approx(0.12)
    assert r["n_images"] == 4 and r["misses"]["count"] == 1 and r["misses"]["th"] == 1
    assert r["failure_rate_0.10"] == pytest.approx(1 / 3)
    assert r["strict"]["failure_rate_0.10"] == pytest.approx(2 / 4)
    assert not math.isnan(r["auc_0.08"])
