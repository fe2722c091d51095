"""The settings (app/settings.py): JSON round trip and bad values, the QSettings store (recent sources,
window geometry), the settings dialog, and test-time settings reaching the live model."""
from __future__ import annotations

import numpy as np
import pytest

from app.settings import AppSettings, SettingsDialog, SettingsStore


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
