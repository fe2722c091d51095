"""Face detection: the registry, every face at several sizes, none where there is none, Predictor.faces
and ``dmsl predict`` over a folder with a corrupt file."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from dmsl_core import detection as D
from dmsl_core.detection import Detection, get_detector, list_detectors, register_detector, to_gray8

skimage_data = pytest.importorskip("skimage.data")
pytest.importorskip("dlib")

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "assets" / "models" / "dmsl-default"

# the astronaut's face in scikit-image's 512 x 512 photo: centre (223, 125), side ~100 px; the head crop
# below starts at (90, 20)
HEAD = (slice(20, 270), slice(90, 340))
FACE_CENTRE, FACE_SIDE = np.array([133.0, 105.0]), 100.0
SCALES = (1.0, 0.6, 0.34)          # faces of ~100, 60 and 34 px in a 640 x 512 frame


def three_astronauts():
    """A 640 x 512 canvas with the astronaut's head three times at different scales; the faces' centres."""
    head = skimage_data.astronaut()[HEAD]
    canvas = np.full((512, 640, 3), 110, np.uint8)
    x, centres = 10, []
    for i, s in enumerate(SCALES):
        h = cv2.resize(head, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
        y = 60 + 120 * i
        canvas[y:y + h.shape[0], x:x + h.shape[1]] = h
        centres.append((np.array([x, y]) + FACE_CENTRE * s, FACE_SIDE * s))
        x += h.shape[1] + 20
    return canvas, centres


def assert_finds_each(dets, centres):
    assert len(dets) == len(centres), [d.to_dict() for d in dets]
    for c, side in centres:
        near = [d for d in dets if np.linalg.norm(d.box[:2] + d.box[2:] / 2 - c) < 0.25 * side
                and 0.6 * side < np.sqrt(d.box[2] * d.box[3]) < 1.5 * side]
        assert len(near) == 1, (c, side, [d.to_dict() for d in dets])


def test_registry_names_and_unknown_name_error():
    names = list_detectors()
    assert names[0] == "auto" and {"yunet", "dlib-hog", "dlib-cnn", "skimage-lbp"} <= set(names)
    with pytest.raises(ValueError) as err:
        get_detector("yolo-face")
    msg = str(err.value)
    assert "yolo-face" in msg and all(n in msg for n in names)
    auto = get_detector("auto")
    assert isinstance(auto.vis, type(get_detector(D.AUTO))) and auto.min_face == auto.vis.min_face
    assert isinstance(auto.th, D.UnionDetector) and auto.th.name == "dlib-hog-thermal+yunet"
    assert [type(d) for d in auto.th.detectors] == [type(get_detector(D.AUTO_THERMAL)), type(auto.vis)]

    @register_detector("test-fixed", "a detector that always sees one face")
    class Fixed(D.FaceDetector):
        name = "test-fixed"
        WINDOW = 10

        def _detect(self, gray8):
            return [((5, 5, 20, 20), 0.9), ((6, 6, 20, 20), 0.5), ((100, 100, 20, 20), -1.0)]
    try:
        assert "test-fixed" in list_detectors()
        ramp = np.tile(np.arange(200, dtype=np.uint8), (200, 1))
        # min_face 0.05 of 200 px = the 10 px window: the image is searched at its own size
        dets = get_detector("test-fixed", min_face=0.05)(ramp, "th")
        # NMS keeps the better of the overlapping pair; the threshold (0.0) drops the negative score
        assert len(dets) == 1 and dets[0].score == pytest.approx(0.9) and dets[0].spectrum == "th"
        np.testing.assert_allclose(dets[0].box, [5, 5, 20, 20], atol=1e-6)
        # min_face 0.1 = 20 px: searched at half size, so the working image's boxes map back x2
        np.testing.assert_allclose(get_detector("test-fixed", min_face=0.1)(ramp)[0].box, [10, 10, 40, 40], atol=1e-6)
        with pytest.raises(ValueError, match="already registered"):
            register_detector("test-fixed")(Fixed)
    finally:
        D._REGISTRY.pop("test-fixed", None)
        D._DESCRIPTIONS.pop("test-fixed", None)


@pytest.mark.parametrize("name", ["auto", "skimage-lbp"])
def test_three_faces_at_three_sizes_are_each_found(name):
    canvas, centres = three_astronauts()
    assert_finds_each(get_detector(name)(canvas), centres)


def test_sixteen_bit_and_grey_inputs():
    canvas, centres = three_astronauts()
    grey = cv2.cvtColor(canvas, cv2.COLOR_RGB2GRAY)
    th16 = (grey.astype(np.uint16) * 40 + 20000)               # a 16-bit frame with the same content
    g8 = to_gray8(th16)
    assert g8.dtype == np.uint8 and g8.min() == 0 and g8.max() == 255
    det = get_detector("dlib-hog")   # the visible detector on a 16-bit frame of visible faces
    assert_finds_each(det(grey), centres)
    dets = det(th16, spectrum="th")
    assert_finds_each(dets, centres)
    assert all(d.spectrum == "th" and d.detector == "dlib-hog" for d in dets)


def no_face_images():
    rng = np.random.default_rng(1)
    coffee, cat = skimage_data.coffee(), skimage_data.chelsea()
    return {"flat grey": np.full((512, 640), 128, np.uint8),
            "flat 16-bit": np.full((512, 640), 29000, np.uint16),
            "noise": rng.integers(0, 256, (512, 640), dtype=np.uint8),
            "noise colour": rng.integers(0, 256, (512, 640, 3), dtype=np.uint8),
            "coffee": coffee, "coffee grey": cv2.cvtColor(coffee, cv2.COLOR_RGB2GRAY),
            "chelsea": cat, "rocket": skimage_data.rocket()}


@pytest.mark.parametrize("name", ["auto", "skimage-lbp"])
def test_no_face_images_give_no_detection(name):
    det = get_detector(name)
    found = {k: [d.to_dict() for d in det(img)] for k, img in no_face_images().items()}
    assert all(not v for v in found.values()), found


def test_min_face_option_and_its_validation():
    canvas, centres = three_astronauts()
    # asking only for faces >= 15 % of the frame's side (96 px): the 34 and 60 px faces are not searched for
    big = get_detector("auto", min_face=0.15)(canvas)
    assert len(big) == 1 and np.sqrt(big[0].box[2] * big[0].box[3]) > 70
    with pytest.raises(ValueError, match="min_face"):
        get_detector("auto", min_face=0)


@pytest.fixture(scope="module")
def predictor():
    import torch
    torch.set_num_threads(1)
    from dmsl_core.pipeline import Predictor
    if (SHIPPED / "model.safetensors").exists():
        return Predictor.from_weights(str(SHIPPED), device="cpu")
    return Predictor.untrained("dmsl-tiny")


def test_predictor_faces_none_and_three(predictor):
    assert predictor.faces(skimage_data.coffee()) == []
    assert predictor.faces(np.full((512, 640), 90, np.uint8)) == []
    canvas, centres = three_astronauts()
    faces = predictor.faces(canvas, spectrum="vis")
    assert [f.index for f in faces] == [0, 1, 2]
    assert_finds_each([Detection(box=f.box, score=f.score) for f in faces], centres)
    for f in faces:
        assert f.landmarks.shape == (68, 2) and np.isfinite(f.landmarks).all()
        assert f.spectrum == "vis" and f.detector == D.AUTO == "yunet" and f.boundary.shape == (4,)
        x, y, w, h = f.box
        grow = 0.25 * max(w, h)
        assert (f.landmarks[:, 0] > x - grow).all() and (f.landmarks[:, 0] < x + w + grow).all()
        assert (f.landmarks[:, 1] > y - grow).all() and (f.landmarks[:, 1] < y + h + grow).all()
    # the same as predict() given the detector's boxes
    p = predictor.predict([canvas] * 3, boxes=[f.box for f in faces])
    for f, q in zip(faces, p):
        np.testing.assert_allclose(f.landmarks, q.landmarks, atol=1e-6)
    # a callable detector that finds nothing
    assert predictor.faces(canvas, detector=lambda img, spectrum=None: []) == []


def test_cli_predict_folder_with_a_corrupt_file(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    canvas, _ = three_astronauts()
    cv2.imwrite(str(folder / "three.png"), cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(folder / "coffee.jpg"), cv2.cvtColor(skimage_data.coffee(), cv2.COLOR_RGB2BGR))
    (folder / "broken.jpg").write_bytes(b"this is not a jpeg")
    weights = str(SHIPPED) if (SHIPPED / "model.safetensors").exists() else None
    if weights is None:
        pytest.skip("the shipped model is not in this checkout")
    out = tmp_path / "faces.json"
    cmd = [sys.executable, "-m", "dmsl_core.cli", "predict", str(folder), "--weights", weights, "--device", "cpu",
           "--json", str(out), "--csv", str(tmp_path / "faces.csv"), "--pts-dir", str(tmp_path / "pts"),
           "--overlay-dir", str(tmp_path / "overlays")]
    env = {**__import__("os").environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert r.returncode == 1, r.stderr
    assert "broken.jpg" in r.stderr and "not a readable image" in r.stderr and "Traceback" not in r.stderr
    lines = r.stdout.strip().splitlines()
    assert "coffee.jpg: no face" in lines
    assert any(ln.startswith("three.png: 3 faces (") for ln in lines), lines
    assert lines[-1].startswith("3 image(s), 3 face(s), 1 failed")
    res = {Path(e["image"]).name: e for e in json.loads(out.read_text())}
    assert res["coffee.jpg"]["faces"] == [] and "error" in res["broken.jpg"]
    assert len(res["three.png"]["faces"]) == 3 and len(res["three.png"]["faces"][0]["landmarks"]) == 68
    assert sorted(p.name for p in (tmp_path / "pts").iterdir()) == [f"three_face{i}.pts" for i in range(3)]
    assert sorted(p.name for p in (tmp_path / "overlays").iterdir()) == ["coffee.png", "three.png"]
    rows = (tmp_path / "faces.csv").read_text().strip().splitlines()
    assert len(rows) == 4 and len(rows[1].split(",")) == 12 + 136
    head = rows[0].split(",")
    k = head.index("confidence")                        # the landmark stage's own, per face
    assert all(0.0 <= float(r.split(",")[k]) <= 1.0 for r in rows[1:])


def test_cli_parser_stays_import_light():
    code = ("import sys; from dmsl_core.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('torch', 'dlib', 'skimage') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr


@pytest.mark.parametrize("name", ["dlib-hog", "skimage-lbp"])
def test_thermal_frames_are_also_searched_inverted(name):
    canvas, centres = three_astronauts()
    inverted = 255 - cv2.cvtColor(canvas, cv2.COLOR_RGB2GRAY)      # the faces in the other polarity
    det = get_detector(name)
    assert det(inverted) == [] and det(inverted, spectrum="vis") == []
    assert_finds_each(det(inverted, spectrum="th"), centres)
    assert get_detector(name, thermal_polarity="as-is")(inverted, spectrum="th") == []
    with pytest.raises(ValueError, match="thermal_polarity"):
        get_detector(name, thermal_polarity="white-hot")


def thermal_astronauts(seed=0):
    """The three-astronaut canvas made thermal by ``dmsl thermalize``'s converter (68 points from Dlib
    on each visible head), as 16-bit centi-kelvin; the faces' centres."""
    from dmsl_core.baselines import DlibBaseline
    from dmsl_core.thermalize import thermalize_face, to_u16_ck
    head = skimage_data.astronaut()[HEAD]
    pts = DlibBaseline(upsample=1).predict([head])[0].landmarks
    assert pts is not None and np.isfinite(pts).all()
    canvas = np.full((512, 640), 27315 + 2000, np.uint16)        # 20 C background (centi-kelvin)
    x, centres = 10, []
    for i, s in enumerate(SCALES):
        th = to_u16_ck(thermalize_face(head, pts, seed=seed + i).celsius)
        th = cv2.resize(th, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
        y = 60 + 120 * i
        canvas[y:y + th.shape[0], x:x + th.shape[1]] = th
        centres.append((np.array([x, y]) + FACE_CENTRE * s, FACE_SIDE * s))
        x += th.shape[1] + 20
    return canvas, centres


def test_auto_finds_thermal_faces_with_the_thermal_detector():
    canvas, centres = thermal_astronauts()
    auto = get_detector("auto")
    dets = auto(canvas, spectrum="th")
    assert {d.detector for d in dets} <= {"dlib-hog-thermal", "yunet"} and all(d.spectrum == "th" for d in dets)
    assert any(d.detector == "dlib-hog-thermal" for d in dets)       # the thermal HOG, YuNet beside it
    assert_finds_each(dets, centres)
    # black-hot - a camera's 8-bit display output in the other polarity: the same faces
    eight = to_gray8(canvas)
    assert_finds_each(auto(255 - eight, spectrum="th"), centres)
    # a 16-bit frame holds temperatures (warmer is higher): the thermal HOG searches it as it is
    assert not D.search_inverted(canvas, "th", "auto") and D.search_inverted(eight, "th", "auto")
    assert D.search_inverted(canvas, "th", "both") and not D.search_inverted(eight, "vis", "both")
    assert get_detector("dlib-hog-thermal").thermal_polarity == "auto" == D.DlibHogThermalDetector.DEFAULT_POLARITY
    # the thermal detector finds no face where there is none
    det = get_detector("dlib-hog-thermal")
    found = {k: [d.to_dict() for d in det(img, "th")] for k, img in no_face_images().items()}
    assert all(not v for v in found.values()), found


def test_yunet_finds_every_face_in_colour_and_grey_and_none_where_there_is_none():
    """The shipped visible detector (auto's): a small CNN run by OpenCV, its box mapped to the box of the
    68 points (the landmark stage's convention), faces from 32 px in a 640 x 512 frame."""
    assert D.AUTO == "yunet" and D.detector_available("yunet")
    det = get_detector("yunet")
    canvas, centres = three_astronauts()
    for img in (canvas, cv2.cvtColor(canvas, cv2.COLOR_RGB2GRAY)):
        dets = det(img, spectrum="vis")
        assert_finds_each(dets, centres)
        assert all(d.detector == "yunet" and 0.6 <= d.score <= 1.0 for d in dets)
    found = {k: [d.to_dict() for d in det(img, "vis")] for k, img in no_face_images().items()}
    assert all(not v for v in found.values()), found
    # the box is the points' box, not YuNet's own (forehead to chin): on the astronaut, against Dlib's points
    from dmsl_core.baselines import DlibBaseline
    from dmsl_core.landmarks import boundary_from_points
    photo = skimage_data.astronaut()
    pts = DlibBaseline(upsample=1).predict([photo])[0].landmarks
    (best,) = [d for d in det(photo, "vis") if D.iou(d.box, boundary_from_points(pts)) > 0.3]
    assert D.iou(best.box, boundary_from_points(pts)) > 0.7
    raw = get_detector("yunet", box_map=(0, 0, 1, 1))(photo, "vis")
    assert max(D.iou(d.box, boundary_from_points(pts)) for d in raw) < D.iou(best.box, boundary_from_points(pts))
    with pytest.raises(ValueError, match="box_map"):
        get_detector("yunet", box_map=(0, 0, 0, 1))
    with pytest.raises(ValueError, match="YuNet weights not found"):
        get_detector("yunet", path="/nonexistent/yunet.onnx")
