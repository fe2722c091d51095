"""The About dialog (app/about.py) and the Open source dialog (app/source_dialog.py)."""
from __future__ import annotations


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
