"""The main window on sources that give nothing (issue 19): the views say what happened instead of
staying at "opening…"."""
from __future__ import annotations

import numpy as np

from dmsl_core.data.imageio import write_image
from tests.core.test_faults import _video_without_frames


def _view_texts(win) -> list[str]:
    return [v.message_item.toPlainText() for v in (win.vis_view, win.th_view)]


def test_a_video_that_decodes_to_no_frame_is_said_in_the_views(qtbot, make_window, tmp_path):
    bad = _video_without_frames(tmp_path / "empty.avi")
    win = make_window(autostart=False)
    with qtbot.waitSignal(win.liveFinished, timeout=15000):
        win.open_source(str(bad))
    assert "empty.avi" in win.banner.text() and "decodes to no frame" in win.banner.text()
    assert all(t and t != "opening…" for t in _view_texts(win)), _view_texts(win)


def test_a_source_that_ends_without_a_frame_is_said_in_the_views(qtbot, make_window, tmp_path):
    folder = tmp_path / "pics"
    folder.mkdir()
    write_image(folder / "a.png", np.full((32, 32, 3), 90, np.uint8))
    (folder / "b.png").write_bytes(b"not an image")
    (folder / "a.png").write_bytes(b"\x89PNG cut")           # every image unreadable: skipped, no frame
    win = make_window(autostart=False)
    with qtbot.waitSignal(win.liveFinished, timeout=15000):
        win.open_source(f"folder:{folder}")
    assert "ended without giving a frame" in win.banner.text() and "b.png" in win.banner.text()
    assert all(t and t != "opening…" for t in _view_texts(win)), _view_texts(win)
