"""The pieces: worker threads, palettes, settings (QSettings), dialogs, the view overlay."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from PySide6 import QtCore

from app.palettes import LUTS, PALETTES, LevelTracker, apply_lut
from app.settings import AppSettings, SettingsDialog, SettingsStore
from app.workers import FunctionWorker, Worker, explain, parked_threads, start_worker


# ---- workers --------------------------------------------------------------------------------
def test_worker_result_progress_finished(qtbot):
    got = {"progress": [], "result": None, "finished": 0, "error": None}

    def work(n, worker):
        for i in range(n):
            worker.progress.emit(i)
        return n * 2

    h = start_worker(FunctionWorker(work, 3, pass_worker=True), "t",
                     on_progress=got["progress"].append, on_result=lambda r: got.__setitem__("result", r),
                     on_finished=lambda: got.__setitem__("finished", got["finished"] + 1))
    qtbot.waitUntil(lambda: got["finished"] == 1, timeout=5000)
    assert got["progress"] == [0, 1, 2] and got["result"] == 6
    assert h.wait(2000) and not h.running


def test_worker_error_still_finishes_and_explains(qtbot):
    got = {"error": "", "finished": False, "thread": None}

    def fail():
        raise FileNotFoundError("clip.mp4: no such file")

    def on_error(text):
        got["error"] = text
        got["thread"] = threading.current_thread()

    h = start_worker(FunctionWorker(fail), "t", on_error=on_error, on_finished=lambda: got.__setitem__("finished", True))
    qtbot.waitUntil(lambda: got["finished"], timeout=5000)
    assert "clip.mp4" in got["error"] and "Check the path" in got["error"]
    assert got["thread"] is threading.main_thread()   # callbacks run on the Qt thread
    h.wait(2000)


def test_cooperative_stop_and_bounded_wait(qtbot):
    class Loop(Worker):
        def work(self):
            while not self.stopping:
                time.sleep(0.01)
            return "stopped"

    h = start_worker(Loop(), "loop")
    qtbot.waitUntil(lambda: h.running, timeout=2000)
    t0 = time.perf_counter()
    assert h.stop(2000)
    assert time.perf_counter() - t0 < 1.5

    release = threading.Event()

    class Hung(Worker):   # a driver call that ignores the stop flag
        def work(self):
            release.wait(10)

    h2 = start_worker(Hung(), "hung")
    qtbot.waitUntil(lambda: h2.running, timeout=2000)
    t0 = time.perf_counter()
    assert not h2.stop(200)                      # bounded: gives up, parks the thread
    assert time.perf_counter() - t0 < 1.0
    assert parked_threads() == 1
    release.set()
    qtbot.waitUntil(lambda: parked_threads() == 0, timeout=5000)


def test_explain_messages():
    from dmsl_core.models.weights import WeightsError
    from dmsl_core.sources import SourceError

    assert "Settings" in explain(WeightsError("x.safetensors: not a DMSL model"))
    assert "Camera problem" in explain(SourceError("camera 3: no such device"))
    oom = explain(RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert "GPU ran out of memory" in oom and "CPU" in oom


# ---- palettes -----------------------------------------------------------------------------
def test_palettes_and_levels():
    assert set(PALETTES) == set(LUTS) == {"white-hot", "black-hot", "iron", "rainbow"}
    for lut in LUTS.values():
        assert lut.shape == (256, 3) and lut.dtype == np.uint8
    assert tuple(LUTS["white-hot"][255]) == (255, 255, 255) and tuple(LUTS["black-hot"][255]) == (0, 0, 0)
    assert apply_lut(np.array([[0, 255]], np.uint8), "iron").shape == (1, 2, 3)
    with pytest.raises(ValueError):
        apply_lut(np.zeros((2, 2), np.uint8), "nope")
    lt = LevelTracker()
    lo, hi = lt.update(np.linspace(20, 36, 400, dtype=np.float32).reshape(20, 20))
    assert 19 < lo < 22 and 34 < hi < 37
    lo, hi = lt.update(np.full((20, 20), 30.0, np.float32))   # flat image: a minimum span, smoothed
    assert hi - lo >= 1.0


# ---- settings -------------------------------------------------------------------------------
def test_settings_json_roundtrip_and_bad_values():
    s = AppSettings(weights="runs/r1", device="cpu", palette="rainbow", mode="both", point_size=7.0,
                    selector={"low": 0.1})
    assert AppSettings.from_json(s.to_json()) == s
    bad = AppSettings.from_json('{"palette": "purple", "mode": 3, "point_size": "big", "threads": 2, "x": 1}')
    assert bad.palette == "iron" and bad.mode == "auto" and bad.point_size == 5.0 and bad.threads == 2
    assert AppSettings.from_json("not json") == AppSettings()


def test_settings_store_recent_and_geometry(qtbot, tmp_path, tiny_weights, store):
    from app.main_window import MainWindow

    for u in ("demo", "cam:0", "demo", "folder:/data"):
        store.add_recent(u)
    assert store.recent() == ["folder:/data", "demo", "cam:0"]
    s = AppSettings(weights=tiny_weights, fallback_config="dmsl-tiny", device="cpu", palette="black-hot")
    w = MainWindow(store=store, settings=s, autostart=False)
    qtbot.addWidget(w)
    w.resize(900, 600)
    w.show()
    assert w.palette_box.currentText() == "black-hot"
    assert [w.recent_menu.actions()[i].text() for i in range(3)] == ["folder:/data", "demo", "cam:0"]
    w.close()
    w2 = MainWindow(store=SettingsStore(store.q), autostart=False)
    qtbot.addWidget(w2)
    w2.show()
    assert w2.settings.palette == "black-hot" and w2.settings.weights == tiny_weights
    assert store.value("window/geometry")                  # geometry saved ...
    assert w2.height() == 600                              # ... and restored (offscreen ignores frame widths)
    w2.close()


def test_settings_dialog_edits(qtbot, tiny_weights):
    s = AppSettings(weights=tiny_weights, device="cpu")
    dlg = SettingsDialog(s)
    qtbot.addWidget(dlg)
    assert set(dlg.selector_fields) >= {"low", "high", "min_dwell_s"}
    dlg.contours.setChecked(False)
    dlg.palette.setCurrentText("rainbow")
    dlg.selector_fields["low"].setValue(0.05)
    dlg.weights.setCurrentIndex(0)                      # the shipped default
    out = dlg.result_settings()
    assert out.contours is False and out.palette == "rainbow" and out.selector["low"] == pytest.approx(0.05)
    assert out.weights == "" and out.device == "cpu"
    assert s.contours is True                            # the original is untouched
    assert out.tta == ""                                 # test-time flip: as the model card says ...
    from dmsl_core.pipeline import Predictor
    assert [dlg.tta.itemData(i) for i in range(dlg.tta.count())] == ["", *Predictor.TTA_MODES]   # every mode
    dlg.tta.setCurrentIndex(dlg.tta.findData("flip"))
    assert dlg.result_settings().tta == "flip"           # ... or forced
    assert AppSettings.from_json('{"tta": "sideways"}').tta == ""   # a bad stored value falls back
    assert out.refine == ""                              # box refinement likewise
    dlg.refine.setCurrentIndex(dlg.refine.findData("both"))
    assert dlg.result_settings().refine == "both"
    assert AppSettings.from_json('{"refine": "thrice"}').refine == ""


def test_test_time_settings_reach_the_live_model(qtbot, make_window, settings):
    import dataclasses

    from .conftest import FAST_DEMO, wait_frames
    win = make_window(FAST_DEMO, settings=dataclasses.replace(settings, tta="flip", refine="landmarks"))
    wait_frames(qtbot, win, 2)
    assert win.model.predictor.tta == "flip" and win.model.predictor.refine == "landmarks"
    qtbot.waitUntil(lambda: "flip TTA" in win.st_model.text(), timeout=3000)
    assert "refine landmarks" in win.st_model.text() and "3 model forwards" in win.st_model.toolTip()
    r = win.last_result
    assert r.landmarks[r.chosen].shape == (68, 2) and np.isfinite(r.landmarks[r.chosen]).all()


# ---- dialogs and the view -------------------------------------------------------------------------
def test_about_and_open_dialog(qtbot):
    from app.about import AboutDialog, about_html
    from app.live import ModelSpec, load_model
    from app.source_dialog import OpenSourceDialog
    from dmsl_core import __version__

    m = load_model(ModelSpec(weights="", fallback_config="dmsl-tiny", device="cpu"))
    html = about_html(m)
    assert __version__ in html and m.name in html and "CPU" in html
    dlg = AboutDialog(m)
    qtbot.addWidget(dlg)
    d = OpenSourceDialog(["demo", "cam:0"], "demo")
    qtbot.addWidget(d)
    d.tabs.setCurrentIndex(0)
    d.pair_vis.setText("/v/a.mp4")
    d.pair_th.setText("/v/b.mp4")
    d.pair_sync.setCurrentText("time")
    assert d.result_uri() == "pair:/v/a.mp4|/v/b.mp4?sync=time"
    d.tabs.setCurrentIndex(1)
    d.sbs_file.setText("/v/c.mp4")
    assert d.result_uri() == "sbs:/v/c.mp4?layout=lr"
    d.tabs.setCurrentIndex(4)
    d.cam_index.setValue(2)
    d.cam_kind.setCurrentIndex(d.cam_kind.findData("lepton"))
    assert d.result_uri() == "lepton:2"
    d.cam_second.setChecked(True)
    d.cam_kind.setCurrentIndex(0)
    d.cam_index.setValue(0)
    assert d.result_uri() == "cams:cam:0+lepton:1"
    d.tabs.setCurrentIndex(3)
    d.folder.setText("/data/set")
    d._accept()
    assert d.action == "browse" and d.result_uri() == "folder:/data/set"


def test_view_overlay_contours_and_options(qtbot):
    from app.views import CONTOUR_CONNECT, CONTOUR_IDX, SpectrumView

    v = SpectrumView("Visible")
    qtbot.addWidget(v)
    v.set_image(np.zeros((100, 120, 3), np.uint8))
    pts = np.random.default_rng(0).uniform(10, 90, (68, 2))
    v.set_landmarks(pts, np.array([10, 10, 80, 80.0]))
    assert sum(len(it.getData()[0]) for it in v.group_items.values()) == len(CONTOUR_IDX)   # coloured by region
    v.options.colour_groups = False
    v.set_landmarks(pts, np.array([10, 10, 80, 80.0]))
    x, y = v.contour_item.getData()
    assert len(x) == len(CONTOUR_IDX) == len(CONTOUR_CONNECT) and not CONTOUR_CONNECT[-1]
    v.options.contours = False
    v.options.box = False
    v.set_landmarks(pts, np.array([10, 10, 80, 80.0]))
    assert len(v.contour_item.getData()[0]) == 0 and len(v.box_item.getData()[0]) == 0
    assert all(len(it.getData()[0]) == 0 for it in v.group_items.values())
    v.set_temperatures([("nose tip", 50, 50, 34.5)])
    assert v.temp_items[0].isVisible() and "34.5" in v.temp_items[0].textItem.toPlainText()
    v.show_message("no thermal image in this source")
    assert v.message_item.textItem.toPlainText().startswith("no thermal")


def test_bool_refcount_guard_keeps_signals_safe():
    import sys


    from app.compat import bool_refcount_leaks, guard_bool_refcount

    class O(QtCore.QObject):
        sig = QtCore.Signal()

    o = O()
    o.sig.connect(lambda: None)
    if bool_refcount_leaks():                       # the binding has the bug: the guard must be on
        assert guard_bool_refcount()
    for _ in range(5000):
        o.sig.emit()
    assert sys.getrefcount(True) > 10_000 or not bool_refcount_leaks()
