"""Fixtures for the GUI tests: an isolated settings store, a tiny model, generated sources, and a
window factory that closes every window and checks that no worker thread is left running."""
from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest

from PySide6 import QtCore

from app.live import _MODEL_CACHE
from app.settings import AppSettings, SettingsStore
from app.workers import parked_threads

FAST_DEMO = "demo:?realtime=0&size=160x128"


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory) -> str:
    """An untrained dmsl-tiny model saved as a weights folder (fast, and independent of shipped models)."""
    from dmsl_core.models import create_models, get_config
    from dmsl_core.models.weights import save_weights

    cfg = get_config("dmsl-tiny")
    mb, ml = create_models(cfg, seed=0)
    out = tmp_path_factory.mktemp("tiny-model")
    save_weights(out, mb, ml, cfg, card={"name": "tiny-test", "untrained": True})
    return str(out)


@pytest.fixture
def store(tmp_path) -> SettingsStore:
    return SettingsStore(QtCore.QSettings(str(tmp_path / "settings.ini"), QtCore.QSettings.IniFormat))


@pytest.fixture
def settings(tmp_path, tiny_weights) -> AppSettings:
    # faces="one": the untrained tiny model's points mean nothing to a face tracker; these tests are
    # about the window, and tests/app/test_faces.py runs every face with the shipped model
    return AppSettings(weights=tiny_weights, fallback_config="dmsl-tiny", device="cpu",
                       record_dir=str(tmp_path / "rec"), faces="one")


def _grabbers_alive() -> list[str]:
    return [t.name for t in threading.enumerate() if t.is_alive() and t.name.startswith("dmsl-")]


@pytest.fixture
def make_window(qtbot, store, settings):
    """make_window(source=None, **kw) -> MainWindow; closed at teardown with every thread joined."""
    from app.main_window import MainWindow

    made = []

    def make(source=None, autostart=None, **kw):
        win = MainWindow(source=source, store=kw.pop("store", store), settings=kw.pop("settings", settings),
                         autostart=bool(source) if autostart is None else autostart, **kw)
        qtbot.addWidget(win)
        win.resize(1200, 760)
        win.show()
        made.append(win)
        return win

    yield make
    for win in made:
        win.close()
        assert win.live_handle is None
        assert not win.browser.running
    qtbot.waitUntil(lambda: parked_threads() == 0 and not _grabbers_alive(), timeout=5000)
    _MODEL_CACHE.clear()


def wait_frames(qtbot, win, n: int, timeout: int = 20000) -> None:
    start = win.drawn
    qtbot.waitUntil(lambda: win.drawn >= start + n or (win.live is None and win.last_error), timeout=timeout)
    assert not win.last_error, win.last_error
    assert win.drawn >= start + n


@pytest.fixture(scope="session")
def video_pair(tmp_path_factory) -> tuple[str, str]:
    """A generated visible + thermal MP4 pair (24 frames of the demo scene, 160x128)."""
    from dmsl_core.sources.demo import DemoScene

    d = tmp_path_factory.mktemp("pair")
    scene = DemoScene(size=(160, 128), fps=12.0, cycle=2.0)
    vis_p, th_p = d / "clip_vis.mp4", d / "clip_th.mp4"
    wv = cv2.VideoWriter(str(vis_p), cv2.VideoWriter_fourcc(*"mp4v"), 12.0, (160, 128))
    wt = cv2.VideoWriter(str(th_p), cv2.VideoWriter_fourcc(*"mp4v"), 12.0, (160, 128))
    assert wv.isOpened() and wt.isOpened()
    for i in range(24):
        p = scene.pair(i)
        wv.write(cv2.cvtColor(p.vis, cv2.COLOR_RGB2BGR))
        g = np.clip((p.th_celsius - 20.0) / 18.0 * 255, 0, 255).astype(np.uint8)
        wt.write(cv2.cvtColor(g, cv2.COLOR_GRAY2BGR))
    wv.release()
    wt.release()
    return str(vis_p), str(th_p)


@pytest.fixture(scope="session")
def dataset_folder(tmp_path_factory) -> str:
    """A small annotated dataset folder (manifest.csv, visible PNG, 16-bit centi-kelvin thermal, .pts)."""
    from dmsl_core.data.folder import PairRecord, write_manifest
    from dmsl_core.data.imageio import write_image
    from dmsl_core.data.pts import write_pts
    from dmsl_core.sources.demo import DemoScene

    root = tmp_path_factory.mktemp("dataset")
    scene = DemoScene(size=(160, 128), fps=5.0, cycle=4.0)
    recs = []
    for i in range(6):
        p = scene.pair(i * 3)
        (root / "img").mkdir(exist_ok=True)
        write_image(root / "img" / f"s{i % 3}_{i}_vis.png", p.vis)
        write_image(root / "img" / f"s{i % 3}_{i}_th.png", p.th)
        write_pts(root / "img" / f"s{i % 3}_{i}.pts", p.meta["landmarks_gt"])
        recs.append(PairRecord(subject=f"s{i % 3}", variation=f"v{i}", vis=f"img/s{i % 3}_{i}_vis.png",
                               th=f"img/s{i % 3}_{i}_th.png", landmarks=f"img/s{i % 3}_{i}.pts",
                               th_format="u16_ck", registered=True))
    write_manifest(root, recs)
    return str(root)
