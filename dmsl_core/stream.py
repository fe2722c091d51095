"""The per-frame pipeline: spectrum choice, DMSL on the chosen spectrum (or both, in one batch),
optional face-box reuse and temporal smoothing, temperatures.

Pieces, from the inside out:

- :class:`StreamProcessor` turns one :class:`~dmsl_core.frames.FramePair` into a
  :class:`FrameResult` (landmarks per spectrum in that spectrum's pixels, mapped into the other
  spectrum when a homography is known, the selector's decision and reason, illumination
  measures, temperatures at landmark regions, timings).

The frame loop over a source (live or recorded, driven by commands: pause, step, seek, recording)
is :class:`dmsl_core.runner.StreamRunner`.

Face-box reuse (``reuse_box=True``): on a frame whose previous frame was tracked well in the same
spectrum, the face box B is taken from the previous landmarks (B is by definition their
bounding box) and M_b is skipped entirely (when no spectrum in the batch needs a fresh detection;
otherwise only M_b's coarse pass is skipped). Tracking is "good" while the new landmarks' box
overlaps the box used with IoU >= ``reuse_min_iou``; a full detection runs at least every
``redetect_every`` frames.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any, Optional, Protocol, Sequence

import numpy as np

from .detection import iou as _iou
from .frames import FramePair
from .landmarks import boundary_from_points
from .registration import homography_for_pair, map_points
from .smoothing import OneEuroConfig, OneEuroFilter
from .spectrum import SelectorConfig, SpectrumDecision, SpectrumSelector, measure_thermal
from .temperatures import temperatures_at

log = logging.getLogger("dmsl.stream")

SPECTRA = ("vis", "th")


class PredictorLike(Protocol):
    def predict(self, images: Sequence[np.ndarray], boxes: Optional[Sequence[Optional[np.ndarray]]] = None,
                refine: bool = True) -> list: ...


# ---- results -----------------------------------------------------------------------------------
def _r(v: Any, nd: int = 3) -> Any:
    if isinstance(v, np.ndarray):
        return np.round(v.astype(np.float64), nd).tolist()
    if isinstance(v, float):
        return None if not math.isfinite(v) else round(v, nd)
    return v


@dataclass
class FrameResult:
    """Everything the pipeline found on one frame (landmarks in the pixels of their own image)."""

    index: int
    t: float
    source: str
    chosen: str
    decision: SpectrumDecision
    landmarks: dict[str, np.ndarray] = field(default_factory=dict)   # spectrum -> (68, 2)
    boundary: dict[str, np.ndarray] = field(default_factory=dict)    # spectrum -> [x, y, w, h]
    mapped: dict[str, np.ndarray] = field(default_factory=dict)      # spectrum -> its landmarks in the OTHER image
    measures: dict[str, dict] = field(default_factory=dict)          # "vis": illumination, "th": thermal contrast
    temperatures: dict[str, float] = field(default_factory=dict)     # region -> degrees C (radiometric only)
    #: region -> why, for the temperature regions that are covered (an eye behind glasses:
    #: the lens, not the eye; :func:`dmsl_core.covered.covered_regions`)
    temperatures_covered: dict[str, str] = field(default_factory=dict)
    timings_ms: dict[str, float] = field(default_factory=dict)
    box_reused: dict[str, bool] = field(default_factory=dict)
    nme: dict[str, float] = field(default_factory=dict)              # against meta ground truth when present
    faces: dict[str, list] = field(default_factory=dict)             # spectrum -> [TrackedFace] (detector on)
    primary_ids: dict[str, int] = field(default_factory=dict)        # spectrum -> the id landmarks/boundary are
    tracked: bool = False                                            # a face detector + tracker found the faces
    files: dict[str, str] = field(default_factory=dict)
    dropped: int = 0                                                 # frames dropped so far (live)
    pair: Optional[FramePair] = field(default=None, repr=False)

    @property
    def points(self) -> Optional[np.ndarray]:
        """The chosen spectrum's landmarks."""
        return self.landmarks.get(self.chosen)

    def points_in(self, spectrum: str) -> Optional[np.ndarray]:
        """The chosen landmarks drawn in ``spectrum``'s image (mapped when needed and possible)."""
        if spectrum in self.landmarks:
            return self.landmarks[spectrum]
        other = "th" if spectrum == "vis" else "vis"
        return self.mapped.get(other)

    def to_dict(self) -> dict:
        """A JSON-ready record (the JSONL export's line)."""
        return {
            "index": self.index, "t": _r(self.t, 4), "source": self.source, "files": self.files,
            "spectrum": self.chosen, "decision": self.decision.to_dict(),
            "landmarks": {k: _r(v, 2) for k, v in self.landmarks.items()},
            "boundary": {k: _r(v, 2) for k, v in self.boundary.items()},
            "mapped": {k: _r(v, 2) for k, v in self.mapped.items()},
            "measures": self.measures, "temperatures": {k: _r(v, 3) for k, v in self.temperatures.items()},
            "temperatures_covered": sorted(self.temperatures_covered),
            "box_reused": self.box_reused, "nme": {k: _r(v, 5) for k, v in self.nme.items()},
            "timings_ms": {k: _r(v, 2) for k, v in self.timings_ms.items()}, "dropped": self.dropped,
            **({"faces": {k: [f.to_dict() for f in v] for k, v in self.faces.items()},
                "primary_face": dict(self.primary_ids)} if self.tracked else {}),
        }

    @property
    def primary(self) -> dict:
        """spectrum -> the TrackedFace the single-face fields (landmarks, boundary) are."""
        return {s: f for s, fs in self.faces.items() for f in fs if self.primary_ids.get(s) == f.id}

    def no_face(self, spectrum: Optional[str] = None) -> bool:
        """True when the detector ran on ``spectrum`` (default: the chosen one) and found no face."""
        s = spectrum or self.chosen
        return self.tracked and s in self.faces and not self.faces[s]


@dataclass
class StreamConfig:
    """How the per-frame pipeline runs."""

    mode: str = "auto"                       # auto | visible | thermal | both
    selector: Optional[SelectorConfig] = None
    smoothing: bool = False                  # One Euro filter on landmarks (video only)
    smoothing_config: Optional[OneEuroConfig] = None
    reuse_box: bool = False                  # place the face box from the previous landmarks
    reuse_min_iou: float = 0.5
    redetect_every: int = 30
    temperatures: bool = True
    # every face: a face detector finds the faces, tracking keeps them (dmsl_core.tracking); None =
    # M_b's one face per frame. A registered detector name ("auto", "dlib-hog", ...) or a callable
    # (image, spectrum) -> [Detection].
    detector: Any = None
    detect_every: int = 10                   # frames between detections while every track holds
    min_face: float = 0.05                   # the smallest face the detector looks for (of the longer side)
    tracker: Optional[Any] = None            # a TrackerConfig (detect_every above wins)
    still_images: bool = False               # independent stills (a folder): detect on each, carry nothing
    # auto mode with the detector: where the chosen spectrum has no face, the other spectrum is run
    # on that frame and its face shown (the reason says so; the selector's own state is unchanged)
    no_face_fallback: bool = True
    # a live source: each detection round runs on a thread of its own while the tracks go on (its
    # faces join the frame on which it is ready); off for files, whose results must not depend on timing
    async_detect: bool = False


class StreamProcessor:
    """Frame pair -> :class:`FrameResult`. Keeps the state a video needs (selector, filters, tracks)."""

    def __init__(self, predictor: PredictorLike, config: Optional[StreamConfig] = None, **overrides: Any) -> None:
        cfg = config or StreamConfig()
        for k, v in overrides.items():
            if not hasattr(cfg, k):
                raise TypeError(f"unknown stream option {k!r}")
            setattr(cfg, k, v)
        self.predictor = predictor
        self.config = cfg
        sel = cfg.selector or SelectorConfig()
        sel.mode = cfg.mode
        self.selector = SpectrumSelector(sel)
        self.reset()

    def reset(self) -> None:
        self.selector.reset()
        self._filters = {s: OneEuroFilter(self.config.smoothing_config) for s in SPECTRA}
        self._prev: dict[str, tuple[int, np.ndarray]] = {}   # spectrum -> (index, raw landmarks)
        self._good: dict[str, bool] = {}
        self._since_detect: dict[str, int] = {}
        self._last_index: Optional[int] = None
        self._last_vis_box: Optional[np.ndarray] = None
        self._ran_last: set[str] = set()
        self._trackers: dict = {}                              # spectrum -> FaceTracker (detector on)
        self._tracker_state: dict = {}                         # handed over by set_state, applied on first use
        self._primary: dict[str, int] = {}                     # spectrum -> the id the readouts follow
        self._face_filters: dict = {}                          # (spectrum, id) -> OneEuroFilter
        self._next_face_id = 1                                 # one id space for both spectra's faces
        self._last_faces: dict = {}                            # spectrum -> (index, faces) of its last run
        self.n_frames = 0
        self.n_reused = 0

    # ---- state (sharded runs: hand the frame-to-frame state over and compare it) ----------------
    _STATE_KEYS = ("_prev", "_good", "_since_detect", "_last_index", "_last_vis_box", "_ran_last", "_next_face_id",
                   "_last_faces")

    def get_state(self) -> dict:
        """A copy of everything that carries from one frame to the next (selector, filters, tracks);
        counters (frames, switches, reuses) are left out. Picklable."""
        import copy
        trackers = dict(self._tracker_state)
        trackers.update({s: t.get_state() for s, t in self._trackers.items()})
        return copy.deepcopy({"proc": {k: getattr(self, k) for k in self._STATE_KEYS},
                              "selector": self.selector.get_state(),
                              "filters": {s: f.get_state() for s, f in self._filters.items()},
                              "faces": {"trackers": trackers, "primary": self._primary,
                                        "filters": {key: f.get_state() for key, f in self._face_filters.items()}}})

    def set_state(self, state: dict) -> None:
        """Continue from a :meth:`get_state` copy (as if the frames before had been processed here)."""
        import copy
        st = copy.deepcopy(state)
        for k, v in st["proc"].items():
            setattr(self, k, v)
        self.selector.set_state(st["selector"])
        for s, d in st["filters"].items():
            self._filters[s].set_state(d)
        faces = st.get("faces") or {}
        self._trackers, self._tracker_state = {}, dict(faces.get("trackers") or {})
        self._primary = dict(faces.get("primary") or {})
        self._face_filters = {}
        for key, d in (faces.get("filters") or {}).items():
            self._face_filters[key] = OneEuroFilter(self.config.smoothing_config)
            self._face_filters[key].set_state(d)

    def state_fingerprint(self) -> str:
        """A hash of :meth:`get_state`: equal hashes mean the next frames give bit-identical results."""
        import hashlib
        h = hashlib.sha256()

        def feed(o: Any) -> None:
            if isinstance(o, dict):
                h.update(b"{")
                for k in sorted(o, key=str):
                    feed(str(k))
                    feed(o[k])
                h.update(b"}")
            elif isinstance(o, (list, tuple)):
                h.update(b"[")
                for v in o:
                    feed(v)
                h.update(b"]")
            elif isinstance(o, (set, frozenset)):
                feed(sorted(o, key=str))
            elif isinstance(o, np.ndarray):
                h.update(f"a{o.dtype.str}{o.shape}".encode())
                h.update(np.ascontiguousarray(o).tobytes())
            elif isinstance(o, (float, np.floating)):
                h.update(b"f" + float(o).hex().encode())
            else:
                h.update(f"{type(o).__name__}:{o!r};".encode())

        st = self.get_state()
        sel = st["selector"]
        if (sel["t_switch"] is not None and sel["t_last"] is not None
                and sel["t_last"] - sel["t_switch"] >= self.selector.config.min_dwell_s):
            sel["t_switch"] = "past the dwell"   # (time goes forward) no later decision depends on when
        feed(st)
        return h.hexdigest()[:32]

    def set_mode(self, mode: str) -> None:
        self.selector.mode = mode
        self.config.mode = mode

    @staticmethod
    def image_for(pair: FramePair, spectrum: str) -> Optional[np.ndarray]:
        return pair.vis if spectrum == "vis" else pair.th

    def _one_face(self, pair: FramePair, run: list[str]):
        """M_b's one face per spectrum (with face-box reuse when configured)."""
        cfg = self.config
        # face-box reuse
        boxes: list[Optional[np.ndarray]] = []
        reused: dict[str, bool] = {}
        for s in run:
            box = None
            prev = self._prev.get(s)
            if (cfg.reuse_box and prev is not None and self._last_index is not None and prev[0] == self._last_index
                    and self._good.get(s, False) and self._since_detect.get(s, 0) < cfg.redetect_every):
                try:
                    box = boundary_from_points(prev[1])
                except ValueError:
                    box = None
            boxes.append(box)
            reused[s] = box is not None
        images = [self.image_for(pair, s) for s in run]
        refine = not (run and all(reused[s] for s in run))
        preds = self.predictor.predict(images, boxes if any(b is not None for b in boxes) else None,
                                       refine=refine) if run else []
        t_pred = time.perf_counter()
        landmarks: dict[str, np.ndarray] = {}
        boundary: dict[str, np.ndarray] = {}
        for s, b, p in zip(run, boxes, preds):
            raw = np.asarray(p.landmarks, dtype=np.float64)
            good = np.isfinite(raw).all()
            if good and b is not None:
                try:
                    good = _iou(boundary_from_points(raw), b) >= cfg.reuse_min_iou
                except ValueError:
                    good = False
            elif good:
                try:
                    nb = boundary_from_points(raw)
                    good = nb[2] >= 4 and nb[3] >= 4
                except ValueError:
                    good = False
            self._good[s] = bool(good)
            self._since_detect[s] = self._since_detect.get(s, 0) + 1 if b is not None else 0
            self._prev[s] = (pair.index, raw)
            pts = raw
            if cfg.smoothing:
                if self._last_index is None or s not in self._ran_last:
                    self._filters[s].reset()
                pts = self._filters[s](raw, pair.t)
            landmarks[s] = pts
            boundary[s] = np.asarray(p.boundary, dtype=np.float64)
        return landmarks, boundary, reused, t_pred

    # how long a spectrum's last faces lend their ids to the other spectrum's after a switch
    ID_MEMORY_S = 1.0
    ID_MEMORY_FRAMES = 25                  # the same, for frames without a time stamp

    def _recent_faces(self, s: str, pair: FramePair) -> bool:
        """Whether spectrum ``s``'s last faces are recent enough to hand their ids on (see ``_every_face``)."""
        last = self._last_faces.get(s)
        if not last or not last[1]:
            return False
        index, t = last[0], (last[2] if len(last) > 2 else None)
        if index is not None and pair.index is not None and 0 < pair.index - index <= 2:
            return True                    # a frame or two ago, whatever the clock says
        if t is not None and pair.t is not None:
            return 0 <= pair.t - t <= self.ID_MEMORY_S
        return index is not None and pair.index is not None and 0 < pair.index - index <= self.ID_MEMORY_FRAMES

    def _take_face_id(self) -> int:
        self._next_face_id += 1
        return self._next_face_id - 1

    def _share_ids(self, pair: FramePair, s: str, tracker, faces: list, other_faces: list) -> None:
        """One person, one id in both spectra: a face of spectrum ``s`` whose box overlaps a face of
        the other spectrum (``other_faces``: this frame's, or the previous frame's when the selector
        just switched; mapped into ``s``'s image: a registered pair as it is, else through the pair's
        homography; IoU >= 0.3, best pairs first) takes that face's id - its track, this frame's
        face, its smoothing filter and the primary-face choice are renamed with it. Without a mapping
        the ids stay apart (they never collide: both trackers draw from one counter)."""
        from .detection import iou
        H = homography_for_pair(pair)
        if not pair.registered and H is None:
            return
        to_s = None if pair.registered else (np.linalg.inv(H) if s == "th" else H)
        vis_boxes = []
        for f in other_faces:                      # TrackedFace, or (id, landmarks) of the previous frame
            fid, lm = (f.id, f.landmarks) if hasattr(f, "landmarks") else f
            pts = lm if to_s is None else map_points(lm, to_s)
            try:
                vis_boxes.append((fid, boundary_from_points(pts)))
            except ValueError:
                continue
        pairs = []
        for tf in faces:
            try:
                tb = boundary_from_points(tf.landmarks)
            except ValueError:
                continue
            pairs += [(iou(tb, vb), tf, vid) for vid, vb in vis_boxes]
        pairs.sort(key=lambda x: -x[0])
        done_th, done_vis = set(), set()
        for v, tf, vid in pairs:
            if v < 0.3:
                break
            if id(tf) in done_th or vid in done_vis:
                continue
            done_th.add(id(tf))
            done_vis.add(vid)
            old = tf.id
            if old == vid or any(t.id == vid for t in tracker.tracks):
                continue
            for t in tracker.tracks:
                if t.id == old:
                    t.id = vid
            tf.id = vid
            if (s, old) in self._face_filters:
                self._face_filters[(s, vid)] = self._face_filters.pop((s, old))
            if self._primary.get(s) == old:
                self._primary[s] = vid

    def close(self) -> None:
        """Stop the trackers' detector threads (async detection); the processor can go on after it
        (a new thread starts with the next detection round)."""
        for tr in self._trackers.values():
            tr.close()

    def _detector(self):
        det = self.config.detector
        if callable(det):
            return det
        if getattr(self, "_det_obj", None) is None or self._det_key != (det, self.config.min_face):
            from .detection import get_detector
            self._det_obj = get_detector(det, min_face=self.config.min_face)
            self._det_key = (det, self.config.min_face)
        return self._det_obj

    def _every_face(self, pair: FramePair, run: list[str]):
        """Every face per spectrum: the face detector and tracker (dmsl_core.tracking)."""
        from .tracking import FaceTracker, TrackerConfig, primary_face
        cfg = self.config
        landmarks: dict[str, np.ndarray] = {}
        boundary: dict[str, np.ndarray] = {}
        reused: dict[str, bool] = {}
        faces_by: dict[str, list] = {}
        if cfg.still_images:
            self._next_face_id = 1             # each still's faces are numbered from 1
        for s in run:
            tr = self._trackers.get(s)
            if tr is None:
                tcfg = dataclasses.replace(cfg.tracker) if cfg.tracker is not None else TrackerConfig()
                tr = self._trackers[s] = FaceTracker(self.predictor, self._detector(), s, tcfg)
                if s in self._tracker_state:
                    tr.set_state(self._tracker_state.pop(s))
                tr.id_source = self._take_face_id
            tr.detector = self._detector()                  # the settings may change while live
            tr.config.detect_every = int(cfg.detect_every)
            tr.config.async_detect = bool(cfg.async_detect)
            if cfg.still_images:
                tr.reset()                     # a still is not the next frame of the one before
                self._primary.pop(s, None)
            faces = tr.step(self.image_for(pair, s), pair.index)
            o = "vis" if s == "th" else "th"
            if s == "th" and faces_by.get("vis"):
                self._share_ids(pair, "th", tr, faces, faces_by["vis"])
            elif o not in run and self._recent_faces(o, pair):
                # the selector switched spectrum: the same person keeps the id it had in the other one
                # (the last faces seen there, if recent: a live stream drops frames, and the new
                # spectrum's first detection round may come frames after the switch)
                self._share_ids(pair, s, tr, faces, self._last_faces[o][1])
            live = {f.id for f in faces}
            for key in [k for k in self._face_filters if k[0] == s and k[1] not in live]:
                del self._face_filters[key]
            if cfg.smoothing:
                for f in faces:
                    flt = self._face_filters.get((s, f.id))
                    if flt is None:
                        flt = self._face_filters[(s, f.id)] = OneEuroFilter(cfg.smoothing_config)
                    f.landmarks = flt(f.landmarks, pair.t)
            faces_by[s] = faces
            main = primary_face(faces, self._primary.get(s))
            if main is None:
                self._primary.pop(s, None)
                continue
            self._primary[s] = main.id
            landmarks[s] = main.landmarks
            boundary[s] = np.asarray(main.boundary, dtype=np.float64)
            reused[s] = not main.detected
        for s in SPECTRA:
            if s not in run:
                self._primary.pop(s, None)
        for s, fs in faces_by.items():        # (a frame without faces keeps the last ones: a same-frame
            if fs:                             # fallback to the other spectrum still sees them)
                self._last_faces[s] = (pair.index, [(int(f.id), np.asarray(f.landmarks, np.float64).copy())
                                                    for f in fs], pair.t)
        return landmarks, boundary, reused, faces_by, time.perf_counter()

    def process(self, pair: FramePair, dropped: int = 0) -> FrameResult:
        t_start = time.perf_counter()
        cfg = self.config
        H = homography_for_pair(pair)
        decision = self.selector.update(pair.vis, pair.th is not None, pair.t, self._last_vis_box)
        t_sel = time.perf_counter()
        run = [s for s in decision.run if self.image_for(pair, s) is not None]
        faces_by: dict[str, list] = {}
        if cfg.detector is not None:
            landmarks, boundary, reused, faces_by, t_pred = self._every_face(pair, run)
            other = "th" if decision.chosen == "vis" else "vis"
            if (decision.mode == "auto" and cfg.no_face_fallback and decision.chosen in run
                    and not faces_by.get(decision.chosen) and other not in run
                    and self.image_for(pair, other) is not None):
                # no face where the selector looks: the other spectrum's face, on this frame
                lm2, b2, r2, f2, t_pred = self._every_face(pair, [other])
                if f2.get(other):
                    run = run + [other]
                    landmarks.update(lm2)
                    boundary.update(b2)
                    reused.update(r2)
                    faces_by.update(f2)
                    names = {"vis": "visible", "th": "thermal"}
                    decision = dataclasses.replace(
                        decision, chosen=other, run=tuple(run),
                        reason=f"no face in the {names[decision.chosen]} image: the {names[other]} face shown "
                               f"({decision.reason})")
        else:
            landmarks, boundary, reused, t_pred = self._one_face(pair, run)
        for s in SPECTRA:
            if s not in run:
                self._filters[s].reset()
        self._ran_last = set(run)
        self._last_index = pair.index
        # mapped into the other spectrum
        mapped: dict[str, np.ndarray] = {}
        if H is not None:
            if "vis" in landmarks and pair.th is not None:
                mapped["vis"] = map_points(landmarks["vis"], np.linalg.inv(H))
            if "th" in landmarks and pair.vis is not None:
                mapped["th"] = map_points(landmarks["th"], H)
        # the face box for the next frame's illumination measure (visible pixels)
        vis_pts = landmarks.get("vis", mapped.get("th"))
        try:
            self._last_vis_box = boundary_from_points(vis_pts) if vis_pts is not None else None
        except ValueError:
            self._last_vis_box = None
        measures: dict[str, dict] = {}
        if decision.measures is not None:
            measures["vis"] = decision.measures.to_dict()
        if pair.th is not None:
            th_pts = landmarks.get("th", mapped.get("vis"))
            th_box = None
            if th_pts is not None:
                try:
                    th_box = boundary_from_points(th_pts)
                except ValueError:
                    th_box = None
            measures["th"] = measure_thermal(pair.th, pair.th_celsius, th_box)
        temps: dict[str, float] = {}
        covered: dict[str, str] = {}
        if cfg.temperatures and pair.th_celsius is not None:
            th_pts = landmarks.get("th", mapped.get("vis"))
            if th_pts is not None:
                temps = temperatures_at(pair.th_celsius, th_pts)
                if temps and np.isfinite(np.asarray(th_pts, float)).all():
                    from .covered import covered_regions
                    covered = covered_regions(pair.th_celsius, th_pts, temps)
        nme: dict[str, float] = {}
        for s, key in (("vis", "landmarks_gt"), ("th", "landmarks_gt_th")):
            gt = pair.meta.get(key)
            if s == "th" and gt is None and pair.registered:
                gt = pair.meta.get("landmarks_gt")
            if gt is not None and s in landmarks:
                try:
                    from .evaluation import nme_per_image
                    nme[s] = nme_per_image(landmarks[s], gt)
                except ValueError:
                    pass
        t_end = time.perf_counter()
        self.n_frames += 1
        self.n_reused += int(any(reused.values()))
        return FrameResult(
            index=pair.index, t=pair.t, source=pair.source, chosen=decision.chosen, decision=decision,
            landmarks=landmarks, boundary=boundary, mapped=mapped, measures=measures, temperatures=temps,
            temperatures_covered=covered,
            timings_ms={"select": 1000 * (t_sel - t_start), "predict": 1000 * (t_pred - t_sel),
                        "total": 1000 * (t_end - t_start)},
            box_reused=reused, nme=nme, files=dict(pair.meta.get("files", {})), dropped=dropped, pair=pair,
            faces=faces_by, primary_ids={k: v for k, v in self._primary.items() if k in faces_by},
            tracked=cfg.detector is not None)
