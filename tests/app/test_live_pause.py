"""Paused is idle: a paused LiveWorker processes nothing (live and file sources), Step processes one
frame, Play resumes; a hidden Live tab pauses its source unless pinned; File > Close source."""
from __future__ import annotations

import pytest

from app.live import _MODEL_CACHE, LiveOptions, LiveWorker, ModelSpec
from app.workers import WorkerHandle

from .conftest import FAST_DEMO, wait_frames

PACED_DEMO = "demo:?size=160x128&fps=30"     # live: read through the grabber
SETTLE_MS = 400                              # how long a paused worker is watched (no clock is asserted)


@pytest.fixture(autouse=True)
def _fresh_model_cache():
    yield
    _MODEL_CACHE.clear()   # as make_window does: the next test loads its own model


def _start(tiny_weights, uri):
    w = LiveWorker(uri, ModelSpec(weights=tiny_weights, device="cpu", fallback_config="dmsl-tiny"), LiveOptions())
    w.frame_ready.connect(w.take_latest)     # the "window": takes every result
    h = WorkerHandle(w, "live").start()
    return w, h


@pytest.mark.parametrize("uri", [PACED_DEMO, FAST_DEMO], ids=["live", "file"])
def test_pause_stops_processing_step_takes_one_frame_play_resumes(qtbot, tiny_weights, uri):
    w, h = _start(tiny_weights, uri)
    try:
        qtbot.waitUntil(lambda: w.source is not None, timeout=30000)
        scene, rendered = w.source.scene, []
        render = scene.pair
        scene.pair = lambda *a, **k: (rendered.append(1), render(*a, **k))[1]   # counts the frames rendered
        qtbot.waitUntil(lambda: w.stats.processed >= 3, timeout=30000)
        assert w.source.live == (uri == PACED_DEMO)
        w.set_paused(True)
        qtbot.waitUntil(lambda: w.paused, timeout=5000)
        qtbot.wait(100)                       # the grabber may finish the frame it was rendering
        n, r = w.stats.processed, len(rendered)   # final once the loop has seen the pause
        qtbot.wait(SETTLE_MS)
        assert w.stats.processed == n         # paused: nothing processed
        assert len(rendered) == r             # and nothing rendered (the demo renders on demand)
        w.step()
        qtbot.waitUntil(lambda: w.stats.processed == n + 1, timeout=10000)
        qtbot.wait(SETTLE_MS)
        assert w.stats.processed == n + 1 and w.paused   # one frame, still paused
        w.set_paused(False)
        qtbot.waitUntil(lambda: w.stats.processed >= n + 4, timeout=30000)
    finally:
        assert h.stop(5000)                   # a paused loop blocked on its queue still sees the stop
    assert w.exception is None


def test_a_paused_worker_stops_at_once(qtbot, tiny_weights):
    w, h = _start(tiny_weights, PACED_DEMO)
    qtbot.waitUntil(lambda: w.stats.processed >= 1, timeout=30000)
    w.set_paused(True)
    qtbot.waitUntil(lambda: w.paused, timeout=5000)
    qtbot.wait(100)
    assert h.stop(5000) and w.done.is_set()


def test_hidden_live_tab_pauses_unless_pinned(qtbot, make_window):
    win = make_window(PACED_DEMO)
    wait_frames(qtbot, win, 2)
    w = win.live
    win.tabs.setCurrentWidget(win.browser)          # Live hidden: paused
    qtbot.waitUntil(lambda: w.paused, timeout=5000)
    assert not win.playing and win.act_play.text() == "Play"
    n = w.stats.processed
    qtbot.wait(SETTLE_MS)
    assert w.stats.processed == n
    win.tabs.setCurrentIndex(0)                      # shown again: plays on
    qtbot.waitUntil(lambda: w.stats.processed > n + 1, timeout=20000)
    assert win.playing and not w.paused
    win.act_pin.trigger()                            # pinned: keeps playing on another tab
    assert win.act_pin.isChecked()
    win.tabs.setCurrentWidget(win.browser)
    m = w.stats.processed
    qtbot.waitUntil(lambda: w.stats.processed > m + 1, timeout=20000)
    assert win.playing and not w.paused
    # paused by the user: coming back to the tab does not start it
    win.act_pin.trigger()
    win.tabs.setCurrentIndex(0)
    win.toggle_play()
    qtbot.waitUntil(lambda: w.paused, timeout=5000)
    win.tabs.setCurrentWidget(win.browser)
    win.tabs.setCurrentIndex(0)
    qtbot.wait(SETTLE_MS)
    assert w.paused and not win.playing


def test_close_source_stops_the_worker_and_clears_the_views(qtbot, make_window, tmp_path):
    win = make_window(FAST_DEMO)
    wait_frames(qtbot, win, 2)
    assert win.act_close.isEnabled() and win.act_close in win.menuBar().actions()[0].menu().actions()
    assert win.act_close.shortcut().toString() == "Ctrl+W"
    win.start_recording(str(tmp_path / "rec"), csv=True, jsonl=False, video=False)
    w = win.live
    qtbot.waitUntil(lambda: w.stats.recording_rows >= 2, timeout=10000)
    win.act_close.trigger()
    assert win.live is None and win.live_handle is None and w.done.is_set()
    assert win.st_source.text() == "no source" and win.uri == "" and not win.recording
    assert win.last_result is None and not win.act_play.isEnabled() and not win.act_close.isEnabled()
    for v in (win.vis_view, win.th_view):
        assert "no source" in v.message_item.toPlainText() and v.image_item.image is None
    assert win.temp_labels and all(lab.text() == "—" for lab in win.temp_labels.values())
    (csv_file,) = (tmp_path / "rec").iterdir()       # the recording was finished: renamed into place
    assert csv_file.suffix == ".csv" and len(csv_file.read_text().splitlines()) >= 3
    win.open_source(FAST_DEMO)                       # and a source opens again afterwards
    wait_frames(qtbot, win, 1)


def test_views_hand_pyqtgraph_display_bytes_and_keep_the_values(qtbot):
    """The fast image path (app/views.py: _display_image): a palette image becomes its uint8 index
    (clipped to the levels), a full-range uint8 image goes as is; the view keeps the values."""
    import numpy as np

    from app.palettes import lut
    from app.views import SpectrumView, _display_image
    th = np.linspace(20.0, 40.0, 64 * 80, dtype=np.float32).reshape(64, 80)
    idx, auto, kw = _display_image(th, (25.0, 35.0), lut("iron"))
    expect = np.clip(np.rint((th - 25.0) * 25.5), 0, 255).astype(np.uint8)
    assert idx.dtype == np.uint8 and np.abs(idx.astype(int) - expect).max() <= 1
    assert kw["levels"] is None and kw["lut"] is lut("iron") and auto is False
    rgb = np.zeros((8, 8, 3), np.uint8)
    assert _display_image(rgb, (0, 255), None)[0] is rgb
    v = SpectrumView("Thermal")
    qtbot.addWidget(v)
    v.set_image(th, levels=(25.0, 35.0), lut=lut("iron"))
    assert v.image_item.image.dtype == np.uint8 and v._image is th     # read-outs use the degrees
