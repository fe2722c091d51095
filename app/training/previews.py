"""The Train tab's validation images: a few validation images predicted with the run's last
checkpoint (``dmsl_core.runs.preview_predictions``, on a worker thread), against the ground truth."""
from __future__ import annotations

import math
from typing import Optional

import numpy as np
from PySide6 import QtCore, QtWidgets

from ..panel_common import fmt_num
from ..views import SpectrumView
from ..workers import FunctionWorker, WorkerHandle, start_worker
from .monitor import MODEL_NAMES

N_PREVIEW = 4


class PreviewGrid(QtWidgets.QWidget):
    """The "Validation images" tab: a label saying what is shown, and 2 x 2 views."""

    def __init__(self, parent: Optional[QtWidgets.QWidget] = None) -> None:
        super().__init__(parent)
        self.previews_shown = 0
        self._preview_handle: Optional[WorkerHandle] = None
        self._preview_pending = False
        self._want: tuple[str, list] = ("", [])   # the latest refresh's run and stages
        pwl = QtWidgets.QVBoxLayout(self)
        pwl.setContentsMargins(0, 4, 0, 0)
        self.preview_label = QtWidgets.QLabel("after the first epoch")
        self.preview_label.setObjectName("Dim")
        self.preview_label.setWordWrap(True)
        self.preview_label.setMinimumHeight(self.preview_label.fontMetrics().lineSpacing() * 4 + 2)
        self.preview_label.setAlignment(QtCore.Qt.AlignLeft | QtCore.Qt.AlignTop)
        pwl.addWidget(self.preview_label)
        grid = QtWidgets.QGridLayout()   # 2 x 2 beside the chart
        grid.setSpacing(4)
        self.preview_views = []
        for i in range(N_PREVIEW):
            v = SpectrumView(f"#{i + 1}")
            v.setMinimumSize(150, 150)   # title, image and readout line
            v.setSizePolicy(QtWidgets.QSizePolicy.Ignored, QtWidgets.QSizePolicy.Ignored)   # the tab never scrolls
            grid.addWidget(v, i // 2, i % 2)
            self.preview_views.append(v)
        pwl.addLayout(grid, 1)

    def refresh(self, run_dir: str, phases: list) -> None:
        """Predict a few validation images of ``run_dir`` with its last checkpoint, on a worker
        thread (at most one at a time; an epoch that ends meanwhile is previewed when it is done).
        ``phases``: the run's (model, stage) list, to say what the checkpoint is."""
        self._want = (run_dir, phases)
        if not run_dir:
            return
        if self._preview_handle is not None and self._preview_handle.running:
            self._preview_pending = True
            return
        from dmsl_core.runs import preview_predictions
        self._preview_pending = False

        def finished() -> None:
            if self._preview_pending:
                QtCore.QTimer.singleShot(0, lambda: self.refresh(*self._want))

        self._preview_handle = start_worker(
            FunctionWorker(preview_predictions, run_dir, N_PREVIEW), "dmsl-preview",
            on_result=self._show_preview, on_error=lambda m: self.preview_label.setText(f"preview failed: {m}"),
            on_finished=finished, parent=self, collect=True)

    def stop(self, timeout_ms: int = 10000) -> None:
        if self._preview_handle is not None:
            self._preview_handle.stop(timeout_ms)

    def _show_preview(self, items: list) -> None:
        """The checkpoint on a few validation images. While M_b trains, M_l is not trained yet (its
        points would mean nothing): the views show M_b's box only. Afterwards the points of the whole
        pipeline (M_b's box, then M_l) - a different figure from the chart's validation NME, which is
        M_l alone on the true face box over every validation image; the label says so."""
        from ..palettes import lut
        phases = self._want[1]
        ph = items[0]["phase"] if items else -1
        kind, stage = phases[ph] if 0 <= ph < len(phases) else ("landmark", 0)
        box_only = kind == "boundary"
        for v, it in zip(self.preview_views, items):
            img = it["image"]
            if img.dtype != np.uint8:
                from dmsl_core.preprocess import display_uint8
                img = display_uint8(img)
            v.set_image(img, lut=lut("iron") if it["spectrum"] == "th" and img.ndim == 2 else None)
            if box_only:
                v.set_landmarks(None, it.get("box"))
                v.set_info(f"{it['spectrum']} · {it['variation']} · M_b box")
            else:
                v.set_landmarks(it["pred"], it.get("box"))
                v.set_info(f"{it['spectrum']} · {it['variation']} · NME {fmt_num(it['nme'], 3)}")
            v.set_ground_truth(it["gt"])
        if items:
            name = (f"{MODEL_NAMES.get(kind, '')} stage {stage} epoch {items[0]['epoch']}" if ph < len(phases)
                    else "end of training")
            if box_only:
                what = "M_b's face box (M_l is not trained yet) · crosses ground truth"
            else:
                nmes = [it["nme"] for it in items if it["nme"] is not None and math.isfinite(it["nme"])]
                what = (f"dots: the whole pipeline (M_b's box, then M_l), NME {fmt_num(np.mean(nmes) if nmes else None, 3)}"
                        f" on these {len(items)} · the chart's NME: M_l on the true box, every validation image")
            self.preview_label.setText(f"checkpoint: {name} · {what}")
        self.previews_shown += 1
