"""Drawing a result on the Live tab: both views, faces, temperatures, the selector panel and chart,
the position and the status bar (a part of :class:`app.main_window.MainWindow`)."""
from __future__ import annotations

import math
import time

import numpy as np

from dmsl_core.temperatures import temperature_points

from ..palettes import lut
from ..views import faces_phrase

TEMP_LABELS = {"inner_eye_r": "inner eye (right)", "inner_eye_l": "inner eye (left)", "forehead": "forehead",
               "nose_tip": "nose tip"}
# where each label sits relative to its point (pyqtgraph TextItem anchors): eyes outwards, forehead
# above, nose below - so the four never overlap on a small face
TEMP_ANCHORS = {"inner_eye_r": (1.15, 0.5), "inner_eye_l": (-0.15, 0.5), "forehead": (0.5, 1.15),
                "nose_tip": (0.5, -0.2)}


class LiveDrawing:
    """Draws each FrameResult the live worker hands over (the newest only: the mailbox)."""

    def _on_frame_ready(self) -> None:
        w = self.live
        if w is None or self.sender() is not w:
            return
        r = w.take_latest()
        if r is not None:
            self.draw_result(r)

    def draw_result(self, r, count: bool = True) -> None:
        """Draw one FrameResult on both views and the panels."""
        self.last_result = r
        pair = r.pair
        s = self.settings
        for img, view in ((None if pair is None else pair.vis, self.vis_view),
                          (None if pair is None else pair.th, self.th_view)):
            if img is not None and view.isHidden():   # a folder whose later images are of the other spectrum
                view.show()
        # visible
        if pair is not None and pair.vis is not None:
            self.vis_view.set_image(pair.vis)
        elif pair is not None:
            self.vis_view.show_message("no visible image in this source")
        # thermal
        if pair is not None and pair.th is not None:
            disp = pair.th_celsius if pair.th_celsius is not None else pair.th
            levels = self._th_levels.update(disp) if count or self._th_levels.levels is None else self._th_levels.levels
            self.th_view.set_image(disp, levels=levels, lut=lut(s.palette))
            unit = "°C" if pair.th_celsius is not None else ""
            if pair.th_celsius is not None and self.temp_note.text():
                self.temp_note.setText("")   # a source that knows it is radiometric only once it read a frame
            self.th_view.set_info(f"{levels[0]:.1f} – {levels[1]:.1f}{unit} · {s.palette}")
        elif pair is not None:
            self.th_view.show_message("no thermal image in this source")
        for spec, view in (("vis", self.vis_view), ("th", self.th_view)):
            if pair is not None and (pair.vis if spec == "vis" else pair.th) is None:
                continue
            other = "th" if spec == "vis" else "vis"
            view.set_landmarks(r.landmarks.get(spec), r.boundary.get(spec))
            # every face the detector + tracker found (the primary one is drawn by set_landmarks)
            tracked = r.tracked
            view.set_faces(r.faces.get(spec, []) if tracked else None,
                           r.primary_ids.get(spec) if tracked else None)
            no_face = tracked and r.no_face(spec)
            view.set_note("no face" if no_face else "")
            # the other spectrum's landmarks mapped here (registered pair or known homography)
            view.set_projected(r.mapped.get(other) if other in r.landmarks else None)
            trusted = spec == r.chosen
            if trusted:
                badge = "trusted"
            else:
                badge = ""
            view.set_trusted(trusted, badge)
            faces_text = faces_phrase(len(r.faces[spec])) if tracked and spec in r.faces else ""
            if spec == "vis":
                m = r.measures.get("vis") or {}
                info = f"luminance {m['mean']:.2f}" if "mean" in m else ""
                if faces_text:
                    info = (info + " · " if info else "") + faces_text
                if spec not in r.landmarks:
                    info = (info + " · " if info else "") + (
                        "landmarks from thermal" if other in r.mapped else ("" if no_face else "not run"))
                view.set_info(info.rstrip(" ·"))
            else:
                cur = view.info_label.text()
                if faces_text:
                    cur += " · " + faces_text
                if spec not in r.landmarks:
                    cur += (" · landmarks from visible" if other in r.mapped else ("" if no_face else " · not run"))
                view.set_info(cur)
        self._show_faces_status(r)
        # temperatures
        temps, covered = [], {}
        th_pts = r.points_in("th") if (pair is not None and pair.th is not None) else None
        if r.temperatures and th_pts is not None and np.isfinite(th_pts).all():
            anchors = temperature_points(th_pts)
            # an eye region colder than the face: glasses (dmsl_core/covered.py; the processor judged it)
            covered = getattr(r, "temperatures_covered", None) or {}
            temps = [(TEMP_LABELS[k], anchors[k][0], anchors[k][1], v, TEMP_ANCHORS[k], " covered" * (k in covered))
                     for k, v in r.temperatures.items() if k in anchors and v is not None and math.isfinite(v)]
        self.th_view.set_temperatures(temps)
        self.vis_view.set_temperatures(None)
        for k, lab in self.temp_labels.items():
            v = r.temperatures.get(k)
            lab.setText((f"{v:.1f} °C" + (" covered" if k in covered else "")) if v is not None and math.isfinite(v)
                        else "—")
            lab.setToolTip(covered.get(k, ""))
        # selector
        self.spectrum_panel.update_decision(r)
        d = r.decision
        if d.measures is not None:
            self.chart.add(r.t, d.measures.mean, (d.smoothed or {}).get("mean", d.measures.mean),
                           (d.smoothed or {}).get("sat_frac", d.measures.sat_frac), r.chosen == "th")
        thr = d.thresholds or {}
        self.chart.set_thresholds(thr.get("low"), thr.get("high"))
        # position
        if self.seek_slider.isEnabled() and not self._seeking:
            self.seek_slider.blockSignals(True)
            self.seek_slider.setValue(int(r.index))
            self.seek_slider.blockSignals(False)
        frames = self.info.frames
        self.pos_label.setText(f"#{r.index}" + (f" / {frames - 1}" if frames else "") + f" · {r.t:.2f} s")
        if count:
            self.drawn += 1
            self._draw_times.append(time.perf_counter())
            self.resultDrawn.emit(self.drawn)

    def _show_faces_status(self, r) -> None:
        """The status bar's faces field: "3 faces in the visible image" (one spectrum run), "visible: 3 faces ·
        thermal: no face" (both); empty when the face detector is off."""
        warn = False
        if not r.tracked or not r.faces:
            self.st_faces.setText("")
            self.st_faces.setToolTip("")
        else:
            names = {"vis": "visible", "th": "thermal"}
            run = [s for s in ("vis", "th") if s in r.faces]
            if len(run) == 1:
                self.st_faces.setText(f"{faces_phrase(len(r.faces[run[0]]))} in the {names[run[0]]} image")
            else:   # short: the status bar is shared
                self.st_faces.setText(" · ".join(f"{names[s]}: {faces_phrase(len(r.faces[s]))}" for s in run))
            tips = []
            for s in ("vis", "th"):
                for f in r.faces.get(s, []):
                    conf = getattr(f, "confidence", None)
                    tips.append(f"{names[s]} #{f.id}: score {f.score:.2f}"
                                + (f", landmark confidence {100 * conf:.0f} %" if conf is not None else "")
                                + f", box {int(f.boundary[2])}x"
                                f"{int(f.boundary[3])} px" + (" - the readouts follow it"
                                                               if r.primary_ids.get(s) == f.id else ""))
            self.st_faces.setToolTip("\n".join(tips) or "the face detector found no face")
            warn = any(r.no_face(s) for s in r.faces)
        name = "StatusWarn" if warn else ""
        if self.st_faces.objectName() != name:          # restyled only when it changes (not every frame)
            self.st_faces.setObjectName(name)
            self.st_faces.style().unpolish(self.st_faces)
            self.st_faces.style().polish(self.st_faces)

    def displayed_fps(self) -> float:
        t = self._draw_times
        if len(t) < 2:
            return 0.0
        now = time.perf_counter()
        recent = [x for x in t if now - x <= 3.0]
        if len(recent) < 2:
            return 0.0
        return (len(recent) - 1) / max(1e-6, recent[-1] - recent[0])

    def _refresh_status(self) -> None:
        w = self.live
        if w is None:
            self.st_fps.setText("")
            return
        st = w.stats
        self.st_fps.setText(f"processing {st.rate:4.1f} fps · shown {self.displayed_fps():4.1f} fps · "
                            f"dropped {st.dropped + st.display_dropped}")
        self.st_fps.setToolTip(f"frames dropped by the source reader: {st.dropped}\n"
                               f"results the window skipped (busy): {st.display_dropped}")
        r = self.last_result
        if r is not None:
            self.st_frame.setText(f"frame {r.index} · {r.t:.2f} s")
        if self.recording:
            drop = f" · {st.recording_dropped} dropped (disk too slow)" if getattr(st, "recording_dropped", 0) else ""
            self.record_label.setText(f"● REC {st.recording_rows} frames{drop}\n" + "\n".join(self.record_paths))

    def _vis_value(self, x: int, y: int) -> str:
        r = self.last_result
        if r is None or r.pair is None or r.pair.vis is None:
            return ""
        v = r.pair.vis[y, x]
        return "RGB " + " ".join(str(int(c)) for c in np.atleast_1d(v)[:3])

    def _th_value(self, x: int, y: int) -> str:
        r = self.last_result
        if r is None or r.pair is None or r.pair.th is None:
            return ""
        if r.pair.th_celsius is not None:
            return f"{float(r.pair.th_celsius[y, x]):.2f} °C"
        return f"value {r.pair.th[y, x]} (not radiometric)"

    def _cross_hover(self, spec: str, x: float, y: float) -> None:
        """The cursor over one view: show the other spectrum's readout at the same place when registered."""
        r = self.last_result
        if r is None or r.pair is None:
            return
        from dmsl_core.registration import homography_for_pair, map_points
        H = homography_for_pair(r.pair)
        if H is None:
            return
        p = np.array([[x, y]], float)
        q = map_points(p, np.linalg.inv(H) if spec == "vis" else H)[0]
        other = self.th_view if spec == "vis" else self.vis_view
        img = r.pair.th if spec == "vis" else r.pair.vis
        if img is not None and 0 <= q[0] < img.shape[1] and 0 <= q[1] < img.shape[0]:
            other.hover_at(q[0], q[1])
