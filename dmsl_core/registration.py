"""Visible <-> thermal registration of a dual-sensor rig: a 3x3 homography, its calibration and use.

A calibration JSON (one per rig, written by ``dmsl calibrate``)::

    {"format": "dmsl-calibration", "version": 1, "rig": "duo-pro-r-01",
     "H_th_to_vis": [[...], [...], [...]], "vis_size": [W, H], "th_size": [W, H],
     "method": "checkerboard 9x6" | "points" | "aruco", "n_points": 54,
     "rms_px": 0.41, "max_px": 1.2, "created": "2025-..."}

``rms_px`` / ``max_px`` are the reprojection errors of the thermal points mapped into the
visible image (visible pixels). Sources take a calibration with the URI option ``calib=FILE``.

Calibration from a target seen in both spectra: a checkerboard (heated or cooled, so its
contrast in thermal is often inverted - both polarities are tried) or an ArUco board (markers
matched by id, all four corners used). Calibration from point pairs: a CSV with columns
``vis_x,vis_y,th_x,th_y`` (or a JSON list of ``[vis_x, vis_y, th_x, th_y]``), at least 4 pairs.
"""
from __future__ import annotations

import csv
import datetime as _dt
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional

import cv2
import numpy as np

from .data.imageio import atomic_write_text


class CalibrationError(ValueError):
    """A calibration that cannot be computed or loaded; the message says why."""


def map_points(points: np.ndarray, H: np.ndarray) -> np.ndarray:
    """Apply a 3x3 homography to (N, 2) points (NaN rows stay NaN)."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    q = np.hstack([pts, np.ones((len(pts), 1))]) @ np.asarray(H, dtype=np.float64).T
    with np.errstate(invalid="ignore", divide="ignore"):
        return q[:, :2] / q[:, 2:3]


def warp_to(image: np.ndarray, H: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Warp ``image`` by ``H`` into an image of ``size`` = (W, H) (e.g. thermal into visible pixels)."""
    interp = cv2.INTER_LINEAR
    return cv2.warpPerspective(np.asarray(image), np.asarray(H, dtype=np.float64), size, flags=interp,
                               borderMode=cv2.BORDER_CONSTANT)


@dataclass
class Calibration:
    """A rig's thermal->visible homography and how well it fits."""

    H_th_to_vis: np.ndarray
    vis_size: Optional[tuple[int, int]] = None
    th_size: Optional[tuple[int, int]] = None
    method: str = "points"
    n_points: int = 0
    rms_px: float = float("nan")
    max_px: float = float("nan")
    rig: str = ""
    created: str = field(default_factory=lambda: _dt.datetime.now().isoformat(timespec="seconds"))

    @property
    def H_vis_to_th(self) -> np.ndarray:
        return np.linalg.inv(self.H_th_to_vis)

    def th_to_vis(self, points: np.ndarray) -> np.ndarray:
        return map_points(points, self.H_th_to_vis)

    def vis_to_th(self, points: np.ndarray) -> np.ndarray:
        return map_points(points, self.H_vis_to_th)

    def to_dict(self) -> dict:
        return {"format": "dmsl-calibration", "version": 1, "rig": self.rig,
                "H_th_to_vis": np.asarray(self.H_th_to_vis, float).round(10).tolist(),
                "vis_size": list(self.vis_size) if self.vis_size else None,
                "th_size": list(self.th_size) if self.th_size else None,
                "method": self.method, "n_points": int(self.n_points),
                "rms_px": None if not np.isfinite(self.rms_px) else round(float(self.rms_px), 4),
                "max_px": None if not np.isfinite(self.max_px) else round(float(self.max_px), 4),
                "created": self.created}

    def save(self, path: str | os.PathLike) -> Path:
        p = Path(path)
        atomic_write_text(p, json.dumps(self.to_dict(), indent=2) + "\n")
        return p

    @classmethod
    def from_dict(cls, d: dict, where: str = "calibration") -> "Calibration":
        try:
            H = np.asarray(d["H_th_to_vis"], dtype=np.float64)
        except (KeyError, TypeError, ValueError):
            raise CalibrationError(f"{where}: no valid H_th_to_vis (a 3x3 list)") from None
        if H.shape != (3, 3) or not np.isfinite(H).all() or abs(np.linalg.det(H)) < 1e-12:
            raise CalibrationError(f"{where}: H_th_to_vis must be an invertible 3x3 matrix")
        size = lambda v: tuple(int(x) for x in v) if v else None  # noqa: E731
        return cls(H_th_to_vis=H, vis_size=size(d.get("vis_size")), th_size=size(d.get("th_size")),
                   method=str(d.get("method", "")), n_points=int(d.get("n_points") or 0),
                   rms_px=float(d["rms_px"]) if d.get("rms_px") is not None else float("nan"),
                   max_px=float(d["max_px"]) if d.get("max_px") is not None else float("nan"),
                   rig=str(d.get("rig", "")), created=str(d.get("created", "")))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Calibration":
        p = Path(path)
        if not p.exists():
            raise CalibrationError(f"{p}: no such calibration file")
        try:
            d = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise CalibrationError(f"{p}: not a readable JSON calibration ({exc})") from exc
        if not isinstance(d, dict):
            raise CalibrationError(f"{p}: expected a JSON object")
        return cls.from_dict(d, str(p))

    def summary(self) -> str:
        return (f"homography from {self.n_points} point pairs ({self.method}): reprojection error "
                f"RMS {self.rms_px:.3f} px, max {self.max_px:.3f} px (visible pixels)")


def reprojection_errors(H: np.ndarray, th_pts: np.ndarray, vis_pts: np.ndarray) -> np.ndarray:
    return np.linalg.norm(map_points(th_pts, H) - np.asarray(vis_pts, float).reshape(-1, 2), axis=1)


def calibrate_from_points(vis_pts: np.ndarray, th_pts: np.ndarray, method: str = "points", ransac: bool = False,
                          vis_size: Optional[tuple[int, int]] = None, th_size: Optional[tuple[int, int]] = None,
                          rig: str = "") -> Calibration:
    """Fit H (thermal -> visible) to >= 4 point pairs; least squares, or RANSAC to drop outliers."""
    v = np.asarray(vis_pts, dtype=np.float64).reshape(-1, 2)
    t = np.asarray(th_pts, dtype=np.float64).reshape(-1, 2)
    if len(v) != len(t):
        raise CalibrationError(f"{len(v)} visible points but {len(t)} thermal points")
    if len(v) < 4:
        raise CalibrationError(f"a homography needs at least 4 point pairs, got {len(v)}")
    H, mask = cv2.findHomography(t, v, cv2.RANSAC if ransac else 0, 3.0)
    if H is None:
        raise CalibrationError("the points do not determine a homography (collinear or repeated?)")
    inl = np.ones(len(v), bool)
    if ransac:  # keep every point the robust fit explains, then refit them by least squares
        inl = reprojection_errors(H, t, v) < 3.0
        if inl.sum() >= 4:
            H2, _ = cv2.findHomography(t[inl], v[inl], 0)
            if H2 is not None:
                H = H2
    err = reprojection_errors(H, t[inl], v[inl])
    return Calibration(H_th_to_vis=H / H[2, 2], vis_size=vis_size, th_size=th_size, method=method,
                       n_points=int(inl.sum()), rms_px=float(np.sqrt(np.mean(err ** 2))), max_px=float(err.max()),
                       rig=rig)


def read_point_pairs(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """(vis_pts, th_pts) from a CSV (vis_x,vis_y,th_x,th_y) or JSON ([[vx, vy, tx, ty], ...] or {"pairs": ...})."""
    p = Path(path)
    if not p.exists():
        raise CalibrationError(f"{p}: no such point-pair file")
    try:
        if p.suffix.lower() == ".json":
            d = json.loads(p.read_text(encoding="utf-8"))
            rows = d["pairs"] if isinstance(d, dict) else d
            arr = np.asarray(rows, dtype=np.float64)
        else:
            with open(p, newline="", encoding="utf-8") as fh:
                rows = list(csv.reader(fh))
            if rows and not _is_number(rows[0][0]):
                head = [h.strip().lower() for h in rows[0]]
                idx = [head.index(c) for c in ("vis_x", "vis_y", "th_x", "th_y")]
                rows = [[r[i] for i in idx] for r in rows[1:] if r]
            arr = np.asarray([[float(x) for x in r[:4]] for r in rows if r], dtype=np.float64)
    except (ValueError, KeyError, IndexError, json.JSONDecodeError) as exc:
        raise CalibrationError(f"{p}: expected rows vis_x,vis_y,th_x,th_y ({exc})") from exc
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise CalibrationError(f"{p}: expected 4 numbers per row (vis_x, vis_y, th_x, th_y), got shape {arr.shape}")
    return arr[:, :2], arr[:, 2:]


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def _gray8(img: np.ndarray) -> np.ndarray:
    a = np.asarray(img)
    if a.ndim == 3:
        a = cv2.cvtColor(a[:, :, :3].astype(np.uint8) if a.dtype == np.uint8 else a[:, :, :3].astype(np.float32),
                         cv2.COLOR_RGB2GRAY)
    if a.dtype != np.uint8:
        f = a.astype(np.float32)
        lo, hi = np.percentile(f, [0.5, 99.5])
        a = np.clip((f - lo) / max(1e-6, hi - lo) * 255, 0, 255).astype(np.uint8)
    return a


def find_checkerboard(image: np.ndarray, pattern: tuple[int, int], invert: Optional[bool] = None) -> Optional[np.ndarray]:
    """Inner corners (cols*rows, 2) of a checkerboard, sub-pixel refined; tries the inverted image too.

    Corners are ordered so that the first corner is the top-left one of the board in the image
    (the order OpenCV returns can start at either end for a symmetric board).
    """
    g = _gray8(image)
    tries = [g, 255 - g] if invert is None else ([255 - g] if invert else [g])
    flags = cv2.CALIB_CB_ADAPTIVE_THRESH | cv2.CALIB_CB_NORMALIZE_IMAGE
    for im in tries:
        ok, corners = cv2.findChessboardCorners(im, pattern, flags=flags)
        if ok:
            corners = cv2.cornerSubPix(im, corners, (5, 5), (-1, -1),
                                       (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 40, 0.01))
            c = corners.reshape(-1, 2).astype(np.float64)
            if c[0, 0] + c[0, 1] > c[-1, 0] + c[-1, 1]:  # canonical order: start near the top-left
                c = c[::-1].copy()
            return c
    return None


def find_aruco(image: np.ndarray, dictionary: str = "DICT_4X4_50", invert: Optional[bool] = None) -> dict[int, np.ndarray]:
    """ArUco markers: {id: (4, 2) corners}; tries the inverted image too (thermal boards)."""
    if not hasattr(cv2, "aruco"):
        raise CalibrationError("this OpenCV build has no aruco module")
    d = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, dictionary))
    det = cv2.aruco.ArucoDetector(d, cv2.aruco.DetectorParameters())
    g = _gray8(image)
    out: dict[int, np.ndarray] = {}
    for im in ([g, 255 - g] if invert is None else ([255 - g] if invert else [g])):
        corners, ids, _ = det.detectMarkers(im)
        if ids is not None:
            for c, i in zip(corners, ids.ravel()):
                out.setdefault(int(i), c.reshape(4, 2).astype(np.float64))
        if out:
            break
    return out


def target_points(vis: np.ndarray, th: np.ndarray, target: str) -> tuple[np.ndarray, np.ndarray]:
    """Matching (vis_pts, th_pts) of a calibration target seen in both images.

    ``target``: ``checkerboard:COLSxROWS`` (inner corners) or ``aruco[:DICT_NAME]``.
    Raises :class:`CalibrationError` when the target is not found in one of the images.
    """
    kind, _, arg = target.partition(":")
    if kind in ("checkerboard", "chessboard", "cb"):
        try:
            cols, rows = (int(s) for s in arg.lower().split("x"))
        except ValueError:
            raise CalibrationError(f"target {target!r}: use checkerboard:COLSxROWS (inner corners), e.g. checkerboard:9x6") from None
        v = find_checkerboard(vis, (cols, rows))
        if v is None:
            raise CalibrationError(f"checkerboard {cols}x{rows} not found in the visible image")
        t = find_checkerboard(th, (cols, rows))
        if t is None:
            raise CalibrationError(f"checkerboard {cols}x{rows} not found in the thermal image (tried both polarities)")
        return v, t
    if kind == "aruco":
        mv = find_aruco(vis, arg or "DICT_4X4_50")
        mt = find_aruco(th, arg or "DICT_4X4_50")
        common = sorted(set(mv) & set(mt))
        if not common:
            raise CalibrationError(f"no ArUco marker seen in both images (visible: {sorted(mv)}, thermal: {sorted(mt)})")
        return (np.vstack([mv[i] for i in common]), np.vstack([mt[i] for i in common]))
    raise CalibrationError(f"unknown calibration target {target!r}; use checkerboard:COLSxROWS or aruco[:DICT]")


def calibrate_from_images(pairs: Iterable[tuple[np.ndarray, np.ndarray]], target: str, rig: str = "",
                          ransac: bool = True) -> tuple[Calibration, int]:
    """Calibrate from image pairs showing the target; returns (calibration, number of pairs used)."""
    vs, ts, used, last_err = [], [], 0, None
    vis_size = th_size = None
    for vis, th in pairs:
        try:
            v, t = target_points(vis, th, target)
        except CalibrationError as exc:
            last_err = exc
            continue
        vs.append(v)
        ts.append(t)
        used += 1
        vis_size = (vis.shape[1], vis.shape[0])
        th_size = (th.shape[1], th.shape[0])
    if not used:
        raise CalibrationError(f"the target was not found in any image pair ({last_err})")
    cal = calibrate_from_points(np.vstack(vs), np.vstack(ts), method=target, ransac=ransac,
                                vis_size=vis_size, th_size=th_size, rig=rig)
    return cal, used


def homography_for_pair(pair) -> Optional[np.ndarray]:
    """The thermal->visible homography of a FramePair: its own, identity when registered, else None."""
    if getattr(pair, "homography_th_to_vis", None) is not None:
        return np.asarray(pair.homography_th_to_vis, dtype=np.float64)
    if getattr(pair, "registered", False):
        return np.eye(3)
    return None
