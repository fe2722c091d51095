"""Every face in a video: detect, then track, with identities kept across frames.

:class:`FaceTracker` runs on the frames of one spectrum, in order. Per frame:

1. **Detection** (the face detector of :mod:`dmsl_core.detection`) runs on the first frame, every
   ``detect_every`` frames after it, on the frame after a track was lost, and whenever there is
   no track. Between detections no detector runs at all.
2. **Association**: each detection is matched to the track whose current box it overlaps most
   (IoU >= ``match_iou``, greedy, best pairs first). A matched track *keeps its own box* (the
   bounding box of its previous landmarks, the box M_l was trained on): a detection never replaces
   a good track, it only confirms it (its score becomes the track's). A track that no detection
   confirms for ``max_unconfirmed`` detection rounds in a row is dropped (a track that drifted onto
   the background, or whose face left, is ended this way: with the defaults it lasts up to ~30
   frames, which also carries a face through an occlusion the detector cannot see through - a
   hand over the mouth - as long as its landmarks hold; :attr:`TrackedFace.confirmed` says which
   faces the last detection round saw). A detection no track claims starts a new track with a new
   id (M_b's refining pass turns the detector's box into B). When there is no track and the
   detector finds nothing, M_b's own whole-frame pass may start one - only if the landmark stage's
   confidence accepts it (``fallback``; :meth:`Predictor.fallback_prediction`).
3. **Landmarks** for every face in one batch per kind (tracked: M_l on the previous landmarks' box;
   new: M_b's second pass, then M_l, as :meth:`Predictor.predict` refines).
4. **Keep or lose**: a tracked face that fails the checks below first gets one refining pass
   (M_b's, from the same box: ``rescue``) and keeps its id when that passes them; a tracked face
   whose new landmarks are not finite, are smaller than
   ``min_size_px``, whose box overlaps the box it was given by less than ``keep_iou``, or that the
   landmark stage's own confidence rejects (:meth:`Predictor.is_face`; a new detection it rejects
   starts no track either) is lost
   (dropped; the next frame detects). Two tracks that converged on one face (IoU > ``merge_iou``)
   become the older one.

Ids are integers from 1, never given to another face within a tracker (until :meth:`reset`): a
face whose track was lost comes back under its old id when a new track starts on its last box
within ``max_gap`` frames (a face the checks lost for a frame keeps its identity). The result is a list
of :class:`TrackedFace`, largest first; empty when there is no face: "no face" is a result.
"""
from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import numpy as np

from .detection import iou
from .landmarks import boundary_from_points


box_iou = iou   # [x, y, w, h] boxes; the detector's NMS uses the same


@dataclass
class TrackerConfig:
    detect_every: int = 10        # frames between detections while every track holds
    match_iou: float = 0.3        # a detection confirms the track it overlaps by at least this
    keep_iou: float = 0.4         # a track's new landmarks' box must overlap the box it was given by this
    merge_iou: float = 0.6        # two tracks overlapping more than this are one face
    max_unconfirmed: int = 3      # detection rounds in a row without a confirming detection -> dropped
    max_faces: int = 16
    min_size_px: float = 6.0
    max_gap: int = 15             # frames a live source may skip (dropped frames) before the tracks are stale
    fallback: bool = True         # no track and no detection: try M_b's whole-frame pass (Predictor.fallback_prediction)
    rescue: bool = True           # a tracked face that fails its checks gets one refining pass before it is lost
    async_detect: bool = False    # live sources: detection rounds run on a thread of their own while tracking goes on

    def __post_init__(self) -> None:
        if int(self.detect_every) < 1:
            raise ValueError(f"detect_every must be 1 or more frames, got {self.detect_every}")
        for k in ("match_iou", "keep_iou", "merge_iou"):
            v = float(getattr(self, k))
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{k} must be in [0, 1], got {v}")
        if int(self.max_unconfirmed) < 0:
            raise ValueError(f"max_unconfirmed must be 0 or more, got {self.max_unconfirmed}")
        if int(self.max_faces) < 1:
            raise ValueError(f"max_faces must be 1 or more, got {self.max_faces}")


@dataclass
class Track:
    id: int
    box: np.ndarray                      # the box the next frame's M_l pass uses
    landmarks: np.ndarray
    boundary: np.ndarray
    score: float                         # the score of the last detection that confirmed it
    first_index: int
    age: int = 1                         # frames it has been tracked
    unconfirmed: int = 0                 # detection rounds since a detection confirmed it


@dataclass
class TrackedFace:
    """One face on one frame."""
    id: int                              # the track's identity (1, 2, ...), kept across frames
    box: np.ndarray                      # [x, y, w, h]: the box this frame's landmarks were found in
    score: float                         # the detector's score at the last detection that confirmed it
    boundary: np.ndarray                 # [x, y, w, h]: the box B the final M_l pass used
    landmarks: np.ndarray                # (68, 2) in the image's pixels
    spectrum: str = ""
    detected: bool = False               # True: this frame's box came from a new detection
    age: int = 1                         # frames the track has lasted, this one included
    confirmed: bool = True               # the last detection round saw this face
    confidence: Optional[float] = None   # the landmark stage's own confidence (Prediction.confidence)

    def to_dict(self) -> dict:
        def r(v, nd=2):
            return [None if not math.isfinite(float(x)) else round(float(x), nd) for x in np.ravel(v)]
        pts = np.asarray(self.landmarks, dtype=np.float64)
        return {"id": self.id, "box": r(self.box), "score": None if not math.isfinite(self.score) else round(self.score, 4),
                "boundary": r(self.boundary), "landmarks": np.round(pts, 2).tolist(), "spectrum": self.spectrum,
                "detected": self.detected, "age": self.age, "confirmed": self.confirmed,
                "confidence": None if self.confidence is None else round(float(self.confidence), 4)}


def _is_face(predictor: Any, pred: Any) -> bool:
    """The predictor's verdict on its own points (:meth:`Predictor.is_face`: its quality network's
    confidence); a predictor without one accepts every finite result."""
    judge = getattr(predictor, "is_face", None)
    return True if judge is None else bool(judge(pred))


def _points_box(pts: np.ndarray, min_size: float) -> Optional[np.ndarray]:
    """The box of 68 finite points when both its sides are at least ``min_size``; else None."""
    if not np.isfinite(pts).all():
        return None
    try:
        box = boundary_from_points(pts)
    except ValueError:
        return None
    return box if box[2] >= min_size and box[3] >= min_size else None


class FaceTracker:
    """Detect-and-track on one spectrum's frames (see the module docstring).

    ``predictor``: anything with ``predict(images, boxes, refine) -> [Prediction]``;
    ``detector``: a callable ``(image, spectrum) -> [Detection]`` (best first)."""

    def __init__(self, predictor: Any, detector: Callable, spectrum: str = "",
                 config: Optional[TrackerConfig] = None) -> None:
        self.predictor = predictor
        self.detector = detector
        self.spectrum = spectrum
        self.config = config or TrackerConfig()
        self._pool = None
        #: where new ids come from instead of this tracker's own counter (a callable returning the
        #: next id): the stream processor gives its two spectra's trackers one id space
        self.id_source: Optional[Callable[[], int]] = None
        self.reset()

    def reset(self) -> None:
        self.tracks: list[Track] = []
        self.next_id = 1
        self.since_detect: Optional[int] = None      # frames since the last detection (None: never)
        self.force_detect = True
        self.last_index: Optional[int] = None
        self.n_detections = 0                        # detector runs
        self.recent: list[dict] = []                 # tracks lost lately: {"id", "box", "index"} (ids come back)
        self._job = None                             # the detection running on the detector thread (async)

    # ---- state: what carries from one frame to the next (sharded runs hand it over) ----------
    _STATE = ("tracks", "next_id", "since_detect", "force_detect", "last_index", "recent")

    def get_state(self) -> dict:
        st = {k: getattr(self, k) for k in self._STATE}
        st["tracks"] = [dataclasses.asdict(t) for t in self.tracks]
        return copy.deepcopy(st)

    def set_state(self, state: dict) -> None:
        st = copy.deepcopy(state)
        for k, v in st.items():
            setattr(self, k, v)
        self.tracks = [Track(**t) for t in st.get("tracks", [])]

    def _new_id(self, box: np.ndarray, index: Optional[int]) -> int:
        """The id of a face that starts a track: a track lost at most ``max_gap`` frames ago whose last
        box it overlaps (IoU >= ``match_iou``) gets its id back (a face the checks lost for a frame or
        two stays the same face); else a new one."""
        cfg = self.config
        now = -1 if index is None else int(index)
        self.recent = [r for r in self.recent if 0 <= now - r["index"] <= cfg.max_gap + 1]
        best, best_iou = None, cfg.match_iou
        for r in self.recent:
            v = box_iou(box, np.asarray(r["box"], float))
            if v >= best_iou and all(t.id != r["id"] for t in self.tracks):
                best, best_iou = r, v
        if best is not None:
            self.recent.remove(best)
            return int(best["id"])
        if self.id_source is not None:        # ids shared with other trackers (StreamProcessor: both spectra)
            return int(self.id_source())
        self.next_id += 1
        return self.next_id - 1

    def _start(self, shown: np.ndarray, box: np.ndarray, pts: np.ndarray, pred: Any, score: float,
               index: Optional[int]) -> TrackedFace:
        """A new track on ``box`` (its landmarks' box) and the face it shows on this frame (``shown``:
        the box its landmarks were found in)."""
        t = Track(id=self._new_id(box, index), box=box, landmarks=pts, boundary=np.asarray(pred.boundary, float),
                  score=score, first_index=-1 if index is None else int(index))
        self.tracks.append(t)
        return TrackedFace(id=t.id, box=np.asarray(shown, float), score=score, boundary=t.boundary, landmarks=pts,
                           spectrum=self.spectrum, detected=True, age=1, confidence=getattr(pred, "confidence", None))

    def _associate(self, dets: list) -> list[tuple[np.ndarray, float, Any]]:
        """Match a detection round to the tracks (confirming them, ending the unconfirmed); returns
        the detections that start new faces (box, score, the detection)."""
        cfg = self.config
        new_boxes: list[tuple[np.ndarray, float, Any]] = []
        claimed: set[int] = set()
        pairs = sorted(((box_iou(t.box, d.box), ti, di) for ti, t in enumerate(self.tracks)
                        for di, d in enumerate(dets)), reverse=True)
        matched_tracks: set[int] = set()
        for v, ti, di in pairs:
            if v < cfg.match_iou:
                break
            if ti in matched_tracks or di in claimed:
                continue
            matched_tracks.add(ti)
            claimed.add(di)
            t = self.tracks[ti]
            t.score = float(dets[di].score)          # confirmed; its own box stays
            t.unconfirmed = 0
        keep = []
        for ti, t in enumerate(self.tracks):
            if ti not in matched_tracks:
                t.unconfirmed += 1
                if t.unconfirmed > cfg.max_unconfirmed:
                    continue
            keep.append(t)
        self.tracks = keep
        # a detection inside an existing track's box (the same face at another scale) is no new face
        for di, d in enumerate(dets):
            if di in claimed:
                continue
            b = np.asarray(d.box, dtype=np.float64)
            if any(box_iou(b, t.box) >= cfg.match_iou for t in self.tracks):
                continue
            new_boxes.append((b, float(d.score), d))
        room = max(0, cfg.max_faces - len(self.tracks))
        new_boxes = new_boxes[:room]
        return new_boxes

    def _executor(self):
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"dmsl-detect-{self.spectrum or 'any'}")
        return self._pool

    def close(self) -> None:
        """Stop the detector thread (async detection); a running detection finishes on its own."""
        self._job = None
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    # ---- one frame ------------------------------------------------------------------------------
    def _stale(self, index: Optional[int]) -> bool:
        """A frame before the last one (a seek back) or more than ``max_gap`` frames after it; a live
        source's dropped frames (a gap of a few) keep the tracks."""
        if index is None or self.last_index is None:
            return False
        return not 0 < index - self.last_index <= self.config.max_gap + 1

    def needs_detection(self, index: Optional[int] = None) -> bool:
        cfg = self.config
        if self._stale(index):
            return True                                  # a seek or a long gap: the tracks are stale
        return (self.force_detect or not self.tracks or self.since_detect is None
                or self.since_detect + 1 >= cfg.detect_every)

    def step(self, image: np.ndarray, index: Optional[int] = None) -> list[TrackedFace]:
        cfg = self.config
        if self._stale(index):
            self.tracks = []                             # not a frame shortly after: start again (ids go on)
            self.recent = []
            self._job = None                             # a detection of a frame from before is not wanted
        detect = self.needs_detection(index)
        self.last_index = index
        new_boxes: list[tuple[np.ndarray, float, Any]] = []
        fallback = None
        dets = None
        if detect and cfg.async_detect:
            # a live source: the detector runs on its own thread while the tracks go on; its result
            # joins the frame on which it is ready (a detection does not hold up the frames; with no
            # track the frames say "no face" until it is)
            if self._job is None:
                self._job = self._executor().submit(self.detector, image, self.spectrum or None)
            self.since_detect = 0
            self.force_detect = False
        elif detect:
            dets = list(self.detector(image, self.spectrum or None) or [])
            self.since_detect = 0
            self.force_detect = False
        else:
            self.since_detect = (self.since_detect or 0) + 1
        if dets is None and self._job is not None and self._job.done():
            job, self._job = self._job, None
            dets = list(job.result() or [])
        if dets is not None:
            if not dets and not self.tracks and cfg.fallback and hasattr(self.predictor, "fallback_prediction"):
                fallback = self.predictor.fallback_prediction(image)   # None unless its confidence says face
            self.n_detections += 1
            new_boxes = self._associate(dets)

        faces: list[TrackedFace] = []
        # tracked faces: one M_l pass on the previous landmarks' box
        if self.tracks:
            preds = self.predictor.predict([image] * len(self.tracks), [t.box for t in self.tracks], refine=False)

            def holds(t, p):
                nb = _points_box(np.asarray(p.landmarks, dtype=np.float64), cfg.min_size_px)
                return nb is not None and box_iou(nb, t.box) >= cfg.keep_iou and _is_face(self.predictor, p)
            # a face that slipped (it moved more than one M_l pass follows, or the pass drifted): one
            # refining pass from the same box before it is given up - the refinement of a box that no
            # longer fits the face (the predictor's refine_rough: M_b's pass re-centres it)
            ok = [holds(t, p) for t, p in zip(self.tracks, preds)]
            slipped = [i for i, o in enumerate(ok) if not o]
            if slipped and cfg.rescue:
                again = self.predictor.predict([image] * len(slipped), [self.tracks[i].box for i in slipped],
                                               refine=getattr(self.predictor, "refine_rough", True))
                for i, p in zip(slipped, again):
                    preds[i], ok[i] = p, holds(self.tracks[i], p)
            alive = []
            for t, p, o in zip(self.tracks, preds, ok):
                if not o:
                    self.force_detect = True             # lost (or no longer on a face): the next frame detects
                    self.recent.append({"id": t.id, "box": np.asarray(t.box, float).tolist(),
                                        "index": -1 if index is None else int(index)})
                    continue
                pts = np.asarray(p.landmarks, dtype=np.float64)
                used = t.box
                t.box, t.landmarks, t.boundary = _points_box(pts, cfg.min_size_px), pts, np.asarray(p.boundary, dtype=np.float64)
                t.age += 1
                alive.append(t)
                faces.append(TrackedFace(id=t.id, box=np.asarray(used, float), score=t.score, boundary=t.boundary,
                                         landmarks=pts, spectrum=self.spectrum, detected=False, age=t.age,
                                         confirmed=t.unconfirmed == 0, confidence=getattr(p, "confidence", None)))
            self.tracks = alive
        # new faces: the detector's box refined as its backend needs (Predictor.refine_for), then M_l
        if new_boxes:
            if hasattr(self.predictor, "predict_detections"):
                preds = self.predictor.predict_detections(image, [d for _, _, d in new_boxes])
            else:
                preds = self.predictor.predict([image] * len(new_boxes), [b for b, _, _ in new_boxes], refine=True)
            for (b, score, _), p in zip(new_boxes, preds):
                pts = np.asarray(p.landmarks, dtype=np.float64)
                nb = _points_box(pts, cfg.min_size_px)
                if nb is None or box_iou(nb, b) < cfg.match_iou * 0.5:
                    continue                             # the points left the detection: not a face we can track
                if not _is_face(self.predictor, p):
                    continue                             # the landmark stage says its points are on no face
                if any(box_iou(nb, t.box) > cfg.merge_iou for t in self.tracks):
                    continue                             # it is a face already tracked
                faces.append(self._start(b, nb, pts, p, score, index))
        if fallback is not None:          # M_b's own face, accepted by the confidence: a new track
            pts = np.asarray(fallback.landmarks, dtype=np.float64)
            nb = _points_box(pts, cfg.min_size_px)
            if nb is not None:
                faces.append(self._start(nb, nb, pts, fallback, float("nan"), index))
        # two tracks on one face: the older one stays
        self.tracks.sort(key=lambda t: t.id)
        kept: list[Track] = []
        for t in self.tracks:
            if any(box_iou(t.box, k.box) > cfg.merge_iou for k in kept):
                continue
            kept.append(t)
        ids = {t.id for t in kept}
        self.tracks = kept
        faces = [f for f in faces if f.id in ids]
        faces.sort(key=lambda f: -(float(f.boundary[2]) * float(f.boundary[3])))
        return faces


def primary_face(faces: Sequence[TrackedFace], previous_id: Optional[int] = None) -> Optional[TrackedFace]:
    """The face the single-face readouts follow (spectrum choice, temperatures, the CSV's first
    row): the previous frame's primary while it lasts, else the largest."""
    if not faces:
        return None
    if previous_id is not None:
        for f in faces:
            if f.id == previous_id:
                return f
    return max(faces, key=lambda f: float(f.boundary[2]) * float(f.boundary[3]))
