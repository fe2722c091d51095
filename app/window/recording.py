"""Recording a source and exporting the current frame (a part of :class:`app.main_window.MainWindow`):
the window only asks; the live worker's frame loop records (dmsl_core.runner), a worker writes the PNG."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from PySide6 import QtCore, QtGui, QtWidgets

from dmsl_core.export import RecordSpec, recording_stem

from ..workers import FunctionWorker, WorkerHandle, start_worker


class RecordingExport:
    """Record start/stop and the PNG export of the current views."""

    def toggle_record(self) -> None:
        if self.recording:
            self.stop_recording()
        else:
            self.start_recording()

    def start_recording(self, folder: Optional[str] = None, csv: Optional[bool] = None,
                        jsonl: Optional[bool] = None, video: Optional[bool] = None) -> None:
        s = self.settings
        if self.live is None:
            self.act_record.setChecked(False)
            self.show_message("Nothing to record: open a source first (Ctrl+O).", "warn")
            return
        spec = RecordSpec(folder=folder or s.record_dir, stem=recording_stem(self.uri),
                          csv=s.record_csv if csv is None else csv, jsonl=s.record_json if jsonl is None else jsonl,
                          video=s.record_video if video is None else video)
        self.live.start_recording(spec)
        self.record_paths = [str(p) for p in spec.paths().values()]
        self._set_recording(True)
        self.record_label.setText("● REC starting…\n" + "\n".join(self.record_paths))

    def stop_recording(self) -> None:
        if self.live is not None:
            self.live.stop_recording()
        self._set_recording(False)

    def _set_recording(self, on: bool) -> None:
        self.recording = on
        self.act_record.setChecked(on)
        self.act_record.setText("■ Stop" if on else "● Record")

    def _on_recording(self, state: dict) -> None:
        if "error" in state:
            self._set_recording(False)
            self.show_message(state["error"] + " - check the folder in Settings > Recording.", "error")
            self.record_label.setText("Not recording (failed) · Ctrl+R starts")
            return
        if state.get("active"):
            self.record_paths = list(state.get("paths", []))
            self.record_label.setText("● REC 0 frames\n" + "\n".join(self.record_paths))
        else:
            paths = state.get("paths", [])
            dropped = state.get("dropped") or 0
            saved = f"Saved {state.get('rows', 0)} frames" + (f" ({dropped} dropped: the disk was too slow)"
                                                                if dropped else "")
            self.record_label.setText(saved + ":\n" + "\n".join(paths) if paths else "Not recording · Ctrl+R starts")
            self.statusBar().showMessage("Recording saved: " + ", ".join(paths), 8000)
            self.last_recording = paths

    def _open_record_dir(self) -> None:
        d = Path(self.settings.record_dir)
        d.mkdir(parents=True, exist_ok=True)
        QtGui.QDesktopServices.openUrl(QtCore.QUrl.fromLocalFile(str(d)))

    def grab_frame(self) -> QtGui.QImage:
        """The two views as they are on screen."""
        widget = self.views_box if self.tabs.currentIndex() == 0 else self.browser
        return widget.grab().toImage()

    def export_png(self, path: str) -> WorkerHandle:
        """Save the current views as PNG; the file is written on a worker thread."""
        img = self.grab_frame()

        def save(p: str, image: QtGui.QImage) -> str:
            out = Path(p)
            out.parent.mkdir(parents=True, exist_ok=True)
            tmp = out.with_name(out.name + ".part.png")
            if not image.save(str(tmp), "PNG"):
                raise OSError(f"{out}: could not write the PNG (disk full or no permission?)")
            os.replace(tmp, out)
            return str(out)

        h = start_worker(FunctionWorker(save, path, img), "export-png",
                         on_result=lambda p: self.statusBar().showMessage(f"Saved {p}", 6000),
                         on_error=lambda t: self.show_message(f"Export failed: {t}", "error"), parent=self)
        self.export_handles = [x for x in self.export_handles if x.running] + [h]
        return h

    def export_png_dialog(self) -> None:
        d = Path(self.settings.record_dir)
        default = str(d / f"{recording_stem(self.uri or 'frame')}.png")
        path, _ = QtWidgets.QFileDialog.getSaveFileName(self, "Export the current frame", default, "PNG (*.png)")
        if path:
            self.export_png(path if path.lower().endswith(".png") else path + ".png")
