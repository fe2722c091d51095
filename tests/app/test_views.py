"""The spectrum view's overlay (app/views.py): contours, colour groups, box, temperatures, messages."""
from __future__ import annotations

import numpy as np


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
