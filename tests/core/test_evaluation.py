import json
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


def test_eval_with_a_detector_measures_the_shipped_path_and_counts_misses(tmp_path):
    """``dmsl eval --detector auto``: the faces are found the way ``dmsl predict`` finds them (the detector,
    the box refinement, the confidence); the annotated face on a real photo is found and measured, a
    "face" annotated on a photo of coffee (none there) is a miss, not a number."""
    import importlib.util
    from pathlib import Path

    import cv2

    from dmsl_core.baselines import DlibBaseline, dlib_available
    from dmsl_core.cli import main
    from dmsl_core.data.imageio import read_image
    from dmsl_core.data.pts import write_pts
    from dmsl_core.evaluation import match_annotated_face
    from dmsl_core.pipeline import Predictor
    ok, why = dlib_available()
    spec = importlib.util.find_spec("skimage")
    if not ok or spec is None:
        pytest.skip(why if not ok else "scikit-image (dev extra) not installed")
    skdata = Path(list(spec.submodule_search_locations)[0]) / "data"
    face = read_image(skdata / "astronaut.png")
    pts = DlibBaseline().predict([face])[0].landmarks             # the "annotation": Dlib's points
    src = tmp_path / "photos"
    src.mkdir()
    cv2.imwrite(str(src / "astronaut.png"), cv2.cvtColor(face, cv2.COLOR_RGB2BGR))
    write_pts(src / "astronaut.pts", pts)
    coffee = read_image(skdata / "coffee.png")
    cv2.imwrite(str(src / "coffee.png"), cv2.cvtColor(coffee, cv2.COLOR_RGB2BGR))
    write_pts(src / "coffee.pts", pts * 0.8 + 60)                 # a face drawn where there is none
    data = tmp_path / "data"
    assert main(["import", "--preset", "300w", str(src), str(data), "--crop", "2"]) == 0
    out = tmp_path / "det.json"
    assert main(["eval", "--data", str(data), "--weights", "dmsl-default", "--spectra", "vis", "--threads", "1",
                 "--detector", "auto", "--json", str(out)]) == 0
    rep = json.loads(out.read_text())
    assert rep["box"] == "detector:auto" and rep["n_images"] == 2
    assert rep["misses"]["count"] == 1 and "coffee" in rep["misses"]["images"][0]
    by = {e["image"]: e["nme"] for e in rep["images"]}
    got = [v for k, v in by.items() if "astronaut" in k]
    assert len(got) == 1 and got[0] is not None and got[0] < 0.08
    # the figure is Predictor.faces' on that crop, matched by the one rule
    from dmsl_core.data.folder import load_samples
    s = [s for s in load_samples(data, ("vis",)) if "astronaut" in s.name][0]
    best, _ = match_annotated_face(Predictor.from_weights("dmsl-default").faces(s.load(), spectrum="vis"), s.landmarks)
    assert got[0] == pytest.approx(nme_per_image(best.landmarks, s.landmarks), rel=1e-9)
    # the box comes from the truth or from a detector, not both; an unknown detector is named
    assert main(["eval", "--data", str(data), "--detector", "auto", "--true-box"]) == 2
    assert main(["eval", "--data", str(data), "--detector", "nope"]) == 2
