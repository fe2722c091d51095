"""Face detection: every face in a frame, at any size, or none - before the landmark pipeline.

M_b regresses exactly one box per frame (even on a photo of coffee); a detector in front of it says
how many faces there are (possibly none) and where. Backends are registered by name::

    from dmsl_core.detection import get_detector, list_detectors
    det = get_detector("auto")               # or "yunet", "dlib-hog", "dlib-hog-thermal", "dlib-cnn", "skimage-lbp"
    faces = det(image)                       # list[Detection], best first; [] = no face

Every backend takes any image the pipeline takes (grey / RGB uint8, 16-bit or float thermal): it is
turned into 8-bit grey first (8-bit images by their luma; other bit depths by the pipeline's
per-image 1-99 percentile stretch, :func:`dmsl_core.preprocess.normalise`).

Common options (``get_detector(name, **opts)``):

- ``min_face``: the smallest face side to find, as a fraction of the image's longer side (default
  0.05 = 32 px in a 640 x 512 frame). The image is resized so that such a face fills the
  backend's smallest window (up- or down-sampling; see each backend's ``WINDOW``).
- ``threshold``: the score below which a candidate is no face (each backend's scale, below).
- ``nms_iou``: candidates overlapping a better one by more than this IoU are dropped (0.3).
- ``max_side``: the working image's longer side is capped at this (speed; 0 = no cap).
- ``thermal_polarity``: for ``spectrum="th"`` frames, ``"both"`` (the default of most backends)
  searches the frame and its intensity inverse and merges the two by NMS; ``"as-is"`` only the frame;
  ``"auto"`` (``dlib-hog-thermal``'s default) both ways for 8-bit frames only (16-bit and float thermal
  frames are temperature-ordered: warmer is higher). The backends are trained
  on visible photos; on the three real white-hot thermal frames in shared/reference/thermal they
  found no face as-is and two of the faces in the inverted (black-hot) frames - weak evidence (three
  frames). ``dlib-hog-thermal`` (below) is the detector trained for thermal frames.

Scores (``Detection.score``; higher = more sure, each backend's own scale):

- ``yunet``: YuNet-s, a 75 k-parameter CNN (libfacedetection.train, Apache-2.0) run by OpenCV's
  ``cv2.FaceDetectorYN``; its face confidence 0-1, cut at 0.6; its box mapped to the 68 points' box.
  Ships as ``assets/detectors/yunet_s.onnx`` (232 KB): nothing to download, no extra package.

- ``dlib-hog``: Dlib's HOG + linear SVM frontal detector (``dlib.get_frontal_face_detector``), the
  SVM margin from ``run(img, 0, threshold)``; Dlib's own cut is 0.0 (our default threshold 0.0).
  Window 80 px. Ships inside the ``dlib`` wheel: no file to download.
- ``dlib-cnn``: Dlib's CNN max-margin (MMOD) detector, weights ``mmod_human_face_detector.dat``
  from the ``face_recognition_models`` package (found by importlib, never downloaded); score = its
  confidence (Dlib's cut 0.0; our default 0.0). Window ~40 px. Slow on a CPU (seconds per frame).
- ``skimage-lbp``: scikit-image's LBP cascade (``skimage.feature.Cascade`` with the OpenCV frontal
  LBP cascade scikit-image ships). The cascade gives no confidence: ``threshold`` is scikit-image's
  ``min_neighbor_number`` (raw windows a face needs, default 4) and every face it returns scores
  that number.

OpenCV's Haar / LBP cascades (``cv2.CascadeClassifier``, ``cv2.data.haarcascades``) are not
available: the installed OpenCV 5 wheel ships neither the class nor the cascade files. MediaPipe is
not a backend: its PyPI wheel ships no face detection model (the tasks API loads a downloaded
``.tflite``) and depends on ``opencv-contrib-python``, which clashes with the headless OpenCV here.

``auto`` is ``yunet`` for visible frames (on HELEN test's whole photos it finds 330 of 330 faces in
5 ms per 640 px image, Dlib's HOG 319 in 128 ms; YuNet sees no face in the 36 no-face images, the HOG one)
and ``dlib-hog-thermal`` (the HOG detector retrained on thermal faces, shipped in
``assets/detectors/``) for thermal ones (YuNet finds few small thermal faces: see
:class:`AutoDetector`); ``tools/detector_benchmark.py`` measures them side by side.
"""
from __future__ import annotations

import importlib.util
import os
import threading
from dataclasses import dataclass
from typing import Callable, Optional

import cv2
import numpy as np

from . import preprocess as pp


@dataclass
class Detection:
    box: np.ndarray          # [x, y, w, h] in the input image's pixels
    score: float             # the backend's confidence (see the module docstring for its scale)
    spectrum: str = ""       # "vis" / "th" / "" (unknown), as given to the detector
    detector: str = ""       # the backend's registered name

    def to_dict(self) -> dict:
        return {"box": [round(float(v), 2) for v in self.box], "score": round(float(self.score), 4),
                "spectrum": self.spectrum, "detector": self.detector}


_REGISTRY: dict[str, Callable[..., "FaceDetector"]] = {}
_DESCRIPTIONS: dict[str, str] = {}


def register_detector(name: str, description: str = "") -> Callable:
    """Class / factory decorator: ``get_detector(name, **opts)`` builds it with those options."""
    def deco(factory):
        if name in _REGISTRY:
            raise ValueError(f"face detector {name!r} is already registered")
        _REGISTRY[name] = factory
        _DESCRIPTIONS[name] = description or (factory.__doc__ or "").strip().split("\n")[0]
        return factory
    return deco


def list_detectors(available_only: bool = False) -> list[str]:
    """Registered names (``auto`` first); ``available_only``: those whose package/files are here."""
    names = ["auto"] + sorted(_REGISTRY)
    if available_only:
        names = ["auto"] + [n for n in sorted(_REGISTRY) if detector_available(n)]
    return names


def describe_detector(name: str) -> str:
    return ("yunet for visible frames, dlib-hog-thermal for thermal ones (see below)" if name == "auto"
            else _DESCRIPTIONS.get(name, ""))


def detector_available(name: str) -> bool:
    factory = _REGISTRY.get(AUTO if name == "auto" else name)
    check = getattr(factory, "available", None)
    return bool(factory) and (check() if callable(check) else True)


#: what ``auto`` resolves to (visible and unknown frames)
AUTO = "yunet"


#: what ``auto`` resolves to for thermal frames (``spectrum="th"``), when its weights are here
AUTO_THERMAL = "dlib-hog-thermal"


class UnionDetector:
    """Several detectors on the same frame, their faces merged by :func:`nms` (each face keeps the
    name of the backend that found it). Options (``min_face``, ``threshold``...) read the first's."""

    def __init__(self, detectors: list, nms_iou: float = 0.3) -> None:
        self.detectors = list(detectors)
        self.nms_iou = float(nms_iou)
        self.name = "+".join(d.name for d in self.detectors)

    def __getattr__(self, item):
        return getattr(self.__dict__["detectors"][0], item) if "detectors" in self.__dict__ \
            else super().__getattribute__(item)

    def __call__(self, image: np.ndarray, spectrum: Optional[str] = None) -> list["Detection"]:
        return nms([d for det in self.detectors for d in det(image, spectrum)], self.nms_iou)


class AutoDetector:
    """``auto``: :data:`AUTO` for visible (and unknown) frames, :data:`AUTO_THERMAL` for ``spectrum="th"``
    frames. Measured (``tools/detector_benchmark.py``, one thread, 640 px): on HELEN test's whole photos
    YuNet finds 330 of 330 annotated faces in 5 ms per image (Dlib's HOG 319 in 128 ms), no face on the
    36 no-face images; on the thermalized HELEN test crops YuNet finds 64-92 % (by search scale), the thermal HOG 94.8 %
    (the visible HOG 39 %), and in thermal scenes with small faces (28-80 px, ``tools/face_targets.py``)
    YuNet finds 10 %, the thermal HOG 92.5 % - so thermal frames go to the thermal HOG, with YuNet beside
    it (:class:`UnionDetector`): on the three real thermal frames YuNet finds faces the HOG misses (all
    real: looked at: 1, 3 and 4 faces against the HOG's 0, 1 and 1), and in thermal scenes made from
    HELEN *training* faces the two together find 109 of 120 faces, the HOG alone 108, no other face
    either way (measured once on the thermalized HELEN test crops: 96.7 % together, 94.8 % the HOG). Without the HOG's weights (or without
    dlib) every frame goes to :data:`AUTO` (thermal frames searched in both polarities)."""
    name = "auto"

    def __init__(self, **opts) -> None:
        self.vis = _REGISTRY[AUTO](**opts)
        th = _REGISTRY.get(AUTO_THERMAL)
        self.th = th(**opts) if th is not None and th.available() else self.vis
        if self.th is not self.vis and AUTO == "yunet":
            # YuNet beside the thermal HOG: it adds the faces the HOG misses on real frames (a close-up
            # turned upwards, a second person in a street scene) and nothing false in the generated scenes
            self.th = UnionDetector([self.th, self.vis])

    def __getattr__(self, item):          # min_face, threshold, ... of the visible detector
        return getattr(self.__dict__["vis"], item) if "vis" in self.__dict__ else super().__getattribute__(item)

    def __call__(self, image: np.ndarray, spectrum: Optional[str] = None) -> list["Detection"]:
        return (self.th if spectrum == "th" else self.vis)(image, spectrum)


def boxes_fitted(name: str) -> bool:
    """Whether detections of the backend registered as ``name`` come as the 68 points' box
    (:attr:`FaceDetector.FITTED_BOXES`); False for an unknown name."""
    cls = _REGISTRY.get(name)
    return bool(getattr(cls, "FITTED_BOXES", False))


def get_detector(name: str = "auto", **opts):
    """The detector registered as ``name`` built with ``opts``; ``auto`` = :class:`AutoDetector`."""
    if name == "auto" and AUTO in _REGISTRY:
        return AutoDetector(**opts)
    key = AUTO if name == "auto" else name
    if key not in _REGISTRY:
        raise ValueError(f"unknown face detector {name!r} (known: {', '.join(list_detectors())})")
    return _REGISTRY[key](**opts)


# ----------------------------------------------------------------------------- helpers
def to_gray8(image: np.ndarray) -> np.ndarray:
    """Any supported image -> HxW uint8 grey (8-bit: luma; other depths: 1-99 percentile stretch)."""
    arr = np.asarray(image)
    if arr.dtype == np.uint8:
        if arr.ndim == 3:
            return cv2.cvtColor(np.ascontiguousarray(arr[:, :, :3]), cv2.COLOR_RGB2GRAY) if arr.shape[2] >= 3 \
                else np.ascontiguousarray(arr[:, :, 0])
        if arr.ndim != 2:
            raise ValueError(f"expected a HxW or HxWx3 image, got shape {arr.shape}")
        return np.ascontiguousarray(arr)
    g = pp.prepare_gray(arr)
    return np.round(pp.normalise(g) * 255.0).astype(np.uint8)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    ax, ay, aw, ah = (float(v) for v in a)
    bx, by, bw, bh = (float(v) for v in b)
    iw = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = iw * ih
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


def nms(dets: list[Detection], iou_threshold: float = 0.3) -> list[Detection]:
    """Greedy non-maximum suppression: best score first; drops any box overlapping a kept one by
    more than ``iou_threshold`` (or lying mostly inside it: intersection > 0.8 of its own area)."""
    kept: list[Detection] = []
    for d in sorted(dets, key=lambda d: -d.score):
        ok = True
        for k in kept:
            if iou(d.box, k.box) > iou_threshold:
                ok = False
                break
            if _inter(d.box, k.box) > 0.8 * d.box[2] * d.box[3]:
                ok = False
                break
        if ok:
            kept.append(d)
    # a box lying mostly inside a kept box of at least twice its side is a part of that face (an eye, a
    # forehead patch: the thermal detector's typical false face), whichever scored higher
    return [d for d in kept if not any(k is not d and k.box[2] * k.box[3] >= 4 * d.box[2] * d.box[3]
                                       and _inter(d.box, k.box) > 0.8 * d.box[2] * d.box[3] for k in kept)]


def _inter(a: np.ndarray, b: np.ndarray) -> float:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    return max(0.0, x1 - x0) * max(0.0, y1 - y0)


def search_inverted(image: np.ndarray, spectrum: Optional[str], polarity: str) -> bool:
    """Whether a frame is also searched in the other polarity: thermal frames with ``polarity`` "both";
    with "auto" only 8-bit ones (a camera's display output: white-hot or black-hot). 16-bit and float
    thermal frames are temperatures or radiometric counts - warmer is higher - and are searched as they
    are (half the time)."""
    if spectrum != "th" or polarity == "as-is":
        return False
    return polarity == "both" or np.asarray(image).dtype == np.uint8


class FaceDetector:
    """Base class: ``__call__(image, spectrum=None) -> list[Detection]`` (best first, NMS done,
    below-threshold candidates dropped). Subclasses implement :meth:`_detect` on 8-bit grey at
    the working scale, returning ``(boxes [x, y, w, h], scores)`` in that image's pixels."""

    name = ""
    WINDOW = 80            # the backend's smallest face side in working pixels
    DEFAULT_THRESHOLD = 0.0
    DEFAULT_POLARITY = "both"
    #: True when the backend's boxes are mapped onto the box of the 68 points (as M_l's training boxes
    #: are drawn), so the landmark stage may start from them as they are; False: a box of the backend's
    #: own shape and placement, which the model card's ``inference.refine_rough`` refines (M_b's pass)
    FITTED_BOXES = False

    def __init__(self, min_face: float = 0.05, threshold: Optional[float] = None, nms_iou: float = 0.3,
                 max_side: int = 0, thermal_polarity: Optional[str] = None) -> None:
        if not 0.0 < float(min_face) <= 1.0:
            raise ValueError(f"min_face must be a fraction of the image's longer side in (0, 1], got {min_face}")
        self.min_face = float(min_face)
        self.threshold = self.DEFAULT_THRESHOLD if threshold is None else float(threshold)
        self.nms_iou = float(nms_iou)
        self.max_side = int(max_side)
        thermal_polarity = self.DEFAULT_POLARITY if thermal_polarity is None else thermal_polarity
        if thermal_polarity not in ("auto", "both", "as-is"):
            raise ValueError(f"thermal_polarity must be 'auto', 'both' or 'as-is', got {thermal_polarity!r}")
        self.thermal_polarity = thermal_polarity

    @classmethod
    def available(cls) -> bool:
        return True

    def working_scale(self, shape: tuple[int, int], window: Optional[float] = None) -> float:
        longer = max(shape[:2])
        s = (window or self.WINDOW) / (self.min_face * longer)
        if self.max_side > 0:
            s = min(s, self.max_side / longer)
        return s

    def _prepare(self, image: np.ndarray, spectrum: Optional[str]) -> tuple[np.ndarray, float]:
        """The 8-bit image the backend searches, and the window its smallest face should fill."""
        return to_gray8(image), self.WINDOW

    def _to_box(self, x: float, y: float, w: float, h: float, shape: tuple) -> Optional[np.ndarray]:
        """A candidate's box (input pixels) as reported, or None to drop it (``shape``: the input's)."""
        return np.array([x, y, w, h])

    def __call__(self, image: np.ndarray, spectrum: Optional[str] = None) -> list[Detection]:
        img8, window = self._prepare(image, spectrum)
        if img8.size == 0 or int(img8.max()) == int(img8.min()):
            return []                                           # flat: nothing to find
        s = self.working_scale(img8.shape, window)
        work = img8 if abs(s - 1.0) < 1e-3 else cv2.resize(
            img8, (max(1, int(round(img8.shape[1] * s))), max(1, int(round(img8.shape[0] * s)))),
            interpolation=cv2.INTER_LINEAR if s > 1 else cv2.INTER_AREA)
        fx, fy = work.shape[1] / img8.shape[1], work.shape[0] / img8.shape[0]
        dets = []
        found = list(self._detect(work))
        if search_inverted(image, spectrum, self.thermal_polarity):
            found += list(self._detect(255 - work))
        for box, score in found:
            if score < self.threshold:
                continue
            x, y, w, h = (float(v) for v in box)
            b = self._to_box(x / fx, y / fy, w / fx, h / fy, img8.shape)
            if b is not None:
                dets.append(Detection(box=b, score=float(score), spectrum=spectrum or "", detector=self.name))
        return nms(dets, self.nms_iou)

    def _detect(self, gray8: np.ndarray):  # pragma: no cover - abstract
        raise NotImplementedError


def _clip_rect(r, shape) -> tuple[float, float, float, float]:
    x0, y0 = max(0, r.left()), max(0, r.top())
    x1, y1 = min(shape[1], r.right() + 1), min(shape[0], r.bottom() + 1)
    return x0, y0, max(0, x1 - x0), max(0, y1 - y0)


@register_detector("dlib-hog", "Dlib's HOG + linear SVM frontal face detector (ships inside dlib)")
class DlibHogDetector(FaceDetector):
    name = "dlib-hog"
    WINDOW = 80
    DEFAULT_THRESHOLD = 0.0

    def __init__(self, **opts) -> None:
        super().__init__(**opts)
        import dlib
        self._det = dlib.get_frontal_face_detector()

    @classmethod
    def available(cls) -> bool:
        return importlib.util.find_spec("dlib") is not None

    def _detect(self, gray8):
        rects, scores, _ = self._det.run(gray8, 0, self.threshold)
        return [(_clip_rect(r, gray8.shape), s) for r, s in zip(rects, scores)]


def _shipped_file(name: str) -> Optional[str]:
    """``assets/detectors/NAME`` (shipped in the repository), or None when it is not there."""
    p = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "assets", "detectors", name)
    return p if os.path.isfile(p) else None


def thermal_weights_path() -> Optional[str]:
    """``assets/detectors/dlib-hog-thermal.svm`` (shipped in the repository), or None."""
    return _shipped_file("dlib-hog-thermal.svm")


@register_detector("dlib-hog-thermal", "Dlib's HOG + linear SVM trained on thermal faces "
                   "(assets/detectors/dlib-hog-thermal.svm; tools/train_thermal_detector.py)")
class DlibHogThermalDetector(FaceDetector):
    """The HOG detector retrained on thermal faces: the thermalized 300-W training faces and the
    generator's thermal faces (``tools/train_thermal_detector.py``; white-hot, so a ``th`` frame is
    also searched inverted for black-hot cameras). Score = the SVM margin, cut at 0.4 (below)."""
    name = "dlib-hog-thermal"
    WINDOW = 80
    # chosen on the validation subjects of the training mix (every 2nd of their 410 thermal crops, both
    # polarities; `python tools/train_thermal_detector.py /work/data/mix-r2 --sweep`): margin 0.0 finds
    # 93.7 % of the faces with 0.47 other boxes per image, 0.2: 92.2 % / 0.26, 0.4: 89.3 % / 0.16,
    # 0.6: 85.4 % / 0.09 (other boxes: small ones in hair and background texture, and unannotated faces)
    DEFAULT_THRESHOLD = 0.4
    # trained on white-hot faces: a 16-bit / float frame (temperatures, radiometric counts: warmer is
    # higher) is searched as it is, an 8-bit one (a display output, perhaps black-hot) both ways.
    # Measured on thermal scenes of HELEN *training* faces (tools/face_targets.py --parts thermal
    # --thermal-test helen_train2_th): 109 of 120 faces found either way (with YuNet beside it, which
    # keeps searching both), the scenes' detection time 9.6 -> 6.5 s
    DEFAULT_POLARITY = "auto"

    def __init__(self, path: Optional[str] = None, **opts) -> None:
        super().__init__(**opts)
        import dlib
        p = path or thermal_weights_path()
        if not p or not os.path.isfile(p):
            raise ValueError(f"thermal face detector weights not found: {p or 'assets/detectors/dlib-hog-thermal.svm'}")
        self._det = dlib.fhog_object_detector(str(p))

    @classmethod
    def available(cls) -> bool:
        return importlib.util.find_spec("dlib") is not None and thermal_weights_path() is not None

    def _detect(self, gray8):
        rects, scores, _ = self._det.run(gray8, 0, self.threshold)
        return [(_clip_rect(r, gray8.shape), s) for r, s in zip(rects, scores)]


def _quietly(fn, *args):
    """Call ``fn`` with OpenCV's log at errors only (its DNN engine warns on every network it loads that
    it ignores a target setting: noise on the user's terminal)."""
    log_api = getattr(getattr(cv2, "utils", None), "logging", None)
    if log_api is None:
        return fn(*args)
    old = log_api.getLogLevel()
    log_api.setLogLevel(log_api.LOG_LEVEL_ERROR)
    try:
        return fn(*args)
    finally:
        log_api.setLogLevel(old)


def yunet_weights_path() -> Optional[str]:
    """``assets/detectors/yunet_s.onnx`` (shipped in the repository), or None."""
    return _shipped_file("yunet_s.onnx")


@register_detector("yunet", "YuNet, a small CNN face detector run by OpenCV's FaceDetectorYN "
                   "(assets/detectors/yunet_s.onnx, libfacedetection.train, Apache-2.0)")
class YuNetDetector(FaceDetector):
    """YuNet-s (Wu, Peng, Yu: "YuNet: A Tiny Millisecond-level Face Detector", 2023; 75 k parameters,
    trained on WIDER FACE) through :class:`cv2.FaceDetectorYN`, which ships with OpenCV: nothing to
    install, the 232 KB ONNX file is in ``assets/detectors/`` (from ``ShiqiYu/libfacedetection.train``
    @ ``0047ac24``, ``onnx/yunet_s_dynamic.onnx``, Apache License 2.0: ``YUNET-LICENSE.txt``).

    It sees colour (a visible RGB frame as it is; grey, 16-bit and float frames as the pipeline's
    8-bit stretch, in three equal channels). A colour frame is scaled to make ``min_face`` 20 px (a 640 x
    512 frame with faces from 32 px is searched at 400 x 320; at 16 px it lost the smallest of three 38 px
    faces on 4 of 30 noisy frames, at 20 px none, 7 ms a frame), a grey one 32 px (at 20 px it lost a 34 px
    grey face; ``GREY_WINDOW``) - never up by more than ``max_upscale``. Score = its face confidence (0-1), cut at 0.6.
    Thermal frames are searched as they are and inverted (``thermal_polarity``), like every backend.

    Its box (forehead to chin) is mapped to the box the landmark stage works with - the bounding box
    of the 68 points - by ``box_map`` = (centre shift x, y in units of the box's width, height; width,
    height scale), fitted on the 870 faces of 300-W's HELEN *training* photos (medians; `tools/
    fit_detector_box.py`): on every 2nd of those photos the pipeline's NME went 0.0466 -> 0.0449 and
    its failures (NME > 0.08) 6.6 -> 5.8 % with the map (dlib-hog there: 0.0464, 7.0 %).
    """
    name = "yunet"
    WINDOW = 20
    GREY_WINDOW = 32
    DEFAULT_THRESHOLD = 0.6
    FITTED_BOXES = True          # mapped onto the 68 points' box (BOX_MAP)
    BOX_MAP = (0.0075, 0.1254, 1.0303, 0.7603)

    def __init__(self, path: Optional[str] = None, max_upscale: float = 2.0,
                 box_map: Optional[tuple[float, float, float, float]] = None, **opts) -> None:
        super().__init__(**opts)
        self.box_map = tuple(float(v) for v in (self.BOX_MAP if box_map is None else box_map))
        if len(self.box_map) != 4 or self.box_map[2] <= 0 or self.box_map[3] <= 0:
            raise ValueError(f"box_map must be (dx, dy, width scale > 0, height scale > 0), got {box_map}")
        p = path or yunet_weights_path()
        if not p or not os.path.isfile(p):
            raise ValueError(f"YuNet weights not found: {p or 'assets/detectors/yunet_s.onnx'}")
        if not hasattr(cv2, "FaceDetectorYN"):
            raise RuntimeError("the yunet face detector needs OpenCV >= 4.5.4 (cv2.FaceDetectorYN)")
        self.path = str(p)
        self.max_upscale = float(max_upscale)
        # the network's own cut is kept low: the threshold (and NMS) are applied in __call__
        self._det = _quietly(cv2.FaceDetectorYN.create, self.path, "", (320, 320), min(0.3, self.threshold), 0.3, 5000)
        self._size = (320, 320)
        self._lock = threading.Lock()       # one network, its input size set per call: one call at a time

    @classmethod
    def available(cls) -> bool:
        return hasattr(cv2, "FaceDetectorYN") and yunet_weights_path() is not None

    def working_scale(self, shape, window: Optional[float] = None):
        return min(super().working_scale(shape, window), self.max_upscale)

    def _prepare(self, image, spectrum):
        arr = np.asarray(image)
        if arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[2] >= 3 and spectrum != "th":
            return cv2.cvtColor(np.ascontiguousarray(arr[:, :, :3]), cv2.COLOR_RGB2BGR), self.WINDOW
        return cv2.cvtColor(to_gray8(arr), cv2.COLOR_GRAY2BGR), self.GREY_WINDOW   # grey: searched larger

    def _to_box(self, x, y, w, h, shape):
        if max(w, h) < 0.8 * self.min_face * max(shape[:2]):
            return None                      # the CNN also sees smaller faces than asked for: not reported
        dx, dy, sw, sh = self.box_map        # its box (forehead to chin) -> the 68 points' box
        cx, cy, nw, nh = x + w / 2 + dx * w, y + h / 2 + dy * h, w * sw, h * sh
        return np.array([cx - nw / 2, cy - nh / 2, nw, nh])

    def _detect(self, bgr: np.ndarray):
        h, w = bgr.shape[:2]
        with self._lock:
            if (w, h) != self._size:
                self._det.setInputSize((w, h))
                self._size = (w, h)
            _, faces = self._det.detect(bgr)
        if faces is None:
            return []
        out = []
        for f in faces:
            x, y, bw, bh = (float(v) for v in f[:4])
            x0, y0 = max(0.0, x), max(0.0, y)
            x1, y1 = min(float(w), x + bw), min(float(h), y + bh)
            if x1 > x0 and y1 > y0:
                out.append(((x0, y0, x1 - x0, y1 - y0), float(f[-1])))
        return out


def mmod_weights_path() -> Optional[str]:
    """``mmod_human_face_detector.dat`` inside the installed ``face_recognition_models`` package
    (found without importing it: its ``__init__`` needs pkg_resources), or None."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        p = os.path.join(root, "models", "mmod_human_face_detector.dat")
        if os.path.isfile(p):
            return p
    return None


@register_detector("dlib-cnn", "Dlib's CNN (MMOD) face detector, weights from face_recognition_models (slow on CPU)")
class DlibCnnDetector(FaceDetector):
    name = "dlib-cnn"
    WINDOW = 40
    DEFAULT_THRESHOLD = 0.0

    def __init__(self, **opts) -> None:
        super().__init__(**opts)
        path = mmod_weights_path()
        if path is None:
            raise RuntimeError("the dlib-cnn face detector needs mmod_human_face_detector.dat from the "
                               "face_recognition_models package: pip install face_recognition_models")
        import dlib
        self._det = dlib.cnn_face_detection_model_v1(path)

    @classmethod
    def available(cls) -> bool:
        return importlib.util.find_spec("dlib") is not None and mmod_weights_path() is not None

    def _detect(self, gray8):
        return [(_clip_rect(d.rect, gray8.shape), float(d.confidence)) for d in self._det(gray8, 0)]


@register_detector("skimage-lbp", "scikit-image's LBP cascade with OpenCV's frontal-face LBP cascade file")
class SkimageLbpDetector(FaceDetector):
    name = "skimage-lbp"
    WINDOW = 24                 # the cascade's window; 32 px faces need no upsampling at 640 px
    DEFAULT_THRESHOLD = 4.0     # merged raw windows (scikit-image's min_neighbor_number default)

    def __init__(self, **opts) -> None:
        super().__init__(**opts)
        from skimage import data
        from skimage.feature import Cascade
        self._cascade = Cascade(data.lbp_frontal_face_cascade_filename())

    @classmethod
    def available(cls) -> bool:
        return importlib.util.find_spec("skimage") is not None

    def working_scale(self, shape, window=None):
        # the cascade scans from min_size up; shrink only so the smallest wanted face is >= 32 px
        longer = max(shape[:2])
        return min(1.0, 32.0 / (self.min_face * longer)) if self.max_side <= 0 else \
            min(1.0, 32.0 / (self.min_face * longer), self.max_side / longer)

    def __call__(self, image, spectrum=None):
        # the score is not a confidence (the cascade has none): every returned face scores 1.0,
        # and ``threshold`` is scikit-image's min_neighbor_number instead
        return super().__call__(image, spectrum)

    def _detect(self, gray8):
        img = gray8.astype(np.float64) / 255.0
        m = min(gray8.shape)
        raw = self._cascade.detect_multi_scale(img=img, scale_factor=1.2, step_ratio=1, min_size=(32, 32),
                                               max_size=(m, m), min_neighbor_number=max(1, int(self.threshold)),
                                               intersection_score_threshold=0.5)
        return [((d["c"], d["r"], d["width"], d["height"]), max(1.0, self.threshold)) for d in raw]
