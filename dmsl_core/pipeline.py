"""The DMSL pipeline: image -> M_b -> blackout -> M_l -> 68 landmarks in the input's pixels.

Coarse-to-fine (so a face that fills only part of the frame is found):

1. M_b on the whole frame (padded to a square, resized to S): a coarse box.
2. M_b again on a square crop around the coarse box (side ``crop_scale`` x its larger side):
   the refined box B.
3. A square crop around B; everything outside B blacked out (F-hat); M_l gives the 68 points.

Which refinement runs is the Predictor's ``refine`` mode (:data:`Predictor.REFINE_MODES`; the model
card's ``inference.refine`` sets the default, "mb" when it says nothing):

- ``"mb"``: steps 1-3 as above (M_b, M_b, M_l: three forwards).
- ``"landmarks"``: step 2 is skipped; M_l runs on the coarse box, then once more around its own
  landmarks (M_b, M_l, M_l: three forwards). The second pass's crop is turned upright (the line
  through the outer eye corners made level) and blacked out around the landmarks' bounding box in
  that crop - the box drawn the way the training boxes were, which M_b's regressed box only
  approximates (see :meth:`Predictor.landmarks_from`).
- ``"both"``: M_b, M_b, M_l, M_l (four forwards).

A face detector's box takes the mode its backend needs (:meth:`Predictor.refine_for`): the card's
``refine`` when the backend's boxes are fitted to the 68 points' box (YuNet's, through its box map),
the card's ``refine_rough`` when they are of the backend's own shape (the HOG detectors'), where M_b's
second pass re-centres them; a tracked face that slipped is rescued the rough way too.

Each step runs one forward for the whole batch. A known box (``boxes=``, e.g. the previous
frame's landmarks in a video) skips step 1; ``refine=False`` trusts the given box as final: no
step 2 and a single M_l pass whatever the mode.

Several faces in one frame: the models regress one face; step 1 settles on one (usually the
largest / most central) and always returns one, even where there is no face. To process several
faces, pass one box per face via ``boxes`` (same image repeated) - e.g. from a face detector.
:meth:`Predictor.faces` does exactly that: a face detector (:mod:`dmsl_core.detection`) finds every
face, or none (then it returns ``[]``), and each detector box goes through steps 2-3 (the refinement
the mode says) in one batch.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np
import torch

from . import preprocess as pp
from .data.imageio import pixel_problem
from .device import resolve_device
from .landmarks import MIRROR_PERM, OUTER_EYE_CORNERS, boundary_from_points
from .models import BoundaryModel, LandmarkModel, ModelConfig, create_models, get_config
from .models.quality import QUALITY_NAME, load_quality, quality_inputs
from .models.weights import load_weights

log = logging.getLogger("dmsl.pipeline")

#: the speed options :meth:`Predictor.optimise` takes, by the name ``dmsl bench`` measures and reports
#: them under (a card's ``bench.best_option`` names one of these)
OPTION_SETS: dict[str, dict] = {
    "baseline (inference_mode, fp32, NCHW)": {},
    "no_grad instead of inference_mode": {"grad_mode": "no_grad"},
    "channels_last": {"channels_last": True},
    "torch.compile": {"compile": True},
    "onnxruntime": {"backend": "onnxruntime"},
}


#: the name faces found by :meth:`Predictor.fallback_prediction` carry as their detector
FALLBACK_DETECTOR = "mb-fallback"


@dataclass
class Prediction:
    landmarks: np.ndarray          # (68, 2) pixel coordinates of the input image
    boundary: np.ndarray           # [x, y, w, h] in pixels: the box the final M_l pass used
    coarse_boundary: Optional[np.ndarray] = None  # step-1 box (None when a box was given)
    timings_ms: dict = field(default_factory=dict)
    #: the landmark stage's own confidence that the points sit on a face (P(NME < 0.08), from the
    #: model's quality network, :mod:`dmsl_core.models.quality`); None when the model has none
    confidence: Optional[float] = None
    predicted_nme: Optional[float] = None
    quality_inputs: Optional[tuple] = field(default=None, repr=False)   # only with keep_quality_inputs


@dataclass
class Face:
    """One face found in an image by :meth:`Predictor.faces`."""
    index: int                     # 0, 1, ... in the detector's order (best score first)
    box: np.ndarray                # [x, y, w, h]: the detector's box, in the image's pixels
    score: float                   # the detector's score (its scale: dmsl_core.detection)
    boundary: np.ndarray           # [x, y, w, h]: the box B the final M_l pass used
    landmarks: np.ndarray          # (68, 2) pixel coordinates of the image
    spectrum: str = ""             # "vis" / "th" / "" as given
    detector: str = ""             # the detector's registered name
    confidence: Optional[float] = None   # the landmark stage's own confidence (Prediction.confidence)

    def to_dict(self) -> dict:
        return {"index": self.index, "box": [round(float(v), 2) for v in self.box],
                "score": round(float(self.score), 4) if np.isfinite(self.score) else None, "boundary": [round(float(v), 3) for v in self.boundary],
                "landmarks": np.round(self.landmarks, 3).tolist(), "spectrum": self.spectrum,
                "detector": self.detector,
                "confidence": None if self.confidence is None else round(float(self.confidence), 4)}


class Predictor:
    """Runs M_b and M_l on images of any size, spectrum and bit depth."""

    def __init__(self, boundary: BoundaryModel, landmark: LandmarkModel, config: ModelConfig,
                 device: str | torch.device | None = "auto", half: Optional[bool] = None,
                 card: Optional[dict] = None, source: str = "") -> None:
        self.config = config
        self.device = resolve_device(device)
        self.half = (self.device.type == "cuda") if half is None else bool(half)
        if self.half and self.device.type != "cuda":
            raise ValueError("half precision is only used on CUDA")
        dtype = torch.float16 if self.half else torch.float32
        self.boundary = boundary.to(self.device, dtype).eval()
        self.landmark = landmark.to(self.device, dtype).eval()
        self.dtype = dtype
        self.card = card or {}
        self.source = source
        # the test-time augmentation the model's card says its accuracy was measured with
        inference = self.card.get("inference") or {}
        card_tta = inference.get("tta", "none")
        self.tta = card_tta if card_tta in self.TTA_MODES else "none"
        card_refine = inference.get("refine", "mb")
        self.refine = card_refine if card_refine in self.REFINE_MODES else "mb"
        rough = inference.get("refine_rough", self.refine)
        self.refine_rough = rough if rough in self.REFINE_MODES else self.refine
        #: the landmark stage's confidence network (None: faces carry no confidence); from_weights
        #: loads ``quality.safetensors`` beside the weights when there is one
        self.quality = None

    # ---- construction -------------------------------------------------------------------
    @classmethod
    def from_weights(cls, spec: str | os.PathLike | None = None, device: str | torch.device | None = "auto",
                     half: Optional[bool] = None, tta: Optional[str] = None,
                     refine: Optional[str] = None) -> "Predictor":
        """``tta`` / ``refine``: None = what the model card says (``inference.tta`` /
        ``inference.refine``), else one of :data:`TTA_MODES` / :data:`REFINE_MODES`."""
        config, mb, ml, card, path = load_weights(spec)
        pred = cls(mb, ml, config, device=device, half=half, card=card, source=str(path))
        qpath = path.with_name(QUALITY_NAME)
        if qpath.exists():
            pred.quality = load_quality(qpath)
        if tta is not None:
            pred.set_tta(tta)
        return pred if refine is None else pred.set_refine(refine)

    @classmethod
    def untrained(cls, config: str | ModelConfig = "dmsl-tiny", seed: int = 0,
                  device: str | torch.device | None = "cpu") -> "Predictor":
        """Random weights (for tests and speed measurements only)."""
        cfg = get_config(config) if isinstance(config, str) else config
        mb, ml = create_models(cfg, seed=seed)
        return cls(mb, ml, cfg, device=device, card={"untrained": True}, source="untrained")

    @property
    def name(self) -> str:
        return self.card.get("name") or self.config.name

    # ---- speed options --------------------------------------------------------------------
    def optimise(self, channels_last: bool = False, compile: bool = False, backend: str = "torch",
                 grad_mode: str = "inference") -> "Predictor":
        """Speed options (``dmsl bench`` measures each; none changes the results beyond float
        rounding): ``channels_last`` memory format, ``torch.compile``, ``backend="onnxruntime"``
        (exports both models to ONNX in memory; needs the ``onnx`` extra), and the autograd mode
        of the forward (``"inference"`` = torch.inference_mode, ``"no_grad"``). Returns self."""
        if backend not in ("torch", "onnxruntime"):
            raise ValueError(f"unknown backend {backend!r} (torch or onnxruntime)")
        if grad_mode not in ("inference", "no_grad"):
            raise ValueError(f"unknown grad mode {grad_mode!r} (inference or no_grad)")
        self.options = {"channels_last": bool(channels_last), "compile": bool(compile), "backend": backend,
                        "grad_mode": grad_mode}
        self._runners = {}
        mf = torch.channels_last if channels_last else torch.contiguous_format
        for name in ("boundary", "landmark"):
            model = getattr(self, name).to(memory_format=mf)
            if backend == "onnxruntime":
                self._runners[name] = _OrtRunner(model, self.config.input_size, self.device)
            elif compile:
                self._runners[name] = torch.compile(model)
        return self

    #: options never applied on their own: torch.compile compiles on the first call of every input
    #: shape (tens of seconds on a 2-core CPU, again for each new batch size), which would freeze a
    #: live view at its start and whenever the number of faces changes
    STARTUP_COSTLY_OPTIONS = ("torch.compile",)

    def apply_measured_speed_option(self) -> str:
        """Use the fastest speed option that ``dmsl bench`` measured for this model (the card's
        ``bench.options``, else ``bench.best_option``) that was measured on this kind of device,
        keeps the landmarks (max difference < 0.05 px), has no start-up cost
        (:data:`STARTUP_COSTLY_OPTIONS`) and can run here (e.g. ONNX Runtime installed); else keep
        the plain torch path. Returns what is in use, for the log/status bar."""
        bench = (self.card or {}).get("bench") or {}
        rows = [o for o in bench.get("options") or []
                if o.get("option") in OPTION_SETS and OPTION_SETS[o["option"]] and not o.get("error")
                and not o.get("changes_results") and o.get("fps")
                and (o.get("max_diff_px") is None or o["max_diff_px"] < 0.05)
                and o.get("threads", bench.get("threads")) == bench.get("threads")]
        if not rows and bench.get("best_option"):
            rows = [bench["best_option"]]
        rows = [o for o in rows if o.get("option") not in self.STARTUP_COSTLY_OPTIONS
                and o.get("option") in OPTION_SETS and OPTION_SETS[o["option"]]
                and torch.device(o.get("device", "cpu")).type == self.device.type]
        if not rows:
            return "torch (default)"
        best = max(rows, key=lambda o: o.get("fps") or 0.0)
        name = best["option"]
        try:
            self.optimise(**OPTION_SETS[name])
        except Exception as exc:  # noqa: BLE001 - not available here (package missing, compiler missing ...)
            log.info("measured speed option %r unavailable here (%s); using plain torch", name, exc)
            self.optimise()
            return "torch (default)"
        log.info("using the speed option %r (measured x%s by dmsl bench)", name, best.get("ratio"))
        return name

    options: dict = {"channels_last": False, "compile": False, "backend": "torch", "grad_mode": "inference"}
    #: test-time augmentation: "none"; "flip" (M_b's second pass and every M_l pass also run on the
    #: mirrored crop, in the same batch, and the two boxes / point sets are averaged); "flip-final"
    #: (only the final M_l pass does: on the validation subjects it kept all of flip's gain, at the
    #: cost of one mirrored crop per face)
    tta: str = "none"
    TTA_MODES = ("none", "flip-final", "flip")

    def set_tta(self, mode: str) -> "Predictor":
        if mode not in self.TTA_MODES:
            raise ValueError(f"unknown test-time augmentation {mode!r} (known: {', '.join(self.TTA_MODES)})")
        self.tta = mode
        return self

    #: how the face box is refined before the final M_l pass (see the module docstring): "mb" (M_b's
    #: second pass on a crop around its coarse box), "landmarks" (M_l on the coarse box, then again on
    #: the box of its own landmarks), "both"
    refine: str = "mb"
    #: the refinement of a face detector's box that is not fitted to the 68 points' box
    #: (:attr:`dmsl_core.detection.FaceDetector.FITTED_BOXES` False: the HOG detectors' boxes of their
    #: own shape); the card's ``inference.refine_rough``, else :attr:`refine`
    refine_rough: str = "mb"
    REFINE_MODES = ("mb", "landmarks", "both")

    def set_refine(self, mode: str, rough: Optional[str] = None) -> "Predictor":
        """The refinement of every box (``rough`` None), or of fitted boxes and of rough ones apart."""
        for m in (mode, rough):
            if m is not None and m not in self.REFINE_MODES:
                raise ValueError(f"unknown box refinement {m!r} (known: {', '.join(self.REFINE_MODES)})")
        self.refine = mode
        self.refine_rough = mode if rough is None else rough
        return self

    def refine_for(self, detector: str) -> str:
        """The refinement of a box from the detector backend ``detector`` (a registered name)."""
        from .detection import boxes_fitted
        return self.refine if boxes_fitted(detector) else self.refine_rough

    def predict_detections(self, image: np.ndarray, dets: Sequence) -> list[Prediction]:
        """Landmarks for each detection (anything with ``box`` and ``detector``) of one image, each
        refined as :meth:`refine_for` says for its backend (one batch per refinement)."""
        modes = [self.refine_for(getattr(d, "detector", "") or "") for d in dets]
        out: list[Optional[Prediction]] = [None] * len(dets)
        for m in dict.fromkeys(modes):
            idx = [i for i, mi in enumerate(modes) if mi == m]
            preds = self.predict([image] * len(idx), boxes=[np.asarray(dets[i].box, float) for i in idx], refine=m)
            for i, p in zip(idx, preds):
                out[i] = p
        return out

    @property
    def forwards_per_face(self) -> int:
        """Model forwards per face from a frame with no known box (flip TTA doubles the batch of each
        refining step, flip-final only the final M_l pass's, not their number)."""
        return {"mb": 3, "landmarks": 3, "both": 4}[self.refine]
    _runners: dict = {}

    # ---- inference ----------------------------------------------------------------------
    def _forward(self, model: torch.nn.Module, views: list[np.ndarray]) -> np.ndarray:
        x = np.stack(views)[:, None].astype(np.float32, copy=False)
        runner = self._runners.get("boundary" if model is self.boundary else "landmark")
        if isinstance(runner, _OrtRunner):
            return runner(x).astype(np.float64)
        x = torch.from_numpy(x).to(self.device, self.dtype)
        if self.options["channels_last"]:
            x = x.contiguous(memory_format=torch.channels_last)
        ctx = torch.inference_mode() if self.options["grad_mode"] == "inference" else torch.no_grad()
        with ctx:
            y = (runner if runner is not None else model)(x)
        return y.float().cpu().numpy().astype(np.float64)

    def predict(self, images: Sequence[np.ndarray], boxes: Optional[Sequence[Optional[np.ndarray]]] = None,
                refine: bool | str = True, keep_quality_inputs: bool = False) -> list[Prediction]:
        """Landmarks for each image (one forward per model and step for the whole list); with a
        quality network (:attr:`quality`) each prediction carries its ``confidence``.
        ``refine``: True = :attr:`refine`'s refinement, False = none (the box is final), or a mode
        of :data:`REFINE_MODES` for this call. ``keep_quality_inputs`` also returns that network's
        inputs (for training it)."""
        if isinstance(refine, str) and refine not in self.REFINE_MODES:
            raise ValueError(f"unknown box refinement {refine!r} (known: {', '.join(self.REFINE_MODES)})")
        mode = self.refine if refine is True else (refine or None)
        if len(images) == 0:
            return []
        if boxes is not None and len(boxes) != len(images):
            raise ValueError(f"{len(boxes)} boxes for {len(images)} images")
        S = self.config.input_size
        cs = self.config.crop_scale
        grays = [pp.prepare_gray(im) for im in images]
        coarse: list[Optional[np.ndarray]] = [None] * len(grays)
        cur: list[Optional[np.ndarray]] = [None if boxes is None or boxes[i] is None else np.asarray(boxes[i], float)
                                           for i in range(len(grays))]
        # Step 1: M_b on the whole frame where no box is known.
        todo = [i for i, b in enumerate(cur) if b is None]
        if todo:
            views = [pp.full_view(grays[i].shape[0], grays[i].shape[1], S) for i in todo]
            out = self._forward(self.boundary, [pp.normalise(pp.warp_view(grays[i], v)) for i, v in zip(todo, views)])
            for i, v, b in zip(todo, views, out):
                cur[i] = coarse[i] = v.box_to_source(pp.box_from_normalised(b, S))
        flips, final = self._flips, self._final_flips
        n = len(cur)
        # Step 2: M_b again on a crop around the box (with flip TTA also on the mirrored crop).
        if mode in ("mb", "both"):
            views = [pp.box_view(b, S, cs, flip=f) for f in flips for b in cur]
            out = self._forward(self.boundary, [pp.normalise(pp.warp_view(g, v))
                                                for g, v in zip(grays * len(flips), views)])
            boxes_ = [v.box_to_source(pp.box_from_normalised(b, S)) for v, b in zip(views, out)]
            cur = boxes_[:n] if len(flips) == 1 else [(a + b) / 2.0 for a, b in zip(boxes_[:n], boxes_[n:])]
        # Step 3: crop around B, black out, M_l (with flip TTA also on the mirrored crop, same batch);
        # with landmark refinement, once more around the box of the first pass's landmarks.
        again = mode in ("landmarks", "both")
        want_q = keep_quality_inputs or self.quality is not None
        keep: Optional[list] = [] if want_q else None
        pts = self._landmark_pass(grays, flips if again else final, boxes=cur, keep=None if again else keep)
        if again:
            cur = [boundary_from_points(p) for p in pts]
            pts = self._landmark_pass(grays, final, guides=pts, keep=keep)
        out = [Prediction(landmarks=p, boundary=np.asarray(b, float), coarse_boundary=c)
               for p, b, c in zip(pts, cur, coarse)]
        if keep:
            self._add_quality(out, keep, keep_quality_inputs)
        return out

    def _add_quality(self, preds: list[Prediction], keep: list, keep_inputs: bool) -> None:
        """The quality network's inputs per face (the final pass's crop and its points in it) and,
        with a network, each prediction's confidence (0 for points that are not all finite)."""
        S = self.config.input_size
        crops, views, devs = keep
        feats = [quality_inputs(c, v.to_view(p.landmarks), S, d)
                 for c, v, d, p in zip(crops, views, devs, preds)]
        if keep_inputs:
            for p, f in zip(preds, feats):
                p.quality_inputs = f
        if self.quality is None:
            return
        conf, nme = self.quality(np.stack([f[0] for f in feats]), np.stack([f[1] for f in feats]))
        for p, c, e in zip(preds, conf, nme):
            finite = bool(np.isfinite(p.landmarks).all())
            p.confidence = float(c) if finite else 0.0
            p.predicted_nme = float(e) if finite else float("inf")

    #: the largest roll (degrees) a second landmark pass turns its crop by
    MAX_DEROLL_DEG = 45.0

    def landmarks_from(self, images: Sequence[np.ndarray], guides: Sequence[np.ndarray]) -> list[np.ndarray]:
        """One M_l pass around given landmarks (the second pass of ``refine="landmarks"`` / ``"both"``):
        the crop is centred on their bounding box, turned so the line through the outer eye corners
        (36, 45) is level (at most :data:`MAX_DEROLL_DEG`), and blacked out around the guides'
        bounding box in that crop. Returns (68, 2) points per image, in its pixels."""
        guides = [np.asarray(g, dtype=np.float64).reshape(68, 2) for g in guides]
        if len(guides) != len(images):
            raise ValueError(f"{len(guides)} landmark sets for {len(images)} images")
        return self._landmark_pass([pp.prepare_gray(im) for im in images], self._final_flips, guides=guides)

    @property
    def _flips(self) -> tuple:
        """The mirror settings of each view batch before the final M_l pass: the crop, and with
        flip TTA its mirror too."""
        return (False, True) if self.tta == "flip" else (False,)

    @property
    def _final_flips(self) -> tuple:
        """The mirror settings of the final M_l pass's views (flip and flip-final add the mirror)."""
        return (False, True) if self.tta in ("flip", "flip-final") else (False,)

    def _landmark_pass(self, grays: list[np.ndarray], flips: tuple, boxes: Optional[list[np.ndarray]] = None,
                       guides: Optional[list[np.ndarray]] = None, keep: Optional[list] = None) -> list[np.ndarray]:
        """One M_l forward for all faces: crop around each of ``boxes``, black out, points in source
        pixels; or, given ``guides`` instead (landmarks of an earlier pass, one set per face), the
        crop turned upright and blacked out around the guides' box in it (see :meth:`landmarks_from`)."""
        S, cs = self.config.input_size, self.config.crop_scale
        n = len(boxes) if guides is None else len(guides)
        if guides is None:
            views = [pp.box_view(b, S, cs, flip=f) for f in flips for b in boxes]
        else:
            views = [_upright_view(g, S, cs, self.MAX_DEROLL_DEG, f) for f in flips for g in guides]
        inputs, crops = [], []
        for k, (g, v) in enumerate(zip(grays * len(flips), views)):
            img = pp.normalise(pp.warp_view(g, v))
            if keep is not None and k < n:
                crops.append(img)
            vbox = (v.box_to_view(boxes[k % n]) if guides is None
                    else boundary_from_points(v.to_view(guides[k % n])))
            inputs.append(pp.blackout(img, vbox, self.config.blackout_margin))
        out = self._forward(self.landmark, inputs)
        pts = [v.to_source(pp.from_normalised(o.reshape(68, 2), S)) for v, o in zip(views, out)]
        devs: list[Optional[float]] = [None] * n
        if len(flips) == 2:
            # the mirrored view's point i is the face's point MIRROR_PERM[i]
            if keep is not None:   # their disagreement, in the (unmirrored) view's pixels
                devs = [float(np.nanmean(np.linalg.norm(views[i].to_view(a) - views[i].to_view(b[MIRROR_PERM]), axis=1)))
                        for i, (a, b) in enumerate(zip(pts[:n], pts[n:]))]
            pts = [(a + b[MIRROR_PERM]) / 2.0 for a, b in zip(pts[:n], pts[n:])]
        if keep is not None:
            keep[:] = [crops, views[:n], devs]
        return pts

    def predict_one(self, image: np.ndarray, box: Optional[np.ndarray] = None) -> Prediction:
        return self.predict([image], None if box is None else [box])[0]

    def faces(self, image: np.ndarray, *, detector="auto", spectrum: Optional[str] = None,
              refine: bool = True, fallback: bool = True) -> list["Face"]:
        """Every face in ``image``, each with its 68 landmarks; ``[]`` when the detector finds none.

        ``detector``: a registered name (:func:`dmsl_core.detection.list_detectors`; built once and
        kept), or any callable ``(image, spectrum) -> list[Detection]``. Each detection's box goes
        through :meth:`predict` (one batch per refinement): ``refine=True`` refines it the way
        :meth:`refine_for` says for its backend (:attr:`refine` for a box fitted to the 68 points'
        box, YuNet's; :attr:`refine_rough` for a box of the backend's own shape, where M_b's second
        pass re-centres it on the box M_l was trained on), ``False`` trusts the detector's box (one
        M_l pass). A detection whose
        landmarks the quality network rejects (:meth:`is_face`) is not a face and is left out.
        ``fallback``: where the detector finds nothing, M_b's own whole-frame pass is tried and kept
        when the quality network accepts it (:meth:`fallback_prediction`; detector name
        :data:`FALLBACK_DETECTOR`, score NaN) - the detector's misses (turned, tilted, partly hidden
        faces) are often M_b's easy cases, and the confidence keeps its guesses off coffee cups."""
        why = pixel_problem(image)
        if why is not None:   # not "no face": nothing can be seen at all
            raise ValueError(why)
        det = self._detector(detector)
        dets = det(image, spectrum)
        if not dets:
            if not fallback:
                return []
            p = self.fallback_prediction(image)
            if p is None:
                return []
            return [Face(index=0, box=boundary_from_points(p.landmarks), score=float("nan"), boundary=p.boundary,
                         landmarks=p.landmarks, spectrum=spectrum or "", detector=FALLBACK_DETECTOR,
                         confidence=p.confidence)]
        preds = (self.predict_detections(image, dets) if refine else
                 self.predict([image] * len(dets), boxes=[np.asarray(d.box, float) for d in dets], refine=False))
        kept = [(d, p) for d, p in zip(dets, preds) if self.is_face(p)]
        return [Face(index=i, box=np.asarray(d.box, float), score=float(d.score), boundary=p.boundary,
                     landmarks=p.landmarks, spectrum=spectrum or d.spectrum or "",
                     detector=getattr(d, "detector", "") or "", confidence=p.confidence)
                for i, (d, p) in enumerate(kept)]

    def fallback_prediction(self, image: np.ndarray) -> Optional[Prediction]:
        """M_b's whole-frame pass (steps 1-3) when its result is a face by :meth:`is_face`; None
        otherwise, and always None without a quality network (M_b alone cannot say "no face")."""
        if self.quality is None:
            return None
        p = self.predict([image])[0]
        return p if self.is_face(p) else None

    def is_face(self, pred: Prediction) -> bool:
        """Whether the landmark stage believes its points sit on a face: its confidence is at least
        the quality network's threshold (always True without a quality network, as long as the
        points are finite)."""
        if not np.isfinite(pred.landmarks).all():
            return False
        return self.quality is None or pred.confidence is None or pred.confidence >= self.quality.threshold

    def _detector(self, detector):
        if callable(detector):
            return detector
        if not isinstance(detector, str):
            raise ValueError(f"detector must be a registered name or a callable, got {detector!r}")
        cache = self.__dict__.setdefault("_detectors", {})
        if detector not in cache:
            from .detection import get_detector
            cache[detector] = get_detector(detector)
        return cache[detector]


def _upright_view(points: np.ndarray, size: int, crop_scale: float, max_deg: float, flip: bool) -> pp.View:
    """The view around landmarks turned so the outer eye corners are level (by at most ``max_deg``):
    centred on the points' bounding box *in the turned frame*, of side ``crop_scale`` x its larger
    side - the crop an upright training face gets, whatever the face's roll."""
    ok = np.isfinite(points).all(axis=1)
    a, b = OUTER_EYE_CORNERS
    d = points[b] - points[a]
    deg = float(np.clip(np.degrees(np.arctan2(d[1], d[0])), -max_deg, max_deg)) if ok[a] and ok[b] else 0.0
    t = np.deg2rad(deg)
    rot = np.array([[np.cos(t), np.sin(t)], [-np.sin(t), np.cos(t)]])   # square_view's turn
    up = points[ok] @ rot.T
    lo, hi = up.min(axis=0), up.max(axis=0)
    cx, cy = rot.T @ ((lo + hi) / 2.0)
    side = max(crop_scale * float((hi - lo).max()), 4.0)
    return pp.square_view(float(cx), float(cy), side, size, angle_deg=deg, flip=flip)


class _OrtRunner:
    """One model exported to ONNX (in memory) and run by ONNX Runtime."""

    def __init__(self, model: torch.nn.Module, size: int, device: torch.device) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise RuntimeError("the onnxruntime backend needs ONNX Runtime: pip install 'dmsl-studio[onnx]'") from None
        import io
        from .models.onnx_export import export_model
        buf = io.BytesIO()
        export_model(model, buf, size)
        from .threads import ort_session_options
        opts = ort_session_options()   # torch's thread count, no spinning (see dmsl_core/threads.py)
        providers = (["CUDAExecutionProvider", "CPUExecutionProvider"] if device.type == "cuda"
                     else ["CPUExecutionProvider"])
        avail = set(ort.get_available_providers())
        self.session = ort.InferenceSession(buf.getvalue(), opts, providers=[p for p in providers if p in avail])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {"image": x})[0]


# ---- loading a predictor: one way for the command line and the app ------------------------------
@dataclass
class LoadedPredictor:
    predictor: Predictor
    name: str                    # the model's name (" (untrained)" appended for random weights)
    device: str                  # in words ("CPU, 2 threads", "CUDA: NVIDIA H200")
    note: str = ""               # for the user (a fallback taken, untrained weights)
    untrained: bool = False
    card: dict = field(default_factory=dict)
    source: str = ""


def load_predictor(weights: Optional[str] = None, device: str = "auto", tta: Optional[str] = None,
                   refine: Optional[str] = None, fallback_config: Optional[str] = None) -> LoadedPredictor:
    """The predictor for ``weights`` (None / "" = the shipped default; a weights file or folder; a
    registered model name; ``untrained:CONFIG`` = random weights, for speed tests) on ``device``,
    with the card's fastest measured speed option applied. ``tta`` / ``refine`` None = the card's.

    ``fallback_config`` (the app: a window must always open) turns failures into a note instead of an
    error: an unknown or absent device runs on the CPU, weights that cannot be loaded give untrained
    ``fallback_config`` weights. Without it (the command line) those raise."""
    from .device import describe_device
    from .models.weights import WeightsError

    note = ""
    try:
        dev = resolve_device(device)
    except ValueError as exc:  # unknown or absent device (e.g. cuda on a CPU-only machine)
        if fallback_config is None:
            raise
        dev = resolve_device("cpu")
        note = f"{exc}; running on the CPU instead - choose the device in Settings"

    def untrained(config: str) -> Predictor:
        pred = Predictor.untrained(config, device=dev)
        if tta:
            pred.set_tta(tta)
        return pred.set_refine(refine) if refine else pred

    if weights and str(weights).startswith("untrained:"):
        config = str(weights).split(":", 1)[1] or "dmsl-compact"
        pred, is_untrained = untrained(config), True
        note = (note + ". " if note else "") + f"untrained {config} weights - landmarks are meaningless (speed tests only)"
    else:
        try:
            pred = Predictor.from_weights(weights or None, device=dev, tta=tta, refine=refine)
            pred.apply_measured_speed_option()
            is_untrained = bool(pred.card.get("untrained"))
        except WeightsError as exc:
            if fallback_config is None:
                raise
            note = (note + ". ") if note else ""
            if weights:
                note += f"bad weights ({exc}); showing untrained {fallback_config} weights - choose weights in Settings"
            else:
                note += (f"no shipped model: showing untrained {fallback_config} weights "
                         "(landmarks are meaningless) - choose weights in Settings")
            pred, is_untrained = untrained(fallback_config), True
    words = describe_device(dev)
    return LoadedPredictor(predictor=pred, name=pred.name + (" (untrained)" if is_untrained else ""),
                           device=words if dev.type == "cpu" else f"{dev.type.upper()}: {words}", note=note,
                           untrained=is_untrained, card=dict(pred.card), source=str(pred.source))
