"""The Train tab's cross-validation table: each fold's status and test NME, and their mean (from
``RUN/cv.json`` and the folds' model cards, :func:`dmsl_core.runs.cv_summary`)."""
from __future__ import annotations

from typing import Optional

from PySide6 import QtWidgets

from dmsl_core.runs import cv_summary

from ..panel_common import fmt_num, title


class CVTable(QtWidgets.QFrame):
    """``QFrame#Panel`` with the table (``cv_table``); hidden until a cross-validation is shown."""

    def __init__(self, parent: Optional[QtWidgets.QWidget] = None) -> None:
        super().__init__(parent)
        self.setObjectName("Panel")
        self.summary: Optional[dict] = None
        cfl = QtWidgets.QVBoxLayout(self)
        cfl.addWidget(title("Cross-validation: test NME per fold"))
        self.cv_table = QtWidgets.QTableWidget(0, 6)
        self.cv_table.setHorizontalHeaderLabels(["fold", "status", "NME TH", "NME VIS", "NME all", "test images"])
        self.cv_table.verticalHeader().setVisible(False)
        self.cv_table.setEditTriggers(QtWidgets.QAbstractItemView.NoEditTriggers)
        self.cv_table.setMaximumHeight(200)
        cfl.addWidget(self.cv_table)
        self.hide()

    def show_run(self, root: str) -> Optional[str]:
        """Fill the table from the cross-validation in ``root`` and show it; the reason when it
        cannot be read (the table stays as it was)."""
        try:
            summary = cv_summary(root)
        except (OSError, ValueError, KeyError) as exc:
            return f"cannot read {root}: {exc}"
        self.summary = summary
        rows = summary["folds"] + [{"fold": "mean", "status": f"{summary['complete']} of {summary['n_folds']} done",
                                    **summary["mean"], "n_images": ""}]
        self.cv_table.setRowCount(len(rows))
        for i, r in enumerate(rows):
            vals = [str(r["fold"]), r["status"], fmt_num(r["th"]), fmt_num(r["vis"]), fmt_num(r["all"]),
                    str(r["n_images"])]
            for j, v in enumerate(vals):
                self.cv_table.setItem(i, j, QtWidgets.QTableWidgetItem(v))
        self.show()
        return None
