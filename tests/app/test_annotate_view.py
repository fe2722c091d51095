"""The annotation view: real mouse drags on the canvases, undo/redo, the saved files, groups,
homography transfer, ordering, keys, a failing save, recovery of an interrupted one."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PySide6 import QtCore, QtGui, QtWidgets
from PySide6.QtTest import QTest

from app.annotate_view import AnnotateView, AnnotateWindow
from dmsl_core.annotate import JOURNAL, AnnotationSet, origin_path, original_path
from dmsl_core.data.folder import read_manifest, write_manifest
from dmsl_core.data.pts import read_pts

Qt = QtCore.Qt


@pytest.fixture(scope="module")
def truth(tmp_path_factory) -> Path:
    from dmsl_core.data.synth import generate_dataset
    out = tmp_path_factory.mktemp("annview") / "truth"
    generate_dataset(out, subjects=1, seed=4, size=(200, 160), variations=["neutral", "smile", "tilt"])
    return out


@pytest.fixture
def data(truth, tmp_path) -> Path:
    d = tmp_path / "d"
    shutil.copytree(truth, d)
    return d


@pytest.fixture
def view(qtbot):
    v = AnnotateView()
    qtbot.addWidget(v)
    v.resize(1000, 520)
    v.show()
    qtbot.waitExposed(v)
    yield v
    v.stop()


def open_(qtbot, view, folder, **kw):
    view.open_dataset(str(folder), **kw)
    qtbot.waitUntil(lambda: view.ready, timeout=15000)


def drag(canvas, i: int, dx: int, dy: int, steps: int = 4) -> np.ndarray:
    """Press on point i, move in steps, release; returns the expected move in image pixels."""
    vp = canvas.viewport()
    p0 = canvas.view_pos_of(i)
    QTest.mousePress(vp, Qt.LeftButton, Qt.NoModifier, p0)
    for k in range(1, steps + 1):
        QTest.mouseMove(vp, p0 + QtCore.QPoint(round(dx * k / steps), round(dy * k / steps)))
    end = p0 + QtCore.QPoint(dx, dy)
    QTest.mouseRelease(vp, Qt.LeftButton, Qt.NoModifier, end)
    a, b = canvas.mapToScene(p0), canvas.mapToScene(end)
    return np.array([b.x() - a.x(), b.y() - a.y()])


def key(view, k, mod=Qt.NoModifier):
    view.activateWindow()
    view.setFocus()
    QTest.keyClick(view, k, mod)


def test_drag_moves_the_point_on_both_images_saves_undo_redo(qtbot, view, data):
    open_(qtbot, view, data)
    pts_file = data / "pts/s001_neutral.pts"
    before = read_pts(pts_file)
    orig_bytes = pts_file.read_bytes()
    delta = drag(view.vis_canvas, 30, 24, 18)
    assert np.abs(delta).min() > 3                                   # a real move of several pixels
    saved = read_pts(pts_file)
    np.testing.assert_allclose(saved[30], before[30] + delta, atol=0.05)
    others = np.arange(68) != 30
    np.testing.assert_allclose(saved[others], before[others], atol=2e-3)
    # it moved on the thermal image too (registered pair: the same coordinates)
    np.testing.assert_allclose(view.th_canvas.overlay.pts[30], saved[30], atol=2e-3)
    meta = json.loads(origin_path(pts_file).read_text())
    assert meta["vis"][30] == "hand" and meta["th"][30] == "hand" and meta["vis"][29] == "file"
    assert original_path(pts_file).read_bytes() == orig_bytes       # the original is kept
    assert not (data / JOURNAL).exists()

    key(view, Qt.Key_Z, Qt.ControlModifier)                           # undo
    np.testing.assert_allclose(read_pts(pts_file), before, atol=2e-3)
    assert json.loads(origin_path(pts_file).read_text())["vis"][30] == "file"
    np.testing.assert_allclose(view.th_canvas.overlay.pts[30], before[30], atol=2e-3)
    key(view, Qt.Key_Z, Qt.ControlModifier | Qt.ShiftModifier)        # redo
    np.testing.assert_allclose(read_pts(pts_file)[30], before[30] + delta, atol=0.05)
    assert original_path(pts_file).read_bytes() == orig_bytes       # still the first version
    assert view.save_count == 3 and not view.last_error


def test_wheel_zoom_and_background_drag_pan_do_not_edit(qtbot, view, data):
    open_(qtbot, view, data)
    c = view.vis_canvas
    z0 = c.zoom
    centre = QtCore.QPointF(c.viewport().width() / 2, c.viewport().height() / 2)
    ev = QtGui.QWheelEvent(centre, c.viewport().mapToGlobal(centre), QtCore.QPoint(), QtCore.QPoint(0, 240),
                           Qt.NoButton, Qt.NoModifier, Qt.NoScrollPhase, False)
    QtWidgets.QApplication.sendEvent(c.viewport(), ev)
    assert c.zoom == pytest.approx(z0 * 1.25 ** 2, rel=1e-3)
    h0 = c.horizontalScrollBar().value()
    corner = QtCore.QPoint(5, 5)                                       # background, no point there
    assert c.pick(QtCore.QPointF(corner)) is None
    QTest.mousePress(c.viewport(), Qt.LeftButton, Qt.NoModifier, corner)
    QTest.mouseMove(c.viewport(), corner + QtCore.QPoint(40, 0))
    QTest.mouseRelease(c.viewport(), Qt.LeftButton, Qt.NoModifier, corner + QtCore.QPoint(40, 0))
    assert c.horizontalScrollBar().value() < h0                       # panned
    assert view.save_count == 0 and view.undo_stack.count() == 0
    # a point is still hit exactly after zooming
    before = read_pts(data / "pts/s001_neutral.pts")
    c.centerOn(*before[48])
    d = drag(c, 48, 10, 0)
    np.testing.assert_allclose(read_pts(data / "pts/s001_neutral.pts")[48], before[48] + d, atol=0.05)
    assert abs(d[0]) < 10 / 1.5                                       # ten screen pixels are fewer image pixels


def test_a_group_moves_and_scales_together(qtbot, view, data):
    open_(qtbot, view, data)
    pts_file = data / "pts/s001_neutral.pts"
    before = read_pts(pts_file)
    view.group_box.setCurrentText("mouth")
    delta = drag(view.vis_canvas, 51, -12, 10)
    after = read_pts(pts_file)
    mouth = list(range(48, 68))
    np.testing.assert_allclose(after[mouth], before[mouth] + delta, atol=0.05)
    np.testing.assert_allclose(after[:48], before[:48], atol=2e-3)
    key(view, Qt.Key_Plus)                                            # grow the group by 5 %
    grown = read_pts(pts_file)
    c = after[mouth].mean(axis=0)
    np.testing.assert_allclose(grown[mouth], c + (after[mouth] - c) * 1.05, atol=0.01)
    meta = json.loads(origin_path(pts_file).read_text())
    assert meta["vis"][48:68] == ["hand"] * 20 and meta["vis"][0] == "file"
    assert view.undo_stack.count() == 2
    view.undo_stack.undo()
    view.undo_stack.undo()
    np.testing.assert_allclose(read_pts(pts_file), before, atol=2e-3)


def test_unregistered_pair_moves_through_the_homography(qtbot, view, data):
    from dmsl_core.registration import Calibration
    recs = read_manifest(data)
    for r in recs:
        r.registered = False
        r.th_landmarks = r.landmarks.replace(".pts", ".th.pts")
        shutil.copy(data / r.landmarks, data / r.th_landmarks)
    write_manifest(data, recs)
    H = np.array([[1.0, 0, 12.0], [0, 1.0, -4.0], [0, 0, 1]])       # thermal -> visible
    Calibration(H_th_to_vis=H).save(data / "calibration.json")
    open_(qtbot, view, data)
    vis0 = read_pts(data / "pts/s001_neutral.pts")
    delta = drag(view.th_canvas, 8, 0, 20)                            # chin, on the thermal image
    th = read_pts(data / "pts/s001_neutral.th.pts")
    vis = read_pts(data / "pts/s001_neutral.pts")
    np.testing.assert_allclose(vis[8], th[8] + [12.0, -4.0], atol=0.01)
    np.testing.assert_allclose(th[8], vis0[8] + delta, atol=0.05)   # the .th.pts started as a copy of the visible one
    np.testing.assert_allclose(vis[8], vis0[8] + delta + [12.0, -4.0], atol=0.05)
    np.testing.assert_allclose(vis[9], vis0[9], atol=2e-3)           # only the dragged point
    assert "homography" in view.info.text()


def test_next_prev_accept_toggle_and_order_by_disagreement(qtbot, view, data):
    aset = AnnotationSet(data)
    for i, d in enumerate([0.02, 0.31, 0.07]):                       # as `dmsl annotate --source both` records
        ann = aset.load(i)
        ann.disagreement = d
        aset.save(i, ann)
    open_(qtbot, view, data)
    assert view.index == 0 and view.pos_label.text() == "1 / 3"
    key(view, Qt.Key_N)
    assert view.index == 1
    key(view, Qt.Key_P)
    assert view.index == 0
    view.set_order(True)
    assert view.order == [1, 2, 0] and view.index == 0 and view.pos == 2   # stays on the pair shown
    view.show_pair(0)
    assert view.index == 1 and "0.3100" in view.info.text()
    key(view, Qt.Key_A)                                               # accept: checked, next pair
    assert json.loads(origin_path(data / aset.records[1].landmarks).read_text())["checked"] is True
    assert view.index == 2
    key(view, Qt.Key_T)
    assert view.spectra == "vis" and view.frames["th"].isHidden() and not view.frames["vis"].isHidden()
    key(view, Qt.Key_T)
    key(view, Qt.Key_T)
    assert view.spectra == "both" and not view.frames["th"].isHidden()


def test_a_failed_save_is_reported_keeps_the_file_and_the_view_works(qtbot, view, data, monkeypatch):
    open_(qtbot, view, data)
    pts_file = data / "pts/s001_neutral.pts"
    before_bytes = pts_file.read_bytes()
    import dmsl_core.atomic as atomic
    real = atomic.os.replace

    def full_disk(src, dst):
        if str(dst).endswith(".pts"):
            raise OSError(28, "No space left on device")
        return real(src, dst)

    monkeypatch.setattr(atomic.os, "replace", full_disk)
    delta = drag(view.vis_canvas, 33, 0, 15)
    assert "could not save" in view.last_error and "No space" in view.status.text()
    assert pts_file.read_bytes() == before_bytes                     # whole, the old version
    assert not list(pts_file.parent.glob(".*.tmp"))
    assert (data / JOURNAL).exists()                                  # the edit survives in the journal
    np.testing.assert_allclose(view.ann.vis[33], read_pts(pts_file)[33] + delta, atol=0.05)
    monkeypatch.setattr(atomic.os, "replace", real)
    drag(view.vis_canvas, 0, 5, 0)                                    # the next change saves both edits
    saved = read_pts(pts_file)
    np.testing.assert_allclose(saved[33], view.ann.vis[33], atol=2e-3)
    assert not view.last_error and not (data / JOURNAL).exists()


def test_an_interrupted_save_is_recovered_when_the_dataset_is_opened(qtbot, view, data):
    aset = AnnotationSet(data)
    ann = aset.load(1)
    ann.vis[36] += [3.0, 0.0]
    ann.th = ann.vis.copy()
    (data / JOURNAL).write_text(json.dumps(aset._journal_entry(1, ann)))   # as a save killed midway leaves it
    msgs = []
    view.message.connect(lambda t, e: msgs.append(t))
    open_(qtbot, view, data)
    assert any("recovered" in m for m in msgs)
    np.testing.assert_allclose(read_pts(data / "pts/s001_smile.pts")[36], ann.vis[36], atol=2e-3)
    assert not (data / JOURNAL).exists()


def test_a_pair_without_landmarks_and_a_bad_file(qtbot, view, data):
    (data / "pts/s001_smile.pts").unlink()
    (data / "pts/s001_tilt.pts").write_text("version: 1\nn_points: 68\n{\n1 2\n}\n")
    open_(qtbot, view, data)
    view.show_pair(1)
    assert view.ann.empty and not view.accept_btn.isEnabled()
    view.copy_previous()                                              # points of the previous pair
    assert read_pts(data / "pts/s001_smile.pts") == pytest.approx(read_pts(data / "pts/s001_neutral.pts"), abs=2e-3)
    assert json.loads(origin_path(data / "pts/s001_smile.pts").read_text())["vis"] == ["neighbour"] * 68
    view.show_pair(2)
    assert "s001_tilt.pts" in view.last_error and not view.vis_canvas.editable
    assert (data / "pts/s001_tilt.pts").read_text().startswith("version: 1")   # left alone


def test_a_folder_without_manifest_is_an_error_in_the_view(qtbot, view, tmp_path):
    view.open_dataset(str(tmp_path))
    qtbot.waitUntil(lambda: bool(view.last_error), timeout=10000)
    assert "manifest.csv" in view.last_error and not view.ready


def test_tools_menu_opens_the_annotation_window(qtbot, make_window, data, monkeypatch):
    win = make_window()
    titles = [a.text() for m in win.menuBar().actions() if m.menu() for a in m.menu().actions()]
    assert "&Annotate dataset…" in titles
    monkeypatch.setattr(QtWidgets.QFileDialog, "getExistingDirectory", lambda *a, **k: str(data))
    win.act_annotate.trigger()
    assert len(win.annotate_windows) == 1
    aw = win.annotate_windows[0]
    assert isinstance(aw, AnnotateWindow)
    qtbot.waitUntil(lambda: aw.view.ready, timeout=15000)
    assert aw.view.aset.root == data and aw.isVisible()
