"""Annotating paired visible/thermal images the paper's way, and the files an annotation lives in.

The paper annotated its thermal database by running Dlib's 68-point predictor on the visible
image, correcting inaccurate points by hand and using the same coordinates for the registered
thermal image. :func:`annotate_dataset` (``dmsl annotate``) does the automatic part for a dataset
folder (:mod:`dmsl_core.data.folder`); :class:`AnnotationSet` is what the GUI's annotation view
(and the command) read and write. The command line itself is in :mod:`dmsl_core.commands.data`.

Files, per pair (paths from the pair's ``landmarks`` column, e.g. ``pts/s001_neutral.pts``):

``pts/s001_neutral.pts``
    the 68 points (iBUG ``.pts``). For a registered pair it serves both images. For an
    unregistered pair it holds the visible points and ``th_landmarks`` (created as
    ``pts/s001_neutral.th.pts`` when the manifest has none) the thermal ones.
``pts/s001_neutral.origin.json``
    where each point came from: ``{"format": "dmsl-origin", "version": 1, "vis": [68 origins],
    "th": [68 origins], "source": "dlib", "disagreement": 0.031, "checked": false,
    "boundary": {"vis": [x, y, w, h], "th": [...]}, "updated": "..."}``. An origin is one of
    :data:`ORIGINS`: ``dlib``, ``model`` (the DMSL model), ``transferred`` (mapped from the
    other spectrum: identity for registered pairs, the rig's homography otherwise),
    ``neighbour`` (copied from a neighbouring pair of the same subject, for black "lights off"
    visible images), ``hand`` (moved in the annotation view) or ``file`` (an annotation that
    existed before, origin unknown). ``disagreement`` is the NME between Dlib's and the
    model's points (``--source both``), ``checked`` is set when a person accepted the pair.
``pts/s001_neutral.orig.pts``
    the annotation as it was before it was first overwritten (by ``--overwrite`` or a hand
    edit), with its origins as ``pts/s001_neutral.orig.origin.json`` when it had some; never
    overwritten itself. (``.th.orig.pts`` likewise for thermal files.)

Per dataset: ``annotate_report.json`` (what ``dmsl annotate`` did: misses, dark pairs, errors,
counts, timing) and, only while an edit is being saved, ``.annotate.autosave.json`` - a journal
written (atomically) before the annotation files and removed after them. If the app is killed
between the two, :meth:`AnnotationSet.recover` (run on open) re-applies it.

A thermal->visible homography for unregistered pairs comes from ``calibration.json`` in the
dataset folder (the format of :mod:`dmsl_core.registration`, written by ``dmsl calibrate``) or
from ``--calib FILE``. Every write here is atomic (temporary file + rename).
"""
from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from .atomic import atomic_write_bytes, atomic_write_text, check_writable
from .data.folder import DatasetError, PairRecord, is_dark, read_manifest, write_manifest
from .data.imageio import read_image
from .data.pts import AnnotationError, read_pts, write_pts
from .landmarks import N_POINTS, OUTER_EYE_CORNERS, boundary_from_points
from .registration import Calibration, map_points

log = logging.getLogger("dmsl.annotate")

ORIGINS = ("dlib", "model", "transferred", "neighbour", "hand", "file")
SOURCES = ("dlib", "model", "both")
DARK_MODES = ("neighbour", "model", "skip")
ORIGIN_SUFFIX = ".origin.json"
ORIG_SUFFIX = ".orig.pts"
JOURNAL = ".annotate.autosave.json"
REPORT = "annotate_report.json"
CALIBRATION = "calibration.json"


# ---------------------------------------------------------------------------------------------
# paths
def _stem_path(pts_path: Path) -> Path:
    return pts_path.with_suffix("") if pts_path.suffix.lower() == ".pts" else pts_path


def origin_path(pts_path: str | os.PathLike) -> Path:
    """``pts/x.pts`` -> ``pts/x.origin.json``."""
    p = Path(pts_path)
    return p.with_name(_stem_path(p).name + ORIGIN_SUFFIX)


def original_path(pts_path: str | os.PathLike) -> Path:
    """``pts/x.pts`` -> ``pts/x.orig.pts`` (where the first version of an annotation is kept)."""
    p = Path(pts_path)
    return p.with_name(_stem_path(p).name + ORIG_SUFFIX)


def keep_original(pts_path: str | os.PathLike) -> Optional[Path]:
    """Copy an existing annotation to its ``.orig.pts`` once (never overwriting an existing copy).

    Returns the backup's path when one exists afterwards, None when there was nothing to keep.
    """
    p = Path(pts_path)
    backup = original_path(p)
    if backup.exists():
        return backup
    if not p.exists():
        return None
    # the origins that went with it first (``NAME.orig.origin.json``), then the points
    side, side_backup = origin_path(p), origin_path(backup)
    if side.exists() and not side_backup.exists():
        atomic_write_bytes(side_backup, side.read_bytes())
    atomic_write_bytes(backup, p.read_bytes())
    return backup


def interocular_nme(a: np.ndarray, b: np.ndarray) -> float:
    """Mean point distance between two 68-point sets over the inter-ocular distance of ``b``."""
    a = np.asarray(a, float)
    b = np.asarray(b, float)
    i, j = OUTER_EYE_CORNERS
    d = float(np.linalg.norm(b[i] - b[j]))
    ok = np.isfinite(a).all(axis=1) & np.isfinite(b).all(axis=1)
    if d <= 0 or not ok.any():
        return float("nan")
    return float(np.linalg.norm(a[ok] - b[ok], axis=1).mean() / d)


# ---------------------------------------------------------------------------------------------
# one pair's annotation
@dataclass
class PairAnnotation:
    """The points of one pair in both images, with each point's origin."""

    vis: Optional[np.ndarray] = None          # (68, 2) visible pixels, or None
    th: Optional[np.ndarray] = None           # (68, 2) thermal pixels, or None
    vis_origin: list = field(default_factory=list)
    th_origin: list = field(default_factory=list)
    source: str = ""
    disagreement: Optional[float] = None
    checked: bool = False

    @property
    def empty(self) -> bool:
        return self.vis is None and self.th is None

    def copy(self) -> "PairAnnotation":
        return PairAnnotation(None if self.vis is None else self.vis.copy(), None if self.th is None else self.th.copy(),
                              list(self.vis_origin), list(self.th_origin), self.source, self.disagreement,
                              self.checked)

    def origin_dict(self) -> dict:
        bnd = {}
        for s, pts in (("vis", self.vis), ("th", self.th)):
            if pts is not None:
                try:
                    bnd[s] = [round(float(v), 3) for v in boundary_from_points(pts)]
                except ValueError:
                    pass
        d = {"format": "dmsl-origin", "version": 1,
             "vis": list(self.vis_origin) if self.vis is not None else None,
             "th": list(self.th_origin) if self.th is not None else None,
             "source": self.source, "checked": bool(self.checked), "boundary": bnd,
             "updated": _dt.datetime.now().isoformat(timespec="seconds")}
        if self.disagreement is not None and np.isfinite(self.disagreement):
            d["disagreement"] = round(float(self.disagreement), 5)
        return d


def _origins(value, n: int, where: str) -> list:
    if value is None:
        return ["file"] * n
    if not isinstance(value, list) or len(value) != n or not all(v in ORIGINS for v in value):
        raise AnnotationError(f"{where}: expected a list of {n} origins out of {ORIGINS}")
    return list(value)


def read_origin(path: str | os.PathLike) -> Optional[dict]:
    """The origin sidecar as a dict, None when there is none; AnnotationError when it is unreadable."""
    p = Path(path)
    if not p.exists():
        return None
    try:
        d = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise AnnotationError(f"{p}: not a readable origin file ({exc})") from exc
    if not isinstance(d, dict) or d.get("format") != "dmsl-origin":
        raise AnnotationError(f"{p}: not a dmsl-origin file")
    return d


# ---------------------------------------------------------------------------------------------
# the dataset's annotations
class AnnotationSet:
    """The pairs of a dataset folder and their annotations: load, save (journaled), recover.

    ``calibration``: a :class:`Calibration`, a path to one, or None for ``DIR/calibration.json``
    when it exists. It maps points between the images of unregistered pairs.
    """

    def __init__(self, root: str | os.PathLike, calibration=None) -> None:
        self.root = Path(root)
        self.records: list[PairRecord] = read_manifest(self.root)
        if isinstance(calibration, (str, os.PathLike)):
            calibration = Calibration.load(calibration)
        elif calibration is None and (self.root / CALIBRATION).exists():
            calibration = Calibration.load(self.root / CALIBRATION)
        self.calibration: Optional[Calibration] = calibration
        self.manifest_dirty = False

    def __len__(self) -> int:
        return len(self.records)

    # ---- naming ----------------------------------------------------------------------------------
    def key(self, i: int) -> str:
        r = self.records[i]
        return r.landmarks or r.vis or r.th

    def name(self, i: int) -> str:
        r = self.records[i]
        return Path(r.vis or r.th).stem

    def image_path(self, i: int, spectrum: str) -> Optional[Path]:
        """The pair's image file; None when it has none, or when the row is refused for naming a
        path outside the dataset folder (:meth:`load` / :meth:`save` then raise the reason)."""
        r = self.records[i]
        if r.path_error() is not None:
            return None
        return r.abspath(r.vis if spectrum == "vis" else r.th)

    def H_th_to_vis(self, i: int) -> Optional[np.ndarray]:
        """Thermal -> visible homography of pair ``i``: identity when registered, the rig's, or None."""
        if self.records[i].registered:
            return np.eye(3)
        return None if self.calibration is None else np.asarray(self.calibration.H_th_to_vis, float)

    def vis_to_th(self, i: int, pts: np.ndarray) -> Optional[np.ndarray]:
        H = self.H_th_to_vis(i)
        if H is None:
            return None
        return np.asarray(pts, float).copy() if self.records[i].registered else map_points(pts, np.linalg.inv(H))

    def th_to_vis(self, i: int, pts: np.ndarray) -> Optional[np.ndarray]:
        H = self.H_th_to_vis(i)
        if H is None:
            return None
        return np.asarray(pts, float).copy() if self.records[i].registered else map_points(pts, H)

    # ---- files of a pair ---------------------------------------------------------------------------
    def pts_paths(self, i: int, assign: bool = False) -> dict[str, Optional[Path]]:
        """{"vis": path, "th": path} of the landmark files (the same file twice when registered).

        ``assign``: give a pair without a landmark path one (``pts/<stem>.pts``, ``pts/<stem>.th.pts``)
        and mark the manifest for rewriting (:meth:`write_manifest_if_needed`).
        """
        r = self.records[i]
        refused = r.path_error()  # a row naming any path outside the dataset folder is not touched
        if refused is not None:
            raise DatasetError(refused)
        stem = Path(r.vis or r.th).stem
        if assign and not r.landmarks:
            r.landmarks = f"pts/{stem}.pts"
            self.manifest_dirty = True
        if assign and not r.registered and not r.th_landmarks:
            r.th_landmarks = f"{_stem_path(Path(r.landmarks)).as_posix()}.th.pts"
            self.manifest_dirty = True
        main = r.abspath(r.landmarks)
        if r.registered:
            return {"vis": main, "th": main}
        return {"vis": main, "th": r.abspath(r.th_landmarks)}

    def has_annotation(self, i: int) -> bool:
        return any(p is not None and p.exists() for p in self.pts_paths(i).values())

    def write_manifest_if_needed(self) -> Optional[Path]:
        if not self.manifest_dirty:
            return None
        out = write_manifest(self.root, self.records)
        self.manifest_dirty = False
        return out

    # ---- load / save ------------------------------------------------------------------------------
    def load(self, i: int) -> PairAnnotation:
        """The pair's annotation (points None where there is no file). Bad files raise
        :class:`AnnotationError` naming the file."""
        r = self.records[i]
        paths = self.pts_paths(i)
        pts = {}
        for s in ("vis", "th"):
            p = paths[s]
            pts[s] = read_pts(p) if p is not None and p.exists() else None
            if pts[s] is not None and pts[s].shape != (N_POINTS, 2):
                raise AnnotationError(f"{p}: {pts[s].shape[0]} points, expected {N_POINTS}")
        if not r.vis:
            pts["vis"] = None if r.registered else pts["vis"]
        if not r.th:
            pts["th"] = None
        meta = read_origin(origin_path(paths["vis"])) if paths["vis"] is not None else None
        where = str(origin_path(paths["vis"])) if paths["vis"] is not None else self.key(i)
        meta = meta or {}
        ann = PairAnnotation(vis=pts["vis"], th=pts["th"], source=str(meta.get("source", "")),
                             disagreement=meta.get("disagreement"), checked=bool(meta.get("checked", False)))
        if ann.vis is not None:
            ann.vis_origin = _origins(meta.get("vis"), N_POINTS, where)
        if ann.th is not None:
            ann.th_origin = _origins(meta.get("th"), N_POINTS, where)
        return ann

    def save(self, i: int, ann: PairAnnotation, journal: bool = True) -> list[Path]:
        """Write the pair's annotation: journal first (when asked), then each file atomically after
        keeping an ``.orig.pts`` of any annotation it replaces, then the journal is removed."""
        jpath = self.root / JOURNAL
        if journal:
            atomic_write_text(jpath, json.dumps(self._journal_entry(i, ann)) + "\n")
        written = self._write(i, ann)
        if journal:
            try:
                jpath.unlink()
            except FileNotFoundError:
                pass
        return written

    def _write(self, i: int, ann: PairAnnotation) -> list[Path]:
        r = self.records[i]
        paths = self.pts_paths(i, assign=True)
        self.write_manifest_if_needed()
        if r.registered:
            pts = ann.vis if ann.vis is not None else ann.th
            if pts is None:
                raise ValueError(f"{self.key(i)}: nothing to save (no points)")
            todo = [(paths["vis"], pts)]
        else:
            todo = [(paths[s], pts) for s, pts in (("vis", ann.vis), ("th", ann.th)) if pts is not None]
        for p, _ in todo:
            keep_original(p)
        # the origins first, the points last: a pair whose .pts exists is whole (a kill between the two
        # leaves only an origin file, and the pair counts as not annotated)
        op = origin_path(paths["vis"])
        atomic_write_text(op, json.dumps(ann.origin_dict()) + "\n")
        for p, pts in todo:
            write_pts(p, pts)
        return [p for p, _ in todo] + [op]

    def _journal_entry(self, i: int, ann: PairAnnotation) -> dict:
        tolist = lambda a: None if a is None else np.asarray(a, float).round(4).tolist()  # noqa: E731
        return {"format": "dmsl-annotate-journal", "version": 1, "index": i, "key": self.key(i),
                "vis": tolist(ann.vis), "th": tolist(ann.th), "vis_origin": ann.vis_origin,
                "th_origin": ann.th_origin, "source": ann.source, "disagreement": ann.disagreement,
                "checked": ann.checked}

    def recover(self) -> Optional[str]:
        """Re-apply an edit whose save was interrupted (the journal is still there); returns a
        one-line message for the user, or None when there was nothing to recover."""
        jpath = self.root / JOURNAL
        if not jpath.exists():
            return None
        try:
            d = json.loads(jpath.read_text(encoding="utf-8"))
            i = int(d["index"])
            if not (0 <= i < len(self.records)) or self.key(i) != d["key"]:
                i = next(k for k in range(len(self.records)) if self.key(k) == d["key"])
            arr = lambda v: None if v is None else np.asarray(v, float).reshape(N_POINTS, 2)  # noqa: E731
            ann = PairAnnotation(vis=arr(d.get("vis")), th=arr(d.get("th")), vis_origin=list(d.get("vis_origin") or []),
                                 th_origin=list(d.get("th_origin") or []), source=str(d.get("source") or ""),
                                 disagreement=d.get("disagreement"), checked=bool(d.get("checked")))
        except (OSError, ValueError, KeyError, TypeError, StopIteration) as exc:
            bad = jpath.with_name(jpath.name + ".bad")
            os.replace(jpath, bad)
            return f"{jpath}: unreadable autosave journal ({type(exc).__name__}: {exc}); kept as {bad.name}"
        self.save(i, ann, journal=False)
        jpath.unlink()
        # temporary files a killed save left beside this pair's files (``.NAME.*.tmp``)
        for p in {q for q in self.pts_paths(i).values() if q is not None}:
            for name in (p.name, original_path(p).name, origin_path(p).name):
                for tmp in p.parent.glob(f".{name}.*.tmp"):
                    try:
                        tmp.unlink()
                    except OSError:
                        pass
        return f"recovered an unsaved edit of {d['key']} from {jpath.name}"


# ---------------------------------------------------------------------------------------------
# automatic annotation
@dataclass
class _Auto:
    vis: Optional[np.ndarray] = None
    th: Optional[np.ndarray] = None
    vis_origin: str = ""
    th_origin: str = ""
    disagreement: Optional[float] = None


ProgressFn = Callable[[int, int, str], None]


def _model_points(model, image: np.ndarray, spectrum: str) -> Optional[np.ndarray]:
    """The DMSL model's 68 points on the best face its detector finds (:meth:`Predictor.faces`), or
    None when it finds none: M_b alone always returns a box, even on an image without a face."""
    faces = model.faces(image, spectrum=spectrum)
    return None if not faces else np.asarray(faces[0].landmarks, float)


def annotate_dataset(root: str | os.PathLike, source: str = "dlib", dark: str = "model",
                     overwrite: bool = False, calibration=None, predictor=None, dlib=None,
                     weights: Optional[str] = None, device: str = "cpu",
                     progress: Optional[ProgressFn] = None, report_path: Optional[str | os.PathLike] = None,
                     should_stop: Optional[Callable[[], bool]] = None) -> dict:
    """Fill in the landmark files of a dataset folder; returns (and writes) the report.

    ``source``: ``dlib`` (Dlib's HOG detector + 68-point predictor on the visible image), ``model``
    (the DMSL model on the visible image) or ``both`` (Dlib's points where it finds a face, the
    model's otherwise; their NME is recorded as ``disagreement``). Points are transferred to the
    thermal image (identity when registered, the homography otherwise). ``dark``: what a black
    "lights off" visible image gets - the model's points on the thermal image (``model``, the
    default: on generated data NME 0.034 against 0.29 for ``neighbour``, whose head has moved),
    the points of the nearest annotated pair of the same subject (``neighbour``; good for
    consecutive video frames), or nothing (``skip``; still listed). The model is loaded only
    when it is needed. Pairs that already have an annotation are kept unless
    ``overwrite`` (the old file is then kept as ``.orig.pts``). The model's points are those of the
    best face its detector finds (:meth:`~dmsl_core.pipeline.Predictor.faces`); no face is a miss.

    Each pair is written as soon as its points are known (atomically), so a run killed half-way keeps
    the pairs done; running it again (without ``overwrite``) keeps them and does the rest.
    """
    if source not in SOURCES:
        raise ValueError(f"--source must be one of {SOURCES}, got {source!r}")
    if dark not in DARK_MODES:
        raise ValueError(f"--dark must be one of {DARK_MODES}, got {dark!r}")
    t0 = time.perf_counter()
    aset = AnnotationSet(root, calibration)
    # fail before any work when the report (or the landmark files) cannot be written
    check_writable(Path(report_path) if report_path else aset.root / REPORT)
    check_writable(aset.root / JOURNAL)
    refused = {i: msg for i in range(len(aset)) if (msg := aset.records[i].path_error()) is not None}
    recovered = aset.recover()
    n = len(aset)
    model_box = [predictor]

    def model():
        # loaded on first use: a run that meets no dark image with ``--source dlib`` never needs it
        if model_box[0] is None:
            from .pipeline import Predictor
            model_box[0] = Predictor.from_weights(weights, device=device)
        return model_box[0]

    if source in ("model", "both"):
        model()
    if source in ("dlib", "both") and dlib is None:
        from .baselines import DlibBaseline
        dlib = DlibBaseline()
    report: dict = {"format": "dmsl-annotate-report", "version": 1, "data": str(aset.root), "source": source,
                    "dark": dark, "overwrite": bool(overwrite), "pairs": n, "written": [], "kept": [],
                    "misses": [], "dark_pairs": [], "no_transfer": [], "errors": [],
                    "model": None}
    if recovered:
        report["recovered"] = recovered
    autos: dict[int, _Auto] = {}
    darks: list[int] = []
    images: dict[int, dict] = {}
    timings = {"dlib_s": 0.0, "model_s": 0.0}

    def step(i: int, what: str) -> None:
        if progress is not None:
            progress(i, n, what)

    def commit(i: int, a: "_Auto") -> None:
        """Write pair ``i``'s annotation as soon as it is known (atomic files; the manifest follows)."""
        key = aset.key(i)
        r = aset.records[i]
        if r.th and a.th is None and a.vis is not None:
            report["no_transfer"].append({"pair": key, "reason": "unregistered pair and no calibration "
                                                                 f"({CALIBRATION} or --calib): thermal not annotated"})
        ann = PairAnnotation(vis=a.vis if r.vis else None, th=a.th if r.th else None, source=source,
                             disagreement=a.disagreement)
        ann.vis_origin = [a.vis_origin] * N_POINTS if ann.vis is not None else []
        ann.th_origin = [a.th_origin] * N_POINTS if ann.th is not None else []
        if ann.empty:
            return
        try:
            aset.save(i, ann, journal=False)
        except (OSError, ValueError) as exc:
            report["errors"].append({"pair": key, "error": f"cannot write: {exc}"})
            return
        report["written"].append({"pair": key, "vis": a.vis_origin or None, "th": a.th_origin or None,
                                  **({"disagreement": round(a.disagreement, 5)}
                                     if a.disagreement is not None and np.isfinite(a.disagreement) else {})})

    # pass 1: pairs with a usable visible image (or a thermal-only pair)
    for i in range(n):
        if should_stop is not None and should_stop():
            report["stopped"] = True
            break
        key = aset.key(i)
        step(i, key)
        if i in refused:  # a path escaping the dataset folder: nothing of this row is read or written
            report["errors"].append({"pair": key, "error": refused[i]})
            continue
        if aset.has_annotation(i) and not overwrite:
            report["kept"].append(key)
            continue
        try:
            imgs = {s: read_image(p) for s in ("vis", "th") if (p := aset.image_path(i, s)) is not None}
        except ValueError as exc:
            report["errors"].append({"pair": key, "error": str(exc)})
            continue
        vis = imgs.get("vis")
        if vis is not None and is_dark(vis):
            darks.append(i)
            if dark == "model" and "th" in imgs:
                images[i] = imgs
            continue
        spec, img = ("vis", vis) if vis is not None else ("th", imgs.get("th"))
        a = _Auto()
        d_pts = m_pts = None
        if source in ("dlib", "both"):
            t = time.perf_counter()
            d_pts = dlib.predict([img])[0].landmarks
            timings["dlib_s"] += time.perf_counter() - t
        if source in ("model", "both"):
            t = time.perf_counter()
            m_pts = _model_points(model(), img, spec)
            timings["model_s"] += time.perf_counter() - t
        if d_pts is not None and m_pts is not None:
            a.disagreement = interocular_nme(m_pts, d_pts)
        pts, origin = (d_pts, "dlib") if d_pts is not None else (m_pts, "model")
        if d_pts is None and source in ("dlib", "both"):
            report["misses"].append({"pair": key, "image": str(aset.image_path(i, spec)), "spectrum": spec,
                                     "reason": "Dlib found no face",
                                     "filled_by": "model" if m_pts is not None else None})
        elif m_pts is None and source == "model":
            report["misses"].append({"pair": key, "image": str(aset.image_path(i, spec)), "spectrum": spec,
                                     "reason": "the model's face detector found no face", "filled_by": None})
        if pts is None:
            continue
        if spec == "vis":
            a.vis, a.vis_origin = pts, origin
            if "th" in imgs:
                a.th = aset.vis_to_th(i, pts)
                a.th_origin = "transferred"
        else:
            a.th, a.th_origin = pts, origin
        autos[i] = a
        commit(i, a)   # written now: a kill later keeps it, and a re-run (without --overwrite) keeps it

    # pass 2: black visible images
    for i in darks:
        key = aset.key(i)
        entry = {"pair": key, "image": str(aset.image_path(i, "vis")), "mode": dark}
        a = None
        if dark == "neighbour":
            subj = aset.records[i].subject
            cands = sorted((k for k in range(n) if k != i and k not in darks and k not in refused
                            and aset.records[k].subject == subj),
                           key=lambda k: (abs(k - i), k))
            for k in cands:
                src = autos.get(k)
                if src is None and aset.has_annotation(k):
                    try:
                        ld = aset.load(k)
                    except (AnnotationError, ValueError):
                        continue
                    src = _Auto(vis=ld.vis, th=ld.th)
                if src is None or (src.vis is None and src.th is None):
                    continue
                vis_pts = src.vis if src.vis is not None else aset.th_to_vis(i, src.th)
                th_pts = src.th if src.th is not None else aset.vis_to_th(i, src.vis)
                a = _Auto(vis=vis_pts, th=th_pts, vis_origin="neighbour", th_origin="neighbour")
                entry["from"] = aset.key(k)
                break
            if a is None:
                entry["result"] = f"no annotated pair of subject {subj!r} to copy from"
        elif dark == "model" and i in images:
            t = time.perf_counter()
            th_img = images.pop(i)["th"]
            th_pts = _model_points(model(), th_img, "th")
            if th_pts is None:
                # no detector found a face on the thermal image (the thermal detector misses some, see
                # the README's detector section): M_b's own box is used, and the pair is flagged for checking
                th_pts = model().predict([th_img])[0].landmarks
                entry["unverified"] = "no face detector found the face on the thermal image: M_b's own box, check it"
            timings["model_s"] += time.perf_counter() - t
            a = _Auto(vis=aset.th_to_vis(i, th_pts), th=th_pts, vis_origin="transferred", th_origin="model")
        else:
            entry["result"] = "skipped" if dark == "skip" else "no thermal image"
        if a is not None:
            autos[i] = a
            commit(i, a)
            entry["result"] = "filled"
        report["dark_pairs"].append(entry)

    aset.write_manifest_if_needed()
    if model_box[0] is not None:
        report["model"] = str(getattr(model_box[0], "source", "") or getattr(model_box[0], "name", ""))
    dis = [w["disagreement"] for w in report["written"] if "disagreement" in w]
    report["counts"] = {"pairs": n, "written": len(report["written"]), "kept": len(report["kept"]),
                        "misses": len(report["misses"]),
                        "misses_unfilled": sum(1 for m in report["misses"] if not m.get("filled_by")),
                        "dark": len(report["dark_pairs"]), "errors": len(report["errors"]),
                        "no_transfer": len(report["no_transfer"])}
    if dis:
        report["disagreement"] = {"mean": round(float(np.mean(dis)), 5), "max": round(float(np.max(dis)), 5)}
    report["seconds"] = round(time.perf_counter() - t0, 2)
    report["timings"] = {k: round(v, 2) for k, v in timings.items()}
    out = Path(report_path) if report_path else aset.root / REPORT
    atomic_write_text(out, json.dumps(report, indent=1) + "\n")
    report["report_path"] = str(out)
    return report


def count_origins(root: str | os.PathLike) -> dict:
    """How many points of each origin a dataset has, per spectrum, and how many pairs are checked."""
    aset = AnnotationSet(root)
    counts = {"vis": {o: 0 for o in ORIGINS}, "th": {o: 0 for o in ORIGINS}, "checked": 0, "annotated": 0}
    for i in range(len(aset)):
        if not aset.has_annotation(i):
            continue
        ann = aset.load(i)
        counts["annotated"] += 1
        counts["checked"] += int(ann.checked)
        for s, org in (("vis", ann.vis_origin), ("th", ann.th_origin)):
            for o in org:
                counts[s][o] += 1
    return counts


def disagreement_order(aset: AnnotationSet) -> list[int]:
    """Pair indices, largest recorded Dlib-vs-model disagreement first (pairs without one last)."""
    vals = []
    for i in range(len(aset)):
        d = None
        p = aset.pts_paths(i)["vis"]
        if p is not None:
            try:
                meta = read_origin(origin_path(p)) or {}
                d = meta.get("disagreement")
            except AnnotationError:
                d = None
        vals.append(float(d) if isinstance(d, (int, float)) and np.isfinite(d) else -1.0)
    return sorted(range(len(aset)), key=lambda i: (-vals[i], i))


def format_report(rep: dict) -> str:
    """The lines ``dmsl annotate`` prints: the misses and dark pairs listed, then the counts."""
    lines = []
    for m in rep["misses"]:
        fb = f" - filled by the {m['filled_by']}" if m.get("filled_by") else " - not annotated"
        lines.append(f"no face: {m['image']} ({m['reason']}){fb}")
    for d in rep["dark_pairs"]:
        extra = f" from {d['from']}" if d.get("from") else ""
        check = f" - {d['unverified']}" if d.get("unverified") else ""
        lines.append(f"dark visible image: {d['image']} ({d['mode']}: {d.get('result', '')}{extra}){check}")
    for e in rep["errors"]:
        lines.append(f"error: {e['pair']}: {e['error']}")
    for e in rep["no_transfer"]:
        lines.append(f"not transferred: {e['pair']}: {e['reason']}")
    c = rep["counts"]
    s = (f"dmsl annotate: {c['written']} of {c['pairs']} pairs annotated ({rep['source']}), {c['kept']} kept, "
         f"{c['misses']} without a face found ({c['misses_unfilled']} left unannotated), {c['dark']} dark, "
         f"{c['errors']} errors in {rep['seconds']:.1f} s")
    if rep.get("disagreement"):
        s += f"; Dlib-vs-model NME mean {rep['disagreement']['mean']:.4f}, max {rep['disagreement']['max']:.4f}"
    if rep.get("recovered"):
        lines.insert(0, rep["recovered"])
    lines.append(s)
    lines.append(f"report: {rep['report_path']}")
    return "\n".join(lines)


__all__ = ["AnnotationSet", "PairAnnotation", "annotate_dataset", "count_origins", "disagreement_order",
           "origin_path", "original_path", "keep_original", "ORIGINS", "DatasetError"]
