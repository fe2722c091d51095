"""Exports of a processed stream: CSV, JSON Lines, and an MP4 with landmarks drawn on both spectra.

Every writer writes to a temporary ``.part`` file beside the target (created exclusively: a symlink
there is never followed; a ``.part`` an earlier crash left is kept as ``NAME.part.1`` with a
warning), flushes it to disk at least every ``flush_interval_s`` (1 s) and renames it into place on
:meth:`close` (also after Ctrl-C) - only when everything reached the disk (a video: only when
OpenCV re-opens it with every frame). :meth:`abort` (an error) publishes nothing and keeps the
``.part`` when it has rows. After a crash the ``.part`` file remains with every frame up to the last flush:
``OUT.csv.part``, ``OUT.jsonl.part`` (complete lines; a torn last line is possible) and
``OUT.part.mp4`` (OpenCV finalises an MP4 only on close, so a crashed video may be unplayable;
use ``.avi`` - Motion-JPEG - for a video that survives a crash mostly intact).

CSV columns (one row per processed frame):

``index, t, source, vis_file, th_file, spectrum, switched, reason, dropped, n_faces, face_id,
face_score, face_conf, bx, by, bw, bh, x0, y0, ..., x67, y67`` (the chosen spectrum's landmarks and boundary
in its own pixels; with the face detector on - ``StreamConfig.detector`` - one row per face of the
chosen spectrum, the primary face first, ``n_faces`` the count, ``face_id`` the track's identity
kept across frames, ``face_score`` the detector's score, ``face_conf`` the landmark stage's own
confidence (empty for a model without a quality network); a frame with no face is one row with
``n_faces`` 0 and empty points; without the detector the four cells are empty), then
``mx0, my0, ..., mx67, my67`` (the same points mapped into the other spectrum, when a
homography is known or the pair is registered), ``vis_mean, vis_p05, vis_p95, vis_dark, vis_sat,
vis_region`` (illumination of the visible image), ``th_p05, th_p95, th_contrast, th_units``,
``temp_inner_eye_r, temp_inner_eye_l, temp_forehead, temp_nose_tip`` (degrees C when the thermal
is radiometric), ``temp_covered`` (the regions among them whose temperature says they are covered -
glasses - not skin, ``;``-separated, see :mod:`dmsl_core.covered`), ``nme`` (against ground truth when the source has it), ``ms_total``.
Missing values are empty cells; on the rows of the faces that are not the primary one the mapped
points, temperatures and NME are empty. The JSONL line is :meth:`FrameResult.to_dict` (both spectra in
``both`` mode, the selector's measures and thresholds, ``temperatures_covered``: the covered
regions, a list); the video's caption says ``canthus=26.6C covered`` for a covered eye.
"""
from __future__ import annotations

import contextlib
import csv
import errno
import json
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import cv2
import numpy as np

from .atomic import create_exclusive, fsync_dir, keep_aside, named
from .landmarks import CONTOURS
from .stream import FrameResult
from .temperatures import TEMPERATURE_REGIONS

log = logging.getLogger(__name__)


def _fmt(v, nd: int = 2) -> str:
    if v is None:
        return ""
    if isinstance(v, (float, np.floating)):
        return "" if not math.isfinite(float(v)) else f"{float(v):.{nd}f}"
    return str(v)


def csv_header() -> list[str]:
    cols = ["index", "t", "source", "vis_file", "th_file", "spectrum", "switched", "reason", "dropped",
            "n_faces", "face_id", "face_score", "face_conf", "bx", "by", "bw", "bh"]
    cols += [f"{a}{i}" for i in range(68) for a in ("x", "y")]
    cols += [f"m{a}{i}" for i in range(68) for a in ("x", "y")]
    cols += ["vis_mean", "vis_p05", "vis_p95", "vis_dark", "vis_sat", "vis_region",
             "th_p05", "th_p95", "th_contrast", "th_units"]
    cols += [f"temp_{r}" for r in TEMPERATURE_REGIONS] + ["temp_covered"]
    cols += ["nme", "ms_total"]
    return cols


def result_row(r: FrameResult, face=None) -> list[str]:
    """One CSV row: the chosen spectrum's (primary) face, or ``face`` (a TrackedFace of the chosen
    spectrum: its points and box; the mapped points, temperatures and NME are the primary's only)."""
    s = r.chosen
    primary = face is None or r.primary_ids.get(s) == face.id
    pts = r.landmarks.get(s) if face is None else face.landmarks
    mp = r.mapped.get(s) if primary else None
    b = r.boundary.get(s) if face is None else face.boundary
    faces = r.faces.get(s) if r.tracked else None
    if face is None and faces:
        face = next((f for f in faces if f.id == r.primary_ids.get(s)), None)
    row = [str(r.index), _fmt(r.t, 4), r.source, r.files.get("vis", ""), r.files.get("th", ""), s,
           str(int(r.decision.switched)), r.decision.reason, str(r.dropped)]
    row += ([str(len(faces or [])), str(face.id) if face is not None else "",
             _fmt(face.score, 4) if face is not None else "",
             _fmt(getattr(face, "confidence", None), 4) if face is not None else ""] if r.tracked else [""] * 4)
    row += [_fmt(v) for v in b] if b is not None else [""] * 4
    row += [_fmt(v) for v in np.asarray(pts).ravel()] if pts is not None else [""] * 136
    row += [_fmt(v) for v in np.asarray(mp).ravel()] if mp is not None else [""] * 136
    vm = r.measures.get("vis") or {}
    row += [_fmt(vm.get(k), 4) for k in ("mean", "p05", "p95", "dark_frac", "sat_frac")] + [vm.get("region", "")]
    tm = r.measures.get("th") or {}
    row += [_fmt(tm.get(k), 3) for k in ("p05", "p95", "contrast")] + [tm.get("units", "")]
    row += [_fmt(r.temperatures.get(k), 3) if primary else "" for k in TEMPERATURE_REGIONS]
    row += [";".join(sorted(r.temperatures_covered)) if primary else ""]
    row += [_fmt(r.nme.get(s), 5) if primary else "", _fmt(r.timings_ms.get("total"), 2)]
    return row


def result_rows(r: FrameResult) -> list[list[str]]:
    """The CSV rows of one frame: one row, or with the face detector on one row per face of the
    chosen spectrum (the primary first), and one row with ``n_faces`` 0 when there is none."""
    faces = r.faces.get(r.chosen) if r.tracked else None
    if not faces:
        return [result_row(r)]
    pid = r.primary_ids.get(r.chosen)
    ordered = sorted(faces, key=lambda f: (f.id != pid, f.id))
    return [result_row(r, f) for f in ordered]


def _open_part(part: Path, before_suffix: bool = False) -> int:
    """Create ``part`` exclusively (never following a symlink there); a ``.part`` an earlier run
    left (a crash's partial export) is kept: renamed to ``NAME.part.1`` (``.2``...) with a warning."""
    kept = keep_aside(part, before_suffix=before_suffix)
    if kept is not None:
        log.warning("%s: kept the partial export an earlier run left there as %s", part, kept.name)
    return create_exclusive(part)


class _AtomicTextWriter:
    suffix_part = ".part"

    def __init__(self, path: str | os.PathLike, flush_interval_s: float = 1.0) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise IsADirectoryError(errno.EISDIR, "is a folder, expected a file name", str(self.path))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.part = self.path.with_name(self.path.name + self.suffix_part)
        self.flush_interval_s = flush_interval_s
        self._fh = os.fdopen(_open_part(self.part), "w", encoding="utf-8", newline="",
                             errors="surrogateescape")  # a non-UTF-8 file name: its own bytes
        self._last_flush = time.monotonic()
        self.rows = 0
        self.closed = False

    def _maybe_flush(self) -> None:
        if time.monotonic() - self._last_flush >= self.flush_interval_s:
            self.flush()

    def _put(self, write, *args) -> None:
        """One row through ``write``; an OSError (full disk...) names the file, nothing is published."""
        try:
            write(*args)
            self.rows += 1
            self._maybe_flush()
        except OSError as exc:
            raise named(exc, self.part, f"; the export stopped, the {self.rows} rows before are kept in "
                                        f"{self.part.name}") from exc

    def flush(self) -> None:
        if self.closed:
            return
        self._fh.flush()
        try:
            os.fsync(self._fh.fileno())
        except OSError as exc:
            if exc.errno in (errno.EINVAL, errno.ENOTSUP):  # pragma: no cover - some file systems refuse
                pass
            else:
                raise
        self._last_flush = time.monotonic()

    def close(self) -> Path:
        """Flush (``fsync``), and rename the ``.part`` file into place. When the data cannot be
        written (full disk...) nothing is renamed: the ``.part`` stays and the ``OSError`` names it."""
        if not self.closed:
            try:
                self.flush()
                self._fh.close()
            except OSError as exc:
                self.abort()
                raise named(exc, self.part, f"; the export is incomplete, what was written is kept in "
                                            f"{self.part.name}") from exc
            self.closed = True
            os.replace(self.part, self.path)
            fsync_dir(self.path.parent)
        return self.path

    def abort(self) -> Optional[Path]:
        """Stop without publishing: the ``.part`` is kept when it holds any row (returned, and a
        warning says so), removed when it holds none (only the header)."""
        if self.closed:
            return None
        self.closed = True
        with contextlib.suppress(OSError, ValueError):
            self._fh.close()
        if self.rows == 0:
            with contextlib.suppress(OSError):
                os.unlink(self.part)
            return None
        log.warning("%s: export not completed; the %d rows written are kept there", self.part, self.rows)
        return self.part

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc: object) -> None:
        if exc_type is None or issubclass(exc_type, KeyboardInterrupt):
            self.close()
        else:
            self.abort()


class CSVExporter(_AtomicTextWriter):
    """One CSV row per frame (see the module docstring for the columns)."""

    def __init__(self, path: str | os.PathLike, flush_interval_s: float = 1.0) -> None:
        super().__init__(path, flush_interval_s)
        self._w = csv.writer(self._fh, lineterminator="\n")
        self._w.writerow(csv_header())
        self.flush()

    def write(self, r: FrameResult) -> None:
        for row in result_rows(r):
            self._put(self._w.writerow, row)


class JSONLExporter(_AtomicTextWriter):
    """One JSON object per line per frame (:meth:`FrameResult.to_dict`); a first line ``{"stream": info}``."""

    def __init__(self, path: str | os.PathLike, flush_interval_s: float = 1.0, info: Optional[dict] = None) -> None:
        super().__init__(path, flush_interval_s)
        if info is not None:
            self._fh.write(json.dumps({"stream": info}, default=_json_default) + "\n")

    def write(self, r: FrameResult) -> None:
        self._put(self._fh.write, json.dumps(r.to_dict(), default=_json_default, allow_nan=False) + "\n")


def _json_default(o):
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (np.floating,)):
        f = float(o)
        return f if math.isfinite(f) else None
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (set, tuple)):
        return list(o)
    return str(o)


# ---- drawing -------------------------------------------------------------------------------
def thermal_display(th: np.ndarray, celsius: Optional[np.ndarray] = None) -> np.ndarray:
    """A thermal frame as an 8-bit RGB picture (the display stretch, :func:`dmsl_core.preprocess.display_uint8`;
    grey, white-hot)."""
    from .preprocess import display_uint8
    return cv2.cvtColor(display_uint8(celsius if celsius is not None else th), cv2.COLOR_GRAY2RGB)


def draw_landmarks(img: np.ndarray, pts: Optional[np.ndarray], color: tuple[int, int, int],
                   hollow: bool = False, thickness: int = 1) -> np.ndarray:
    """Draw the 68 points and their contours on an RGB uint8 image (in place; returned)."""
    if pts is None:
        return img
    p = np.asarray(pts, dtype=np.float64)
    if p.shape != (68, 2) or not np.isfinite(p).all():
        return img
    q = np.round(p * 4).astype(np.int32)  # 2 bits of sub-pixel precision
    r = max(1, int(round(min(img.shape[:2]) / 160)))
    for idx, closed in CONTOURS:
        cv2.polylines(img, [q[list(idx)]], closed, color, thickness, cv2.LINE_AA, shift=2)
    for x, y in q:
        cv2.circle(img, (int(x), int(y)), r * 4, color, 1 if hollow else -1, cv2.LINE_AA, shift=2)
    return img


CHOSEN = (40, 230, 60)
OTHER = (80, 170, 255)
MAPPED = (250, 220, 40)
OTHER_FACE = (230, 120, 230)    # every face but the primary (face detector on)


def _outlined_text(img: np.ndarray, text: str, org: tuple[int, int], scale: float, color) -> None:
    """``text`` in ``color`` with a black outline, readable on any background."""
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, color, 1, cv2.LINE_AA)


def overlay_caption(r: FrameResult) -> str:
    """The caption of an exported frame: index, time, chosen spectrum, the visible luminance and the
    canthus temperature ("covered" behind glasses) - each only when the frame has it (never ``nan``)."""
    cap = f"#{r.index} t={r.t:.2f}s {r.chosen.upper()}"
    mean = (r.measures.get("vis") or {}).get("mean")
    if mean is not None and math.isfinite(mean):   # a thermal-only source has no visible luminance
        cap += f" mean={mean:.2f}"
    t = (r.temperatures or {}).get("inner_eye_r")
    if t is not None and math.isfinite(t):
        cap += f" canthus={t:.1f}C" + (" covered" if "inner_eye_r" in r.temperatures_covered else "")
    return cap


def video_spectra(spectra) -> tuple[str, ...]:
    """The panels of an overlay video for a source of ``spectra`` (its ``info["spectra"]``): only those
    of them (a thermal-only source: the thermal panel alone, not a black "no visible" half); both when
    the source does not say."""
    got = tuple(s for s in ("vis", "th") if s in (spectra or ()))
    return got or ("vis", "th")


def render_side_by_side(r: FrameResult, height: Optional[int] = None,
                        spectra: Sequence[str] = ("vis", "th")) -> np.ndarray:
    """Visible | thermal (the panels of ``spectra``, see :func:`video_spectra`), landmarks drawn on
    each (chosen spectrum green, the other run blue, mapped points yellow hollow), a caption with the
    spectrum and the reason. RGB uint8."""
    pair = r.pair
    panels = []
    for s in video_spectra(spectra):
        img = None
        if pair is not None:
            if s == "vis" and pair.vis is not None:
                img = np.ascontiguousarray(pair.vis[:, :, :3]).copy() if pair.vis.ndim == 3 else \
                    cv2.cvtColor(pair.vis, cv2.COLOR_GRAY2RGB)
            elif s == "th" and pair.th is not None:
                img = thermal_display(pair.th, pair.th_celsius)
        if img is None:
            ref = next((x for x in (getattr(pair, "vis", None), getattr(pair, "th", None)) if x is not None), None)
            hh, ww = (ref.shape[:2] if ref is not None else (240, 320))
            img = np.zeros((hh, ww, 3), np.uint8)
            cv2.putText(img, f"no {'visible' if s == 'vis' else 'thermal'}", (10, hh // 2), cv2.FONT_HERSHEY_SIMPLEX,
                        0.5, (200, 200, 200), 1, cv2.LINE_AA)
        else:
            other = "th" if s == "vis" else "vis"
            for f in (r.faces.get(s) or []) if r.tracked else []:
                if f.id != r.primary_ids.get(s):
                    draw_landmarks(img, f.landmarks, OTHER_FACE)
                x, y = int(round(float(f.boundary[0]))), int(round(float(f.boundary[1]))) - 4
                _outlined_text(img, f"#{f.id} {f.score:.2f}", (x, max(10, y)), 0.35, (255, 255, 255))
            if r.no_face(s):
                _outlined_text(img, "no face", (10, img.shape[0] - 10), 0.5, (255, 200, 0))
            if s in r.landmarks:
                draw_landmarks(img, r.landmarks[s], CHOSEN if s == r.chosen else OTHER)
            if other in r.mapped and (other == r.chosen or s not in r.landmarks):
                draw_landmarks(img, r.mapped[other], MAPPED, hollow=True)
        if s == r.chosen:
            cv2.rectangle(img, (0, 0), (img.shape[1] - 1, img.shape[0] - 1), CHOSEN, 2)
        panels.append(img)
    h = height or max(p.shape[0] for p in panels)
    panels = [p if p.shape[0] == h else cv2.resize(p, (max(1, round(p.shape[1] * h / p.shape[0])), h))
              for p in panels]
    out = np.hstack(panels)
    _outlined_text(out, overlay_caption(r), (5, 14), 0.4, (255, 255, 255))
    return out


class VideoExporter:
    """Side-by-side video with landmarks (MP4 ``mp4v``, or Motion-JPEG for ``.avi``); a panel for
    each of ``spectra`` (the source's ``info["spectra"]``; both when not given).

    :meth:`close` re-opens the finished file with OpenCV and checks it holds every frame written
    before renaming it into place; otherwise (full disk...) it raises an ``OSError`` naming the
    file and leaves the ``.part`` (for recovery, see the README)."""

    def __init__(self, path: str | os.PathLike, fps: float = 25.0, height: Optional[int] = None,
                 spectra: Optional[Sequence[str]] = None) -> None:
        self.path = Path(path)
        self.spectra = video_spectra(spectra)   # the source's spectra: one panel each (both when unknown)
        if self.path.is_dir():
            raise IsADirectoryError(errno.EISDIR, "is a folder, expected a file name", str(self.path))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.part = self.path.with_name(self.path.stem + ".part" + (self.path.suffix or ".mp4"))
        os.close(_open_part(self.part, before_suffix=True))  # claimed now: OpenCV opens it on the first frame
        self.fps = float(fps) if fps and fps > 0 else 25.0
        self.height = height
        self._writer: Optional[cv2.VideoWriter] = None
        self._size: Optional[tuple[int, int]] = None
        self.rows = 0
        self.closed = False

    def write(self, r: FrameResult) -> None:
        frame = render_side_by_side(r, self.height, self.spectra)
        if self._writer is None:
            h, w = frame.shape[:2]
            w, h = w + (w % 2), h + (h % 2)
            self._size = (w, h)
            fourcc = "MJPG" if self.path.suffix.lower() == ".avi" else "mp4v"
            if os.path.islink(self.part):
                raise FileExistsError(errno.EEXIST, "a symlink replaced the video's temporary file", str(self.part))
            self._writer = cv2.VideoWriter(str(self.part), cv2.VideoWriter_fourcc(*fourcc), self.fps, (w, h))
            if not self._writer.isOpened():
                raise RuntimeError(f"{self.path}: OpenCV cannot write a {fourcc} video here")
        if (frame.shape[1], frame.shape[0]) != self._size:
            frame = cv2.resize(frame, self._size)
        self._writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        self.rows += 1

    def flush(self) -> None:
        """OpenCV's writer cannot flush; the container is finalised on close."""

    def _frames_on_disk(self) -> int:
        cap = cv2.VideoCapture(str(self.part))
        try:
            if not cap.isOpened():
                return -1
            n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
            if n == self.rows and n > 0 and cap.set(cv2.CAP_PROP_POS_FRAMES, n - 1) and cap.read()[0]:
                return n  # the container's count, and its last frame decodes
            cap.release()
            cap = cv2.VideoCapture(str(self.part))
            n = 0
            while cap.grab():
                n += 1
            return n
        finally:
            cap.release()

    def close(self) -> Optional[Path]:
        if self.closed:
            return self.path
        self.closed = True
        if self._writer is None:
            with contextlib.suppress(OSError):
                os.unlink(self.part)
            return None
        self._writer.release()
        n = self._frames_on_disk()
        if n != self.rows:
            what = "does not open" if n < 0 else f"holds {n} of the {self.rows} frames written"
            raise OSError(errno.EIO, f"the video {what} (disk full?); not published, kept as {self.part.name}",
                          str(self.part))
        os.replace(self.part, self.path)
        fsync_dir(self.path.parent)
        return self.path

    def abort(self) -> Optional[Path]:
        """Stop without publishing: finalise what was written into the ``.part`` (kept when it has
        frames, removed when it has none)."""
        if self.closed:
            return None
        self.closed = True
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.release()
        if self.rows == 0:
            with contextlib.suppress(OSError):
                os.unlink(self.part)
            return None
        log.warning("%s: video not completed; the %d frames written are kept there", self.part, self.rows)
        return self.part


class ExportSet:
    """Several exporters fed the same results; closing closes (and renames) them all."""

    def __init__(self, writers: Sequence) -> None:
        self.writers = list(writers)

    def write(self, r: FrameResult) -> None:
        for w in self.writers:
            w.write(r)

    def close(self) -> list[Path]:
        out, first_error = [], None
        for w in self.writers:
            try:
                p = w.close()
                if p is not None:
                    out.append(p)
            except Exception as exc:  # noqa: BLE001 - close the others, then re-raise
                first_error = first_error or exc
        if first_error is not None:
            raise first_error
        return out

    def abort(self) -> list[Path]:
        """Stop every exporter without publishing (see their ``abort``); returns the ``.part``
        files kept."""
        kept = []
        for w in self.writers:
            with contextlib.suppress(Exception):
                p = w.abort()
                if p is not None:
                    kept.append(p)
        return kept

    def __enter__(self) -> "ExportSet":
        return self

    def __exit__(self, exc_type, *exc: object) -> None:
        if exc_type is None or issubclass(exc_type, KeyboardInterrupt):
            self.close()
        else:
            self.abort()


class Recorder:
    """An :class:`ExportSet` written on a thread of its own through a bounded queue, so encoding a
    video or a slow disk never holds up the frame loop (as camera tools like DeepLabCut-live record).

    :meth:`write` hands a result over and returns at once. When the queue is full (``maxsize``
    results waiting: the disk cannot keep up) the result is **dropped and counted** (``dropped``)
    for a live source (``drop_when_full=True``), or the call waits for room (a file: every frame is
    written). A writer's error (a full disk) stops the recording: later writes are refused, and
    ``error`` holds it; :meth:`close` writes what is queued, closes (publishes) the files and
    re-raises the writer's error if there was one - the files are then aborted (their ``.part`` kept
    when they have rows, as :meth:`ExportSet.abort` does)."""

    _END = object()

    def __init__(self, exports: "ExportSet", maxsize: int = 64, drop_when_full: bool = True) -> None:
        import queue
        import threading
        if int(maxsize) < 1:
            raise ValueError(f"the recorder's queue must hold at least one result, got {maxsize}")
        self.exports = exports
        self.drop_when_full = bool(drop_when_full)
        self.rows = 0                     # results written
        self.dropped = 0                  # results dropped because the queue was full
        self.error: Optional[BaseException] = None
        self._q: "queue.Queue" = queue.Queue(maxsize=int(maxsize))
        self._full = queue.Full
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="dmsl-recorder", daemon=True)
        self._thread.start()

    @property
    def queued(self) -> int:
        return self._q.qsize()

    def _run(self) -> None:
        while True:
            r = self._q.get()
            if r is self._END:
                return
            if self.error is not None:
                continue                  # stopped: the rest is discarded
            try:
                self.exports.write(r)
                self.rows += 1
            except BaseException as exc:  # noqa: BLE001 - kept, reported by write() / close()
                self.error = exc

    def write(self, r: FrameResult) -> bool:
        """Queue one result; False when it was not taken (dropped: queue full; or the recording has
        stopped on an error - see :attr:`error`)."""
        if self._closed:
            raise RuntimeError("the recorder is closed")
        if self.error is not None:
            return False
        if self.drop_when_full:
            try:
                self._q.put_nowait(r)
            except self._full:
                self.dropped += 1
                return False
        else:
            self._q.put(r)
        return True

    def close(self) -> list[Path]:
        """Write what is queued, then close the files (see the class docstring); returns their paths."""
        if self._closed:
            return []
        self._closed = True
        self._q.put(self._END)
        self._thread.join()
        if self.error is not None:
            self.exports.abort()
            raise self.error
        return self.exports.close()

    def abort(self) -> list[Path]:
        """Stop at once without publishing (queued results are discarded)."""
        if not self._closed:
            self._closed = True
            self.error = self.error or RuntimeError("aborted")
            self._q.put(self._END)
            self._thread.join()
        return self.exports.abort()


# ---- opening a recording ---------------------------------------------------------------------------
def jsonable(d: dict) -> dict:
    """A source's ``info`` as plain JSON values (tuples and sets as lists, anything else as text)."""
    return json.loads(json.dumps(d, default=lambda o: list(o) if isinstance(o, (tuple, set)) else str(o)))


@dataclass
class RecordSpec:
    """What a recording writes: ``FOLDER/STEM.csv``, ``.jsonl``, ``.mp4`` (each when ticked)."""

    folder: str
    stem: str
    csv: bool = True
    jsonl: bool = False
    video: bool = True

    def paths(self) -> dict[str, Path]:
        d = Path(self.folder)
        out = {}
        if self.csv:
            out["csv"] = d / f"{self.stem}.csv"
        if self.jsonl:
            out["jsonl"] = d / f"{self.stem}.jsonl"
        if self.video:
            out["video"] = d / f"{self.stem}.mp4"
        return out


def recording_stem(uri: str) -> str:
    """A file name stem for a recording of ``uri``: the source's name and the time."""
    import re
    base = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(uri.split("?")[0].split("|")[0].split(":")[-1] or "demo").stem or "demo")
    return f"{base[:40] or 'stream'}_{time.strftime('%Y%m%d-%H%M%S')}"


def open_exports(paths: dict, info: Optional[dict] = None) -> ExportSet:
    """The writers for ``{"csv": path, "jsonl": path, "video": path}`` (any subset) of a source with
    ``info`` (the JSONL header, the video's frame rate and panels). Nothing to write, or a writer that
    cannot be opened, raises; the writers opened before it are aborted (no header-only file is left)."""
    from .sources.base import SourceInfo
    info = SourceInfo(info or {})
    paths = {k: v for k, v in paths.items() if v}
    if not paths:
        raise ValueError("nothing to record: choose CSV, JSON or video")
    unknown = sorted(set(paths) - {"csv", "jsonl", "video"})
    if unknown:
        raise ValueError(f"unknown export kind(s) {', '.join(unknown)} (known: csv, jsonl, video)")
    writers: list = []
    try:
        for kind, p in paths.items():
            if kind == "csv":
                writers.append(CSVExporter(p))
            elif kind == "jsonl":
                writers.append(JSONLExporter(p, info=jsonable(info)))
            else:
                writers.append(VideoExporter(p, fps=info.fps or 25.0, spectra=info.spectra or None))
    except BaseException:
        for w in writers:
            try:
                w.abort()
            except Exception:  # noqa: BLE001
                pass
        raise
    return ExportSet(writers)
