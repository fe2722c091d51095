"""What a new user meets first (issue 20): a plain folder of photos in the folder browser, black visible
images left out of its mean, the Models tab's held-out figure, File › Open with a mistyped path,
the Train tab on a small dataset and the Evaluate summary's time."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.live import ModelSpec


def _scene_pair(i: int = 0):
    from dmsl_core.sources.demo import DemoScene

    return DemoScene(size=(160, 128), fps=5.0, cycle=4.0).pair(i * 3)


@pytest.fixture
def plain_folder(tmp_path):
    """Photos as a user has them: a colour JPEG, a 16-bit thermal PNG without a spectrum word, an 8-bit grey
    image named ``..._thermal``, and a ``_vis`` / ``_th`` pair - all in one folder."""
    from dmsl_core.data.imageio import write_image

    d = tmp_path / "photos"
    d.mkdir()
    p = _scene_pair(0)
    write_image(d / "a_photo.png", p.vis)
    write_image(d / "b_camera.png", p.th)                                   # uint16 grey, no name
    th8 = (p.th.astype(np.float32) - p.th.min()) / max(1, int(p.th.max()) - int(p.th.min())) * 255
    write_image(d / "c_thermal.png", th8.astype(np.uint8))                  # 8-bit grey, named thermal
    write_image(d / "d_vis.png", p.vis)
    write_image(d / "d_th.png", p.th)
    return d


def test_plain_folder_source_sorts_each_image_into_its_spectrum(plain_folder):
    from dmsl_core.sources import open_source

    with open_source(f"folder:{plain_folder}") as src:
        pairs = list(src)
        assert src.kind == "images" and len(pairs) == 4
        by_name = {(p.meta["files"]["vis"], p.meta["files"]["th"]): p for p in pairs}
        assert set(by_name) == {("a_photo.png", ""), ("", "b_camera.png"), ("", "c_thermal.png"),
                                ("d_vis.png", "d_th.png")}
        assert by_name[("", "b_camera.png")].vis is None and by_name[("", "b_camera.png")].th.dtype == np.uint16
        assert by_name[("", "c_thermal.png")].vis is None
        assert by_name[("a_photo.png", "")].th is None and by_name[("a_photo.png", "")].vis.shape[2] == 3
        assert set(src.info["spectra"]) == {"vis", "th"}
        assert src.paths(3) == {"vis": str(plain_folder / "d_vis.png"), "th": str(plain_folder / "d_th.png")}


def _open_browser(qtbot, folder, tiny_weights):
    from app.folder_browser import FolderBrowser

    b = FolderBrowser()
    qtbot.addWidget(b)
    b.resize(1100, 600)
    b.show()
    b.faces = "one"    # M_b on each image, as Evaluate does (every face: tests/app/test_faces.py)
    b.open_folder(str(folder), ModelSpec(weights=tiny_weights, device="cpu", fallback_config="dmsl-tiny"))
    qtbot.waitUntil(lambda: b.done, timeout=30000)
    return b


def test_folder_browser_shows_the_images_of_a_plain_folder(qtbot, plain_folder, tiny_weights, tmp_path):
    b = _open_browser(qtbot, plain_folder, tiny_weights)
    assert len(b.entries) == 4
    by_name = {e.name: e for e in b.entries}
    assert set(by_name) == {"a_photo", "b_camera", "c", "d"}
    assert set(by_name["a_photo"].paths) == {"vis"} and set(by_name["c"].paths) == {"th"}
    assert set(by_name["d"].paths) == {"vis", "th"}
    for e in b.entries:
        b.show_entry(e)
        for s, view in (("vis", b.vis_view), ("th", b.th_view)):
            if s in e.paths:   # the image is on screen, not a "no ... image" message
                assert view._image is not None and view.message_item.toPlainText() == "", (e.name, s)
            else:
                assert view._image is None and "no " in view.message_item.toPlainText(), (e.name, s)
    b.show_entry(by_name["a_photo"])
    img = b.vis_view._image
    assert img.shape[:2] == (128, 160)
    b.stop()


def test_folder_browser_of_one_spectrum_hides_the_empty_view(qtbot, tmp_path, tiny_weights):
    from dmsl_core.data.imageio import write_image

    d = tmp_path / "vis_only"
    d.mkdir()
    write_image(d / "one.png", _scene_pair(0).vis)
    write_image(d / "two.png", _scene_pair(1).vis)
    b = _open_browser(qtbot, d, tiny_weights)
    b.show_entry(b.entries[0])
    assert b.vis_view.isVisible() and not b.th_view.isVisible()
    b.stop()


@pytest.fixture
def dark_dataset(tmp_path):
    """Three annotated pairs; the second visible image is black ("lights off")."""
    from dmsl_core.data.folder import PairRecord, write_manifest
    from dmsl_core.data.imageio import write_image
    from dmsl_core.data.pts import write_pts

    root = tmp_path / "dark_ds"
    (root / "img").mkdir(parents=True)
    recs = []
    for i in range(3):
        p = _scene_pair(i)
        vis = p.vis if i != 1 else np.full_like(p.vis, 3)
        write_image(root / "img" / f"{i}_vis.png", vis)
        write_image(root / "img" / f"{i}_th.png", p.th)
        write_pts(root / "img" / f"{i}.pts", p.meta["landmarks_gt"])
        recs.append(PairRecord(subject=f"s{i}", variation="dark" if i == 1 else "neutral", vis=f"img/{i}_vis.png",
                               th=f"img/{i}_th.png", landmarks=f"img/{i}.pts", th_format="u16_ck", registered=True))
    write_manifest(root, recs)
    return root


def test_folder_browser_leaves_black_visible_images_out_like_evaluate(qtbot, dark_dataset, tiny_weights):
    from dmsl_core.evaluation import evaluate_folder

    b = _open_browser(qtbot, dark_dataset, tiny_weights)
    report = evaluate_folder(str(dark_dataset), tiny_weights, spectra=("vis",), device="cpu")
    assert b.n_dark == report["dropped_dark"] == 1
    dark = [e for e in b.entries if e.dark]
    assert len(dark) == 1 and dark[0].name == "1"
    vis = [e.counted("vis") for e in b.entries if not e.dark]
    assert f"mean NME visible {np.mean(vis):.4f} (2)" in b.summary.text()
    assert "1 black visible image left out" in b.summary.text()
    assert np.isfinite(dark[0].worst) and dark[0].worst == dark[0].nme["th"]   # its thermal NME still counts
    b.stop()


def test_eval_summary_says_how_long_it_took_and_the_progress_count_is_whole(qtbot, tmp_path, dark_dataset,
                                                                           tiny_weights):
    from app.eval_panel import EvalPanel

    ev = EvalPanel(runs_dir=str(tmp_path / "runs"))
    qtbot.addWidget(ev)
    ev.resize(1200, 760)
    ev.show()
    seen = []
    ev.progress.valueChanged.connect(lambda _v: seen.append(ev.progress.format()))
    ev.evaluate(weights=tiny_weights, data=str(dark_dataset), baselines=[])
    qtbot.waitUntil(lambda: ev.report is not None or bool(ev.error_text), timeout=60000)
    assert not ev.error_text, ev.error_text
    assert ev.seconds is not None and ev.seconds > 0
    assert ev.summary.text().endswith(f"Took {ev.seconds:.1f} s.")
    assert "1 black visible image left out" in ev.summary.text()
    counts = [f for f in seen if f not in ("", "starting…", "done")]
    assert counts and all(f.rsplit(": ", 1)[1].count("/") == 1 for f in counts)
    # a long model name is elided in the middle; the count stays whole
    text = ev._progress_text("a-model-with-a-really-very-long-run-folder-name-indeed", "82/86")
    assert text.endswith(": 82/86") and "…" in text
    qtbot.waitUntil(lambda: not ev.running, timeout=10000)
    assert ev.stop(20000)


def test_models_tab_shows_the_cards_heldout_figure_and_what_it_was_measured_on(qtbot, tmp_path):
    import json

    from app.about import card_rows
    from app.models_panel import COLS, ModelsPanel
    from dmsl_core.models.weights import CARD_NAME, assets_dir

    card = json.loads((assets_dir() / "models" / "dmsl-default" / CARD_NAME).read_text(encoding="utf-8"))
    h = card["heldout_eval"]
    panel = ModelsPanel(runs_dir=str(tmp_path / "runs"))
    qtbot.addWidget(panel)
    panel.resize(1400, 400)
    panel.show()
    row = next(i for i in range(panel.table.rowCount()) if panel.table.item(i, 0).text() == "dmsl-default")
    cell = {c: panel.table.item(row, j).text() for j, c in enumerate(COLS)}
    assert float(cell["NME TH"]) == pytest.approx(h["nme"]["th"], abs=5e-5)
    assert float(cell["NME VIS"]) == pytest.approx(h["nme"]["vis"], abs=5e-5)
    if (card.get("nme_test") or {}).get("th") is not None:   # a card with the training's own test figure
        assert float(cell["NME TH"]) != pytest.approx(card["nme_test"]["th"], abs=5e-5)   # not that one
    on = cell["NME measured on"]
    assert f"{len(h['test_subjects'])} held-out generated subjects" in on and f"{h['n_images']} images" in on
    assert f"refine {h['refine']}" in on and f"tta {h['tta']}" in on
    head = dict(card_rows(card))["held-out NME"]          # the About dialog's card: the same figure
    assert f"TH {h['nme']['th']:.4f}" in head and on in head


def test_open_a_mistyped_path_says_no_such_file_and_clears_the_previous_source(qtbot, make_window, tmp_path,
                                                                              settings):
    import dataclasses

    from tests.app.conftest import FAST_DEMO, wait_frames

    # the shipped model finds the demo's face, so the previous source leaves temperatures on screen
    win = make_window(FAST_DEMO, settings=dataclasses.replace(settings, weights="dmsl-default"))
    wait_frames(qtbot, win, 3)
    qtbot.waitUntil(lambda: win.spectrum_panel.switches.text() != "" and win.pos_label.text() != ""
                    and any(lab.text() != "—" for lab in win.temp_labels.values()), timeout=20000)
    missing = tmp_path / "holiday" / "vidoe.mp4"
    with qtbot.waitSignal(win.liveFinished, timeout=15000):
        win.open_source(str(missing))
    text = win.banner.text()
    assert f"No such file: {missing}" in text and "Camera" not in text and "plugged" not in text
    assert all(lab.text() == "—" for lab in win.temp_labels.values())
    assert win.spectrum_panel.switches.text() == "" and win.pos_label.text() == "" and win.st_frame.text() == ""
    with qtbot.waitSignal(win.liveFinished, timeout=15000):
        win.open_source(f"folder:{tmp_path / 'no_folder'}")
    assert f"No such folder: {tmp_path / 'no_folder'}" in win.banner.text()


def test_train_tab_on_a_two_subject_dataset_shows_it_and_offers_only_the_split_that_fits(qtbot, tmp_path):
    from app.training import TrainOptions, TrainPanel
    from dmsl_core.data.synth import generate_dataset

    data = tmp_path / "two"
    generate_dataset(data, subjects=2, seed=0, size=(96, 80), variations=["neutral", "smile"])
    panel = TrainPanel(runs_dir=str(tmp_path / "runs"))
    qtbot.addWidget(panel)
    panel.resize(1200, 900)
    panel.show()
    assert panel.fold.value() == 0                      # no dataset yet: the paper's fold 0
    panel.data_edit.setText(str(data))
    info = panel.dataset
    assert info is not None and info.n_subjects == 2 and info.n_vis == 4 and info.n_th == 4
    assert "2 subjects · 4 visible, 4 thermal images" in panel.data_info.text()
    assert "too few subjects for 10 folds" in panel.data_info.text()
    assert (panel.fold.minimum(), panel.fold.maximum()) == (-1, -1)   # only "no fold" is offered
    assert panel.fold.text() == "no fold (every 5th subject validates)"
    assert panel.options().fold is None
    assert not panel.cv_check.isEnabled()
    # a run that would fail at once for its split is not started: one clear message instead
    o = TrainOptions(data=str(data), out=str(tmp_path / "r"), config="dmsl-tiny", fold=3, device="cpu")
    assert not panel.start(o)
    assert "2 subject(s) cannot make the 10-fold split" in panel.message.text() and not panel.running
    o2 = TrainOptions(data=str(data), out=str(tmp_path / "r"), config="dmsl-tiny", fold=None, cv_folds=10)
    assert not panel.start(o2)
    assert "2 subject(s) cannot make 10 cross-validation folds" in panel.message.text() and not panel.running
    assert panel.shutdown()


def test_main_py_without_a_display_says_how_to_run_it(tmp_path, tiny_weights):
    import os
    import subprocess
    import sys
    from pathlib import Path

    from app.__main__ import display_missing

    assert display_missing({}, "linux") and not display_missing({"DISPLAY": ":0"}, "linux")
    assert not display_missing({"QT_QPA_PLATFORM": "offscreen"}, "linux") and not display_missing({}, "win32")
    root = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    r = subprocess.run([sys.executable, str(root / "main.py"), "--weights", tiny_weights], capture_output=True,
                       text=True, timeout=120, env=env)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "no display" in r.stderr and "QT_QPA_PLATFORM=offscreen" in r.stderr and "xvfb-run" in r.stderr
    assert "xcb" not in r.stderr and "Traceback" not in r.stderr


def test_a_thermal_only_source_gets_the_whole_width_and_no_nan_caption(qtbot, make_window, tmp_path):
    from dmsl_core.data.imageio import write_image
    from dmsl_core.export import overlay_caption
    from tests.app.conftest import wait_frames

    d = tmp_path / "thermal_only"
    d.mkdir()
    for i in range(12):
        write_image(d / f"frame{i:03d}.png", _scene_pair(i).th)     # 16-bit grey: thermal by its pixels
    win = make_window(f"folder:{d}")
    qtbot.waitUntil(lambda: win.last_result is not None or bool(win.last_error), timeout=20000)
    assert not win.last_error, win.last_error
    assert win.info["spectra"] == ("th",)
    assert win.vis_view.isHidden() and not win.th_view.isHidden()
    assert win.th_view.width() > 0.8 * win.views_box.width()
    cap = overlay_caption(win.last_result)
    assert "nan" not in cap.lower() and cap.startswith(f"#{win.last_result.index} ")
    win.open_source("demo:?realtime=0&size=160x128")          # back to a pair: both views again
    wait_frames(qtbot, win, 1)
    assert not win.vis_view.isHidden() and not win.th_view.isHidden()


def _demo_glasses_frames(size=(320, 256)):
    """(frames through the demo's glasses, frames without) of the first 100 frames of a 20 s cycle at 5 fps."""
    from dmsl_core.sources.demo import DemoScene

    scene = DemoScene(size=size, fps=5.0, cycle=20.0)
    pairs = [scene.pair(i) for i in range(0, 100, 2)]
    return ([p for p in pairs if p.meta["state"]["occlusion"] == "glasses"],
            [p for p in pairs if p.meta["state"]["occlusion"] != "glasses"])


def test_eye_temperatures_through_the_demos_glasses_are_flagged_covered():
    from dmsl_core.covered import covered_regions, face_median
    from dmsl_core.temperatures import temperatures_at

    glasses, plain = _demo_glasses_frames()
    assert len(glasses) >= 3 and len(plain) >= 30
    for p in glasses:
        pts = p.meta["landmarks_gt_th"]
        t = temperatures_at(p.th_celsius, pts)
        cov = covered_regions(p.th_celsius, pts, t)
        assert "inner_eye_r" in cov and t["inner_eye_r"] < 30, (p.index, t)    # the lens, not the eye
        assert "covered" in cov["inner_eye_r"] and f"{t['inner_eye_r']:.1f} °C" in cov["inner_eye_r"]
        assert "forehead" not in cov and "nose_tip" not in cov
    for p in plain:
        pts = p.meta["landmarks_gt_th"]
        t = temperatures_at(p.th_celsius, pts)
        assert covered_regions(p.th_celsius, pts, t) == {}, (p.index, t, face_median(p.th_celsius, pts))


def test_the_live_view_marks_a_covered_eye_and_not_a_bare_one(qtbot, make_window, settings):
    import dataclasses

    from dmsl_core.pipeline import Predictor
    from dmsl_core.stream import StreamConfig, StreamProcessor

    win = make_window(None, settings=dataclasses.replace(settings, weights="dmsl-default"))
    proc = StreamProcessor(Predictor.from_weights("dmsl-default", device="cpu"),
                           StreamConfig(mode="both", smoothing=False))
    glasses, plain = _demo_glasses_frames()
    for pair, covered in ((glasses[0], True), (plain[0], False)):
        proc.reset()
        r = proc.process(pair)
        win.draw_result(r)
        lab = win.temp_labels["inner_eye_r"]
        assert lab.text().startswith(f"{r.temperatures['inner_eye_r']:.1f} °C")
        assert ("covered" in lab.text()) == covered and ("glasses" in lab.toolTip()) == covered
        texts = [it.toPlainText() for it in win.th_view.temp_items if it.isVisible()]
        assert any(t.endswith("° covered") for t in texts) == covered, texts
        assert "covered" not in win.temp_labels["forehead"].text()


def test_the_train_form_is_remembered_and_a_vanished_dataset_is_dropped(qtbot, make_window, store, tmp_path):
    import shutil

    from dmsl_core.data.synth import generate_dataset

    data = tmp_path / "ds"
    generate_dataset(data, subjects=2, seed=0, size=(96, 80), variations=["neutral"])
    win = make_window(None, settings=None)          # the settings come from the store, as in a real session
    tp = win.train_panel
    tp.data_edit.setText(str(data))
    tp.epochs.setValue(7)
    tp.head_epochs.setValue(5)
    tp.stage3.setChecked(True)
    tp.joint_epochs.setValue(3)
    tp.batch.setValue(8)
    tp.spectra_box.setCurrentIndex(tp.spectra_box.findData("th"))
    tp.mirror.setChecked(False)
    tp.config_box.setCurrentText("dmsl-tiny")
    before = tp.form_state()
    assert before["fold"] is None                  # 2 subjects: only "no fold" fits
    win.close()

    win2 = make_window(None, settings=None)
    tp2 = win2.train_panel
    assert tp2.form_state() == before
    assert tp2.data_edit.text() == str(data) and tp2.epochs.value() == 7 and tp2.stage3.isChecked()
    assert tp2.spectra_box.currentData() == "th" and not tp2.mirror.isChecked()
    assert "2 subjects" in tp2.data_info.text()    # the dataset is shown again
    tp2.fold.setValue(-1)
    win2.close()

    shutil.rmtree(data)                            # the dataset has gone since
    win3 = make_window(None, settings=None)
    tp3 = win3.train_panel
    assert tp3.data_edit.text() == "" and tp3.dataset is None and not tp3.message.text()
    assert tp3.epochs.value() == 7 and tp3.config_box.currentText() == "dmsl-tiny"
    tp3.restore_form({"epochs": "many", "stages": [9], "fold": True, "data": 3})   # a hand-edited store
    assert tp3.epochs.value() == 7 and tp3.stage1.isChecked() == (1 in before["stages"])


def _feed_training(panel, seed: int = 3):
    """A run's events as ``dmsl train --events-jsonl`` prints them: M_b stages 1-2 (losses only), then
    M_l stages 1-2 (losses of 0.001-0.0001, the validation NME from stage 2); returns the epoch events."""
    from dmsl_core.training import TrainConfig, TrainEvent

    rng = np.random.default_rng(seed)
    panel._phases = TrainConfig(train_models="both", stages=(1, 2)).phases()
    panel._make_bars()
    fed = []
    for ph, (model, stage) in enumerate(panel._phases):
        n = 4 if stage == 1 else 6
        best = None
        for ep in range(1, n + 1):
            loss = 10 ** -(2 + ph * 0.4 + ep * 0.05) * (1 + 0.1 * rng.random())
            nme = (0.09 - 0.006 * ep + 0.01 * rng.random()) if (model == "landmark" and stage == 2) else None
            score = nme if nme is not None else loss * 1.2
            e = TrainEvent(kind="epoch", phase=ph, n_phases=4, model=model, stage=stage, epoch=ep, epochs=n,
                           loss=loss, val_loss=loss * 1.2, val_nme=nme, best=best is None or score < best)
            best = score if best is None or score < best else best
            panel._on_event(e)
            fed.append(e)
    return fed


def test_train_chart_integer_epochs_plain_numbers_best_epoch_and_no_jump_on_the_banner(qtbot, tmp_path):
    from app.training import TrainPanel

    panel = TrainPanel(runs_dir=str(tmp_path / "runs"))
    qtbot.addWidget(panel)
    panel.resize(1340, 740)      # the Train tab in the default 1360 x 860 window
    panel.show()
    qtbot.waitExposed(panel)
    fed = _feed_training(panel)
    QtWidgetsApp = __import__("PySide6.QtWidgets", fromlist=["QApplication"]).QApplication
    QtWidgetsApp.processEvents()
    # readable: the chart is tall, each panel has room for its curves
    assert panel.chart.height() >= 280
    assert panel.minimumSizeHint().height() <= 740       # the tab's page does not scroll at that size
    assert panel.loss_plot.vb.height() >= 120 and panel.nme_plot.vb.height() >= 70
    # one epoch axis: the NME panel follows the loss panel's x range; whole epochs only
    assert panel.nme_plot.vb.viewRange()[0] == pytest.approx(panel.loss_plot.vb.viewRange()[0])
    (x0, x1), axis = panel.nme_plot.vb.viewRange()[0], panel.nme_plot.getAxis("bottom")
    ticks = [t for _, level in axis.tickValues(x0, x1, axis.width()) for t in level]
    assert ticks and all(float(t).is_integer() for t in ticks)
    assert all("." not in s for s in axis.tickStrings(ticks, 1.0, 1.0))
    # plain numbers: no SI prefix in the labels, no 7·10² tick labels on the log loss axis
    for plot in (panel.loss_plot, panel.nme_plot):
        label = plot.getAxis("left").labelString()
        assert "x0.0" not in label and "(x" not in label, label
    la = panel.loss_plot.getAxis("left")
    (y0, y1) = panel.loss_plot.vb.viewRange()[1]
    strings = [s for _, level in la.tickValues(y0, y1, la.height()) for s in la.logTickStrings(level, 1.0, 1.0)]
    assert strings and all("·" not in s and "<sup>" not in s and "×" not in s for s in strings), strings
    assert all(float(s) > 0 for s in strings)
    # the best epoch is marked at the lowest validation NME fed (x: epochs over all stages in order)
    xs = {id(e): i + 1 for i, e in enumerate(fed)}
    best_e = min((e for e in fed if e.val_nme is not None), key=lambda e: e.val_nme)
    assert panel.best_epoch == xs[id(best_e)]
    bx, by = panel.best_nme_mark.getData()
    assert list(bx) == [xs[id(best_e)]] and by[0] == pytest.approx(best_e.val_nme)
    assert all(ln.isVisible() and ln.value() == xs[id(best_e)] for ln in panel.best_lines)
    assert f"best validation NME {best_e.val_nme:.4f} at epoch {xs[id(best_e)]}" in panel.best_label.text()
    # the banner of a finished or cancelled run does not move the chart
    before = (panel.chart.mapTo(panel, panel.chart.rect().topLeft()), panel.chart.size(),
              panel.loss_plot.vb.size(), panel.nme_plot.vb.size())
    panel.grab().save(str(tmp_path / "train_before.png"))
    panel.message.show_message("Training cancelled. Resume continues from the last checkpoint (M_l stage 2, "
                               "after epoch 6). " + "A long message wraps. " * 20, "warn")
    QtWidgetsApp.processEvents()
    assert panel.message.isVisible()
    after = (panel.chart.mapTo(panel, panel.chart.rect().topLeft()), panel.chart.size(),
             panel.loss_plot.vb.size(), panel.nme_plot.vb.size())
    assert after == before
    panel.grab().save(str(tmp_path / "train_after.png"))
    panel.message.clear()
    QtWidgetsApp.processEvents()
    assert (panel.chart.mapTo(panel, panel.chart.rect().topLeft()), panel.chart.size()) == before[:2]
    assert panel.shutdown()


def test_the_model_card_opens_as_a_card_with_the_json_one_tab_away(qtbot, tmp_path):
    import json

    from app.models_panel import CardDialog, ModelsPanel
    from dmsl_core.models.weights import CARD_NAME, assets_dir

    card = json.loads((assets_dir() / "models" / "dmsl-default" / CARD_NAME).read_text(encoding="utf-8"))
    panel = ModelsPanel(runs_dir=str(tmp_path / "runs"))
    qtbot.addWidget(panel)
    panel.show()
    row = next(i for i in range(panel.table.rowCount()) if panel.table.item(i, 0).text() == "dmsl-default")
    panel.table.selectRow(row)
    panel.card_btn.click()
    dlg = panel._card_dialog
    assert isinstance(dlg, CardDialog) and dlg.isVisible()
    text = dlg.card_view.toPlainText()
    assert "{" not in text and '":' not in text              # not a JSON dump
    h = card["heldout_eval"]
    assert f"{h['nme']['th']:.4f}" in text and f"{h['nme']['vis']:.4f}" in text
    for name, ev in (card.get("real_eval") or {}).items():   # the real faces, per spectrum, with Dlib beside
        assert name in text and f"{ev['nme']['th']:.4f}" in text and f"{ev['nme']['vis']:.4f}" in text
        assert f"{100 * ev['failure_rate_0.08']:.1f} %" in text
        dl = ev["baselines"]["dlib"]
        assert f"{dl['nme']['vis']:.4f}" in text and f"TH {dl['misses']['th']}" in text
    for src in card["training_sources"]:
        assert src["set"] in text
    for k, v in card["inference"].items():
        assert f"{k} {v}" in text
    fps = card["bench"]["pipeline"][0]["fps"]["1"]
    assert f"{fps:.0f}" in text and "Speed" in text
    assert json.loads(dlg.json_view.toPlainText()) == card   # the JSON, whole, one tab away
    dlg.tabs.setCurrentIndex(0)
    dlg.grab().save(str(tmp_path / "card.png"))
    dlg.close()


def test_folder_browser_exports_the_folder_as_dmsl_predict_does(qtbot, tmp_path, tiny_weights):
    import json

    from skimage import data as skdata

    from dmsl_core.cli import main
    from dmsl_core.data.imageio import read_image, write_image

    d = tmp_path / "photos"
    d.mkdir()
    write_image(d / "astronaut.png", skdata.astronaut())              # a real face (public domain, NASA)
    yy, xx = np.mgrid[0:240, 0:320]
    write_image(d / "wall.png", np.dstack([(xx * 0.6).astype(np.uint8), (yy * 0.8).astype(np.uint8),
                                           np.full_like(xx, 90, dtype=np.uint8)]))   # no face
    b = _open_browser(qtbot, d, tiny_weights)
    said = []
    b.message.connect(lambda text, err: said.append((text, err)))
    assert b.export_btn.isEnabled()
    out = tmp_path / "export"
    h = b.export(str(out))
    assert h is not None and b.running and h.thread is not None   # on a worker thread, not the Qt thread
    qtbot.waitUntil(lambda: b.export_result is not None or bool(b.export_error), timeout=60000)
    assert not b.export_error, b.export_error
    res = b.export_result
    assert res["n_images"] == 2 and res["failed"] == 0
    got = json.loads((out / "predictions.json").read_text(encoding="utf-8"))
    by_name = {Path(r["image"]).name: r for r in got}
    assert len(by_name["astronaut.png"]["faces"]) >= 1 and by_name["wall.png"]["faces"] == []
    assert res["no_face"] == [str(d / "wall.png")]
    face = by_name["astronaut.png"]["faces"][0]
    assert len(face["landmarks"]) == 68 and face["detector"] == "yunet" and face["spectrum"] == "vis"
    csv_rows = (out / "predictions.csv").read_text(encoding="utf-8").splitlines()
    assert len(csv_rows) == 1 + res["n_faces"] and csv_rows[1].startswith(str(d / "astronaut.png") + ",0,")
    assert sorted(p.name for p in (out / "pts").iterdir()) == [f"astronaut_face{i}.pts"
                                                                for i in range(res["n_faces"])]
    overlays = sorted(p.name for p in (out / "overlays").iterdir())
    assert overlays == ["astronaut.png", "wall.png"]
    assert read_image(out / "overlays" / "wall.png").shape[:2] == (240, 320)
    # one implementation: dmsl predict on the same folder writes the same JSON and CSV
    cli = tmp_path / "cli"
    rc = main(["predict", str(d), "--weights", tiny_weights, "--device", "cpu", "--json", str(cli / "p.json"),
               "--csv", str(cli / "p.csv")])
    assert rc == 0
    assert json.loads((cli / "p.json").read_text(encoding="utf-8")) == got
    assert (cli / "p.csv").read_text(encoding="utf-8") == (out / "predictions.csv").read_text(encoding="utf-8")
    assert any("no face in 1: wall.png" in t and not err for t, err in said), said
    b.stop()


def test_dmsl_predict_prints_one_line_per_image_and_the_json_goes_to_the_file(tmp_path, tiny_weights, capsys):
    import json

    from dmsl_core.cli import main
    from dmsl_core.data.imageio import write_image

    d = tmp_path / "imgs"
    d.mkdir()
    for i in range(3):
        write_image(d / f"f{i}.png", _scene_pair(i).vis)
    rc = main(["predict", str(d), "--weights", tiny_weights, "--device", "cpu", "--detector", "none",
               "--json", str(tmp_path / "p.json")])
    assert rc == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [f"f{i}.png: 1 face (M_b, no detector)" for i in range(3)] + \
        [f"3 image(s), 3 face(s), 0 failed -> {tmp_path / 'p.json'}"]
    got = json.loads((tmp_path / "p.json").read_text(encoding="utf-8"))
    assert [len(r["faces"][0]["landmarks"]) for r in got] == [68, 68, 68]


@pytest.mark.parametrize("faces", ["every", "one"])
def test_settings_dialog_cuts_no_text_at_its_narrowest(qtbot, faces):
    from PySide6 import QtWidgets

    from app.settings import AppSettings, SettingsDialog

    d = SettingsDialog(AppSettings(faces=faces))
    qtbot.addWidget(d)
    d.show()
    d.resize(d.minimumWidth(), d.height())     # a small screen caps a dialog near there (2/3 of an 800 px screen)
    tabs = d.findChild(QtWidgets.QTabWidget)
    for i in range(tabs.count()):
        tabs.setCurrentIndex(i)
        QtWidgets.QApplication.processEvents()
        for w in tabs.widget(i).findChildren(QtWidgets.QAbstractButton):
            if w.isVisible():                  # a checkbox's text never wraps: it must fit whole
                assert w.width() >= w.sizeHint().width(), (tabs.tabText(i), w.text(), w.width())
    assert d.reuse_box.text() == "Track the face box between frames"
    assert d.reuse_hint.wordWrap() and "skipped while the face is tracked" in d.reuse_hint.text()
    assert d.reuse_hint.isEnabled() == (faces == "one") == d.reuse_box.isEnabled()


def test_dmsl_run_video_of_a_thermal_only_folder_is_the_thermal_panel_alone(tmp_path, tiny_weights):
    import cv2

    from dmsl_core.cli import main
    from dmsl_core.data.imageio import write_image

    d = tmp_path / "thermal_only"
    d.mkdir()
    for i in range(3):
        write_image(d / f"frame{i:03d}.png", _scene_pair(i).th)     # 160 x 128, 16-bit grey: thermal
    rc = main(["run", "--source", f"folder:{d}", "--weights", tiny_weights, "--device", "cpu", "--faces", "one",
               "--video", str(tmp_path / "th.mp4"), "--quiet"])
    assert rc == 0
    cap = cv2.VideoCapture(str(tmp_path / "th.mp4"))
    try:
        assert (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (160, 128)  # not 320
        ok, frame = cap.read()
    finally:
        cap.release()
    assert ok and frame[40:, :].mean() > 20      # the thermal picture, no black "no visible" half
    # a source of both spectra keeps both panels
    rc = main(["run", "--source", "demo:?realtime=0&size=160x128", "--max-frames", "2", "--weights", tiny_weights,
               "--device", "cpu", "--faces", "one", "--video", str(tmp_path / "both.mp4"), "--quiet"])
    assert rc == 0
    cap = cv2.VideoCapture(str(tmp_path / "both.mp4"))
    assert cap.get(cv2.CAP_PROP_FRAME_WIDTH) == 320
    cap.release()


def test_the_exports_flag_a_covered_eye_as_the_live_view_does(tmp_path):
    import csv
    import json

    from dmsl_core.export import CSVExporter, JSONLExporter, overlay_caption
    from dmsl_core.pipeline import Predictor
    from dmsl_core.stream import StreamConfig, StreamProcessor

    proc = StreamProcessor(Predictor.from_weights("dmsl-default", device="cpu"),
                           StreamConfig(mode="both", smoothing=False))
    glasses, plain = _demo_glasses_frames()
    results = []
    for pair in (glasses[0], plain[0]):
        proc.reset()
        results.append(proc.process(pair))
    with CSVExporter(tmp_path / "t.csv") as cw, JSONLExporter(tmp_path / "t.jsonl") as jw:
        for r in results:
            cw.write(r)
            jw.write(r)
    rows = list(csv.DictReader(open(tmp_path / "t.csv", newline="", encoding="utf-8")))
    lines = [json.loads(s) for s in (tmp_path / "t.jsonl").read_text(encoding="utf-8").splitlines()]
    g, p = results
    assert g.temperatures["inner_eye_r"] < 30 and p.temperatures["inner_eye_r"] > 30   # lens / bare eye
    assert set(rows[0]["temp_covered"].split(";")) == {"inner_eye_r", "inner_eye_l"} and rows[1]["temp_covered"] == ""
    assert float(rows[0]["temp_inner_eye_r"]) == pytest.approx(g.temperatures["inner_eye_r"], abs=1e-3)
    assert lines[0]["temperatures_covered"] == ["inner_eye_l", "inner_eye_r"] and lines[1]["temperatures_covered"] == []
    assert overlay_caption(g).endswith(f"canthus={g.temperatures['inner_eye_r']:.1f}C covered")
    assert overlay_caption(p).endswith(f"canthus={p.temperatures['inner_eye_r']:.1f}C")


def test_close_source_leaves_nothing_of_it_on_screen_and_the_train_tab_pauses_it(qtbot, make_window):
    from tests.app.conftest import FAST_DEMO, wait_frames

    win = make_window(FAST_DEMO)
    wait_frames(qtbot, win, 2)
    assert win.uri == FAST_DEMO
    win.show_tab(win.train_panel)                  # the live view out of the way while training
    qtbot.waitUntil(lambda: not win.playing, timeout=5000)
    qtbot.wait(300)                                # what was on its way when it paused is drawn
    n, done = win.drawn, win.live.stats.processed
    qtbot.wait(300)
    assert win.drawn == n and win.live.stats.processed == done     # then nothing is processed or drawn
    win.tabs.setCurrentIndex(0)
    wait_frames(qtbot, win, 1)
    win.close_source()
    qtbot.wait(200)                                # a notice the closed worker had queued is dropped
    assert win.live is None and win.st_source.text() == "no source"
    assert win.statusBar().currentMessage() == "", win.statusBar().currentMessage()   # no stale "opening …"
    assert all(lab.text() == "—" for lab in win.temp_labels.values()) and win.st_frame.text() == ""
    assert "no source" in win.vis_view.message_item.toPlainText()
    assert not win.act_close.isEnabled() and not win.act_play.isEnabled()   # nothing left to close or play
