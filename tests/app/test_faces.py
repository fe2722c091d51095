"""Every face in the window: the face detector + tracker's faces drawn with "#id score" labels, "no face"
said plainly (view and status bar), the folder browser's faces column, faces="one" as before, and the
Faces setting (dialog, JSON, changed while live)."""
from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest

from app.settings import AppSettings, SettingsDialog

from .conftest import FAST_DEMO, wait_frames

pytest.importorskip("dlib")
detection = pytest.importorskip("tests.core.test_detection")     # the three-astronaut canvas (skimage, dlib)


def _points(view) -> np.ndarray:
    x, y = view.points_item.getData()
    return np.stack([x, y], axis=1) if x is not None and len(x) else np.zeros((0, 2))


def _extra_points(view) -> int:
    x, _ = view.faces_points_item.getData()
    return 0 if x is None else len(x)


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    """Image files: the three-astronaut canvas (visible; thermal as 16-bit centi-kelvin) and a plain grey frame."""
    from dmsl_core.data.imageio import write_image

    d = tmp_path_factory.mktemp("faces")
    vis, centres = detection.three_astronauts()
    th, _ = detection.thermal_astronauts()
    write_image(d / "three_vis.png", vis)
    write_image(d / "three_th.png", th)
    write_image(d / "grey.png", np.full((256, 320, 3), 128, np.uint8))
    pairs = d / "pairs"
    pairs.mkdir()
    write_image(pairs / "three_vis.png", vis)
    write_image(pairs / "three_th.png", th)
    write_image(pairs / "empty_vis.png", np.full((512, 640, 3), 128, np.uint8))
    return SimpleNamespace(dir=d, pairs=pairs, centres=centres)


@pytest.fixture
def shipped(settings):
    """The window's settings with the shipped model and every face."""
    return dataclasses.replace(settings, weights="dmsl-default", faces="every")


def test_every_face_drawn_with_ids_and_scores_and_counted_in_the_status(qtbot, make_window, shipped, scenes):
    d = scenes.dir
    win = make_window(f"pair:{d / 'three_vis.png'}|{d / 'three_th.png'}?th_format=u16_ck",
                      settings=dataclasses.replace(shipped, mode="both"))
    wait_frames(qtbot, win, 1, timeout=60000)
    r = win.last_result
    assert r.tracked and set(r.faces) == {"vis", "th"}
    for spec, view in (("vis", win.vis_view), ("th", win.th_view)):
        faces = r.faces[spec]
        assert len(faces) == 3, (spec, [f.to_dict()["box"] for f in faces])
        ids = view.face_ids
        assert len(ids) == 3 == len(set(ids)) and set(ids) == {f.id for f in faces}
        assert ids[0] == r.primary_ids[spec] == view.primary_id
        # the primary in the landmark style (68 points), the two others beside it, each with a box
        assert len(_points(view)) == 68 and _extra_points(view) == 2 * 68
        bx, _ = view.faces_box_item.getData()
        assert len(bx) == 2 * 5
        labels = view.face_labels_text()
        assert sorted(labels) == sorted(f"#{f.id} {f.score:.2f}" + ("" if f.confidence is None else
                                                                     f" | {100 * f.confidence:.0f}%") for f in faces)
        assert "3 faces" in view.info_label.text() and view.note == ""
        # each face's points lie on one of the three heads
        for f in faces:
            c = np.asarray(f.landmarks).mean(axis=0)
            assert min(np.linalg.norm(c - cc) / side for cc, side in scenes.centres) < 0.3
    assert win.st_faces.text() == "visible: 3 faces · thermal: 3 faces"
    assert "#" in win.st_faces.toolTip()


def test_no_face_said_in_the_view_and_the_status_bar(qtbot, make_window, shipped, scenes):
    win = make_window(str(scenes.dir / "grey.png"), settings=shipped)
    wait_frames(qtbot, win, 1, timeout=60000)
    r = win.last_result
    assert r.tracked and r.no_face("vis") and "vis" not in r.landmarks
    v = win.vis_view
    assert v.image_item.image is not None                  # the picture stays ...
    assert v.note == "no face" and v.note_item.isVisible()  # ... with "no face" over it
    assert "no face" in v.info_label.text() and "not run" not in v.info_label.text()
    assert len(_points(v)) == 0 and v.face_ids == [] and v.face_labels_text() == []
    assert win.st_faces.text() == "no face in the visible image"
    assert win.st_faces.objectName() == "StatusWarn"


def test_one_face_draws_the_single_face_as_before(qtbot, make_window, shipped, scenes):
    win = make_window(str(scenes.dir / "three_vis.png"), settings=dataclasses.replace(shipped, faces="one"))
    wait_frames(qtbot, win, 1, timeout=60000)
    r = win.last_result
    assert not r.tracked and not r.faces and r.landmarks["vis"].shape == (68, 2)
    v = win.vis_view
    assert len(_points(v)) == 68 and _extra_points(v) == 0
    assert v.face_ids == [] and v.face_labels_text() == [] and v.note == ""
    bx, _ = v.box_item.getData()
    assert len(bx) == 5 and len(v.faces_box_item.getData()[0]) == 0
    assert "face" not in v.info_label.text() and win.st_faces.text() == ""


def test_folder_browser_shows_every_face_and_no_face(qtbot, make_window, shipped, scenes):
    win = make_window(autostart=False, settings=shipped)
    win.open_folder(str(scenes.pairs))
    qtbot.waitUntil(lambda: win.browser.done, timeout=60000)
    b = win.browser
    by_name = {e.name: e for e in b.entries}
    assert set(by_name) == {"three", "empty"}
    three, empty = by_name["three"], by_name["empty"]
    assert three.tracked and three.n_faces("vis") == 3 and three.n_faces("th") == 3 and three.faces_text() == "3"
    assert empty.no_face("vis") and empty.faces_text() == "no face" and "vis" not in empty.landmarks
    assert "no face in 1 pair" in b.summary.text()
    rows = {b.table.item(r, 1).text(): r for r in range(b.table.rowCount())}
    assert b.table.item(rows["empty"], 6).text() == "no face"
    b.table.selectRow(rows["three"])
    assert len(b.vis_view.face_ids) == 3 and len(b.vis_view.face_labels_text()) == 3
    assert "3 faces" in b.vis_view.info_label.text() and "3 faces in the visible image" in b.detail.text()
    b.table.selectRow(rows["empty"])
    assert b.vis_view.note == "no face" and b.vis_view.face_ids == [] and len(_points(b.vis_view)) == 0
    assert "no face" in b.vis_view.info_label.text()


def test_faces_setting_changes_while_live(qtbot, make_window, shipped):
    win = make_window(FAST_DEMO, settings=shipped)
    wait_frames(qtbot, win, 2, timeout=60000)
    assert win.last_result.tracked and win.live.options.faces == "every"
    win.apply_settings(dataclasses.replace(win.settings, faces="one", detect_every=3))
    qtbot.waitUntil(lambda: win.last_result is not None and not win.last_result.tracked, timeout=20000)
    assert win.live.options.detect_every == 3
    wait_frames(qtbot, win, 1)
    assert win.vis_view.face_ids == [] and win.st_faces.text() == ""
    win.apply_settings(dataclasses.replace(win.settings, faces="every"))
    qtbot.waitUntil(lambda: win.last_result is not None and win.last_result.tracked, timeout=20000)
    assert win.store.load().faces == "every"


def test_faces_settings_json_and_dialog(qtbot):
    s = AppSettings()
    assert s.faces == "every" and s.detect_every == 10
    assert AppSettings.from_json(AppSettings(faces="one", detect_every=4).to_json()).faces == "one"
    bad = AppSettings.from_json('{"faces": "all", "detect_every": 500}')
    assert bad.faces == "every" and bad.detect_every == 120
    d = SettingsDialog(AppSettings(faces="every", detect_every=7))
    qtbot.addWidget(d)
    assert d.faces.currentData() == "every" and d.detect_every.value() == 7
    assert d.detect_every.minimum() == 1 and d.detect_every.maximum() == 120
    assert not d.reuse_box.isEnabled()                       # one-face box reuse: no use with the tracker
    d.faces.setCurrentIndex(d.faces.findData("one"))
    assert d.reuse_box.isEnabled() and not d.detect_every.isEnabled()
    d.detect_every.setValue(30)
    out = d.result_settings()
    assert out.faces == "one" and out.detect_every == 30


def test_view_set_faces_labels_boxes_and_clearing(qtbot):
    from app.views import SpectrumView

    v = SpectrumView("Visible")
    qtbot.addWidget(v)
    v.set_image(np.zeros((200, 300, 3), np.uint8))
    rng = np.random.default_rng(0)

    def face(i, x, score, conf=None):
        pts = rng.uniform(0, 40, (68, 2)) + [x, 60]
        return SimpleNamespace(id=i, score=score, boundary=np.array([x, 60.0, 40, 40]), landmarks=pts,
                               confidence=conf)

    faces = [face(4, 10, 1.234), face(7, 120, 0.5, 0.934), face(9, 220, float("nan"))]
    v.set_landmarks(faces[1].landmarks, faces[1].boundary)
    v.set_faces(faces, primary_id=7)
    assert v.face_ids == [7, 4, 9] and v.primary_id == 7
    assert _extra_points(v) == 2 * 68 and len(v.faces_box_item.getData()[0]) == 10
    assert v.face_labels_text() == ["#4 1.23", "#7 0.50 | 93%", "#9"]
    v.set_faces(faces[:1], primary_id=None)                  # fewer faces: the spare labels hide
    assert v.face_labels_text() == ["#4 1.23"] and _extra_points(v) == 68
    v.set_faces([])
    assert v.face_ids == [] and v.face_labels_text() == [] and _extra_points(v) == 0
    v.set_faces(faces, 4)
    v.set_faces(None)
    assert v.face_labels_text() == [] and len(v.faces_box_item.getData()[0]) == 0
