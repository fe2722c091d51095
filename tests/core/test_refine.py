"""Box refinement modes of the Predictor (``refine``: "mb", "landmarks", "both"): each is the
composition of single steps it claims to be, runs the forwards it claims, comes from the model
card, and reaches ``dmsl eval`` / ``dmsl predict``."""
import json

import numpy as np
import pytest

from dmsl_core.data.folder import load_samples
from dmsl_core.landmarks import boundary_from_points
from dmsl_core.models import create_models, get_config
from dmsl_core.models.weights import save_weights
from dmsl_core.pipeline import Predictor


def _image(synth_data, spectrum="th"):
    return load_samples(synth_data, (spectrum,))[0].load()


def _count_forwards(pred):
    calls = {"boundary": 0, "landmark": 0}
    inner = pred._forward

    def spy(model, views):
        calls["boundary" if model is pred.boundary else "landmark"] += 1
        return inner(model, views)
    pred._forward = spy
    return calls


@pytest.mark.parametrize("mode", ["mb", "landmarks", "both"])
def test_each_mode_is_the_composition_of_single_steps(synth_data, mode):
    pred = Predictor.untrained("dmsl-tiny", seed=5)
    img = _image(synth_data)
    ref = pred.predict([img])[0]                 # default "mb": coarse box -> M_b again -> M_l
    assert pred.refine == "mb"
    # the box M_l's (first) pass starts from: M_b's refined box, or with "landmarks" its coarse box
    start = ref.coarse_boundary if mode == "landmarks" else ref.boundary
    first = pred.predict([img], boxes=[start], refine=False)[0]
    pred.set_refine(mode)
    calls = _count_forwards(pred)
    got = pred.predict([img])[0]
    calls = dict(calls)                          # the forwards of that one call
    if mode == "mb":
        expect_lm, expect_box = first.landmarks, start
    else:                                        # M_l once more, around its own landmarks
        expect_box = boundary_from_points(first.landmarks)
        expect_lm = pred.landmarks_from([img], [first.landmarks])[0]
    np.testing.assert_allclose(got.landmarks, expect_lm, atol=1e-9)
    np.testing.assert_allclose(got.boundary, expect_box, atol=1e-9)
    np.testing.assert_allclose(got.coarse_boundary, ref.coarse_boundary, atol=1e-9)
    assert calls == {"mb": {"boundary": 2, "landmark": 1}, "landmarks": {"boundary": 1, "landmark": 2},
                     "both": {"boundary": 2, "landmark": 2}}[mode]
    assert pred.forwards_per_face == sum(calls.values())
    if mode != "mb":
        assert np.abs(got.landmarks - first.landmarks).max() > 1e-3   # the second pass did something


@pytest.mark.parametrize("mode", ["mb", "landmarks", "both"])
def test_flip_final_mirrors_only_the_final_landmark_pass(synth_data, mode):
    """``tta="flip-final"``: every step before the final M_l pass is that of ``tta="none"``; the
    final pass is flip TTA's (crop and mirrored crop in one batch, averaged)."""
    pred = Predictor.untrained("dmsl-tiny", seed=5).set_refine(mode)
    img = _image(synth_data)
    plain = pred.predict([img])[0]
    calls = _count_forwards(pred.set_tta("flip-final"))
    got = pred.predict([img])[0]
    calls = dict(calls)
    pred.set_tta("flip")
    if mode == "mb":      # the only M_l pass is the final one: flip's pass around the same box
        expect = pred.predict([img], boxes=[plain.boundary], refine=False)[0].landmarks
    else:                 # the first M_l pass unflipped, the second flip's pass around its landmarks
        none_mb = Predictor.untrained("dmsl-tiny", seed=5)        # tta none, refine mb: M_b's refined box
        start = plain.coarse_boundary if mode == "landmarks" else none_mb.predict([img])[0].boundary
        first = none_mb.predict([img], boxes=[start], refine=False)[0]
        expect = pred.landmarks_from([img], [first.landmarks])[0]
    np.testing.assert_allclose(got.landmarks, expect, atol=1e-9)
    np.testing.assert_allclose(got.boundary, plain.boundary, atol=1e-9)   # the box steps did not flip
    assert np.abs(got.landmarks - plain.landmarks).max() > 1e-3
    assert calls == {"mb": {"boundary": 2, "landmark": 1}, "landmarks": {"boundary": 1, "landmark": 2},
                     "both": {"boundary": 2, "landmark": 2}}[mode]


@pytest.mark.parametrize("mode", ["landmarks", "both"])
def test_a_trusted_box_gets_one_landmark_pass_in_every_mode(synth_data, mode):
    """``refine=False`` (a video's reused box, the ground truth's box in ``--true-box``): the box is
    final, so no mode adds passes - box reuse keeps its speed."""
    pred = Predictor.untrained("dmsl-tiny", seed=5)
    img = _image(synth_data)
    box = np.array([40.0, 30.0, 60.0, 70.0])
    plain = pred.predict([img], boxes=[box], refine=False)[0]
    pred.set_refine(mode)
    calls = _count_forwards(pred)
    got = pred.predict([img], boxes=[box], refine=False)[0]
    assert calls == {"boundary": 0, "landmark": 1}
    np.testing.assert_array_equal(got.landmarks, plain.landmarks)


def _rotate(img, pts, deg):
    """The image turned by ``deg`` about its centre on a canvas big enough to keep it, and the points."""
    import cv2
    h, w = img.shape[:2]
    side = int(np.ceil(np.hypot(h, w))) + 2
    m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), deg, 1.0)
    m[:, 2] += [(side - w) / 2, (side - h) / 2]
    out = cv2.warpAffine(img.astype(np.float32), m, (side, side), flags=cv2.INTER_CUBIC, borderValue=0.0)
    return out, pts @ m[:, :2].T + m[:, 2], m


def test_the_second_pass_crop_is_upright_whatever_the_roll(synth_data):
    """``landmarks_from`` turns its crop so the eye line is level: the same face rolled by 20 degrees
    (guides rolled with it) gives the same points, rolled - while a plain box crop does not."""
    s = load_samples(synth_data, ("vis",))[0]
    img = s.load().astype(np.float32)
    img = img.mean(axis=2) if img.ndim == 3 else img
    pts = np.asarray(s.landmarks, float)
    pred = Predictor.untrained("dmsl-tiny", seed=2)
    guide = pts + np.random.default_rng(0).normal(0, 1.0, pts.shape)   # an imperfect earlier pass
    a_img, a_guide, _ = _rotate(img, guide, 0.0)                        # same canvas, not turned
    b_img, b_guide, m = _rotate(img, guide, 20.0)
    back = np.linalg.inv(np.vstack([m, [0, 0, 1]]))
    m0 = np.vstack([_rotate(img, guide, 0.0)[2], [0, 0, 1]])
    to_a = (m0 @ back)[:2]                                              # b's pixels -> a's pixels
    a = pred.landmarks_from([a_img], [a_guide])[0]
    b = pred.landmarks_from([b_img], [b_guide])[0] @ to_a[:, :2].T + to_a[:, 2]
    iod = np.linalg.norm(pts[36] - pts[45])
    assert np.abs(a - b).max() / iod < 0.02                             # equal up to resampling
    box_a = pred.predict([a_img], boxes=[boundary_from_points(a_guide)], refine=False)[0].landmarks
    box_b = pred.predict([b_img], boxes=[boundary_from_points(b_guide)], refine=False)[0].landmarks
    box_b = box_b @ to_a[:, :2].T + to_a[:, 2]
    assert np.abs(box_a - box_b).max() / iod > 5 * np.abs(a - b).max() / iod   # an unturned crop differs
    with pytest.raises(ValueError, match="2 landmark sets for 1 images"):
        pred.landmarks_from([a_img], [a_guide, a_guide])


def test_refinement_works_with_flip_tta_and_batches(synth_data):
    pred = Predictor.untrained("dmsl-tiny", seed=5).set_tta("flip").set_refine("both")
    calls = _count_forwards(pred)
    imgs = [_image(synth_data), _image(synth_data, "vis")[:90, :110]]
    out = pred.predict(imgs)
    assert len(out) == 2 and all(np.isfinite(p.landmarks).all() for p in out)
    assert calls == {"boundary": 2, "landmark": 2}   # one forward per step for the whole batch, flips included
    # the second pass runs around the first pass's (flip-averaged) landmarks, whose box it reports
    mb_box = [p.boundary for p in pred.set_refine("mb").predict(imgs)]
    first = [p.landmarks for p in pred.predict(imgs, boxes=mb_box, refine=False)]
    second = pred.landmarks_from(imgs, first)
    for p, f, s2 in zip(out, first, second):
        np.testing.assert_allclose(p.boundary, boundary_from_points(f), atol=1e-9)
        np.testing.assert_allclose(p.landmarks, s2, atol=1e-9)


def test_refine_comes_from_the_model_card_and_can_be_overridden(tmp_path):
    mb, ml = create_models("dmsl-tiny", seed=0)
    save_weights(tmp_path / "m", mb, ml, get_config("dmsl-tiny"), card={"inference": {"refine": "both"}})
    save_weights(tmp_path / "old", mb, ml, get_config("dmsl-tiny"), card={"inference": {"tta": "none"}})
    assert Predictor.from_weights(tmp_path / "m", device="cpu").refine == "both"
    assert Predictor.from_weights(tmp_path / "m", device="cpu", refine="mb").refine == "mb"
    assert Predictor.from_weights(tmp_path / "old", device="cpu").refine == "mb"   # cards from before: as before
    assert Predictor.untrained("dmsl-tiny").refine == "mb"
    with pytest.raises(ValueError, match="twice.*known: mb, landmarks, both"):
        Predictor.untrained("dmsl-tiny").set_refine("twice")


def test_eval_and_predict_take_refine_from_the_command_line(synth_data, tmp_path):
    from dmsl_core.cli import main
    from dmsl_core.data.imageio import read_image
    from dmsl_core.evaluation import nme_per_image
    mb, ml = create_models("dmsl-tiny", seed=1)
    save_weights(tmp_path / "m", mb, ml, get_config("dmsl-tiny"), card={"name": "t"})
    samples = load_samples(synth_data, ("vis", "th"))
    reports = {}
    for mode in ("mb", "landmarks"):
        out = tmp_path / f"{mode}.json"
        assert main(["eval", "--data", str(synth_data), "--weights", str(tmp_path / "m"), "--device", "cpu",
                     "--json", str(out), "--refine", mode]) == 0
        reports[mode] = json.loads(out.read_text())
        assert reports[mode]["refine"] == mode
    pred = Predictor.from_weights(tmp_path / "m", device="cpu", refine="landmarks")
    got = pred.predict([s.load() for s in samples])
    th = [nme_per_image(p.landmarks, s.landmarks) for p, s in zip(got, samples) if s.spectrum == "th"]
    assert reports["landmarks"]["nme"]["th"] == pytest.approx(float(np.mean(th)), rel=1e-6)
    assert reports["landmarks"]["nme"]["th"] != reports["mb"]["nme"]["th"]
    img = samples[0].path
    out = tmp_path / "p.json"
    assert main(["predict", str(img), "--weights", str(tmp_path / "m"), "--device", "cpu", "--refine", "both",
                 "--detector", "none", "--json", str(out)]) == 0
    np.testing.assert_allclose(json.loads(out.read_text())[0]["landmarks"],
                               pred.set_refine("both").predict_one(read_image(img)).landmarks, atol=1e-3)
    with pytest.raises(SystemExit):
        main(["predict", str(img), "--refine", "sideways"])


def test_the_command_line_offers_exactly_the_predictors_modes():
    from dmsl_core.cli import build_parser
    sub = next(a for a in build_parser()._actions if a.choices and "eval" in a.choices)
    for command in ("eval", "predict", "run"):
        opts = {a.dest: a.choices for a in sub.choices[command]._actions}
        assert tuple(opts["tta"]) == Predictor.TTA_MODES, command
        assert tuple(opts["refine"]) == Predictor.REFINE_MODES, command


def test_a_detectors_box_is_refined_as_its_backend_needs(synth_data, tmp_path):
    """The card's ``refine`` for boxes fitted to the 68 points' box (YuNet's), its ``refine_rough``
    for a HOG detector's box of its own shape: ``predict_detections`` and ``faces`` refine each
    detection so (the same points as ``predict`` with that mode), and an explicit ``--refine`` sets both."""
    from types import SimpleNamespace

    from dmsl_core.detection import Detection, boxes_fitted
    assert boxes_fitted("yunet") and not boxes_fitted("dlib-hog-thermal") and not boxes_fitted("nope")
    mb, ml = create_models("dmsl-tiny", seed=3)
    save_weights(tmp_path / "m", mb, ml, get_config("dmsl-tiny"),
                 card={"name": "t", "inference": {"tta": "none", "refine": "landmarks", "refine_rough": "both"}})
    pred = Predictor.from_weights(tmp_path / "m", device="cpu")
    assert (pred.refine, pred.refine_rough) == ("landmarks", "both")
    assert pred.refine_for("yunet") == "landmarks" and pred.refine_for("dlib-hog-thermal") == "both"
    img = _image(synth_data)
    h, w = img.shape[:2]
    box = np.array([w * 0.25, h * 0.2, w * 0.5, h * 0.6])
    dets = [SimpleNamespace(box=box, detector="yunet"), SimpleNamespace(box=box, detector="dlib-hog-thermal"),
            SimpleNamespace(box=box + 3, detector="yunet")]
    got = pred.predict_detections(img, dets)
    for d, p in zip(dets, got):
        want = pred.predict([img], boxes=[d.box], refine=pred.refine_for(d.detector))[0]
        assert np.allclose(p.landmarks, want.landmarks, atol=1e-4), d.detector
    assert not np.allclose(got[0].landmarks, got[1].landmarks, atol=1e-3)     # the two modes differ here
    # faces(): the same, with a detector that returns one box of each kind
    faces = pred.faces(img, detector=lambda im, s: [Detection(box, 0.9, "th", "yunet"),
                                                    Detection(box, 0.8, "th", "dlib-hog-thermal")])
    assert [f.detector for f in faces] == ["yunet", "dlib-hog-thermal"]
    assert np.allclose(faces[0].landmarks, got[0].landmarks, atol=1e-4)
    assert np.allclose(faces[1].landmarks, got[1].landmarks, atol=1e-4)
    # a refinement given by the user (dmsl eval / predict --refine) is every box's
    pred.set_refine("mb")
    assert pred.refine_for("yunet") == pred.refine_for("dlib-hog-thermal") == "mb"
    with pytest.raises(ValueError, match="unknown box refinement"):
        pred.predict([img], refine="sideways")
