"""The paper's metric and the usual companions.

NME (eq. 3): per image, the sum over points of the Euclidean error divided by P x D, with D the
distance between the ground-truth outer eye corners (indices 36 and 45); the mean over images.
Points missing from the ground truth (NaN, e.g. 54-point annotations) are left out and P counts
the points that exist; the report says how many images had missing points.

CED: the fraction of images whose NME is at most t, for t on a grid. AUC@0.08: the area under
the CED from 0 to 0.08, divided by 0.08 (1.0 = every image perfect). Failure rate@t: the
fraction of images with NME > t.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Iterable, Optional, Sequence

import numpy as np

from .landmarks import OUTER_EYE_CORNERS


def nme_per_image(pred: np.ndarray, gt: np.ndarray) -> float:
    """Eq. 3 for one image (before the mean over images)."""
    pred = np.asarray(pred, dtype=np.float64).reshape(-1, 2)
    gt = np.asarray(gt, dtype=np.float64).reshape(-1, 2)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction has {pred.shape[0]} points, ground truth {gt.shape[0]}")
    a, b = OUTER_EYE_CORNERS
    if not (np.isfinite(gt[a]).all() and np.isfinite(gt[b]).all()):
        raise ValueError("ground truth lacks an outer eye corner (36 or 45): NME is undefined")
    d = float(np.linalg.norm(gt[a] - gt[b]))
    if d <= 0:
        raise ValueError("outer eye corners coincide: NME is undefined")
    ok = np.isfinite(gt).all(axis=1)
    err = np.linalg.norm(pred[ok] - gt[ok], axis=1)
    if not np.isfinite(err).all():
        return math.inf
    return float(err.sum() / (ok.sum() * d))


def nme_undefined(gt: np.ndarray) -> Optional[str]:
    """Why the NME of an image with ground truth ``gt`` cannot be computed (missing or coinciding
    outer eye corners), or None. Evaluation skips such an image and names it."""
    g = np.asarray(gt, dtype=np.float64).reshape(-1, 2)
    a, b = OUTER_EYE_CORNERS
    if g.shape[0] <= max(a, b) or not (np.isfinite(g[a]).all() and np.isfinite(g[b]).all()):
        return "ground truth lacks an outer eye corner (36 or 45): NME is undefined, image skipped"
    if float(np.linalg.norm(g[a] - g[b])) <= 0:
        return "outer eye corners coincide: NME is undefined, image skipped"
    return None


def nme(preds: Sequence[np.ndarray], gts: Sequence[np.ndarray]) -> float:
    """Eq. 3: the mean of the per-image NMEs."""
    vals = [nme_per_image(p, g) for p, g in zip(preds, gts, strict=True)]
    return float(np.mean(vals)) if vals else float("nan")


def ced_curve(errors: Sequence[float], max_t: float = 0.10, steps: int = 101) -> tuple[np.ndarray, np.ndarray]:
    """(thresholds, fraction of images with NME <= threshold)."""
    e = np.asarray(errors, dtype=np.float64)
    t = np.linspace(0.0, max_t, steps)
    if e.size == 0:
        return t, np.zeros_like(t)
    return t, (e[None, :] <= t[:, None]).mean(axis=1)


def auc(errors: Sequence[float], limit: float = 0.08, steps: int = 801) -> float:
    """Area under the CED from 0 to ``limit``, normalised by ``limit``."""
    t, c = ced_curve(errors, limit, steps)
    return float(np.trapezoid(c, t) / limit) if hasattr(np, "trapezoid") else float(np.trapz(c, t) / limit)


def failure_rate(errors: Sequence[float], threshold: float) -> float:
    e = np.asarray(errors, dtype=np.float64)
    return float((e > threshold).mean()) if e.size else float("nan")


@dataclass
class EvalRecord:
    """One evaluated image."""
    image: str
    spectrum: str
    variation: str
    subject: str
    nme: Optional[float]          # None when the method found no face ("miss")
    n_points: int = 68


def summarize(errors: Sequence[float]) -> dict:
    e = [x for x in errors if x is not None]
    return {
        "nme": float(np.mean(e)) if e else None,
        "n": len(e),
        "auc_0.08": auc(e) if e else None,
        "failure_rate_0.08": failure_rate(e, 0.08) if e else None,
        "failure_rate_0.10": failure_rate(e, 0.10) if e else None,
    }


def build_report(records: Iterable[EvalRecord], method: str = "dmsl", extra: Optional[dict] = None) -> dict:
    """The JSON report of ``dmsl eval``.

    Top-level keys: ``nme`` ({"th", "vis", "all"}), ``per_variation`` ({variation: {"th", "vis",
    "all"}}), ``ced`` ({"thresholds": [...], "th": [...], "vis": [...], "all": [...]}),
    ``auc_0.08``, ``failure_rate_0.08``, ``failure_rate_0.10`` (each over all images),
    ``n_images``, ``per_spectrum`` (full summaries), ``misses`` (images with no detection) and
    ``strict`` (the same figures counting a miss as a failure with NME = inf), ``images``.
    """
    recs = list(records)
    found = [r for r in recs if r.nme is not None]
    by_spec = {s: [r.nme for r in found if r.spectrum == s] for s in ("th", "vis")}
    all_e = [r.nme for r in found]
    t, c_all = ced_curve(all_e)
    ced = {"thresholds": t.round(6).tolist(), "all": c_all.round(6).tolist()}
    for s, e in by_spec.items():
        ced[s] = ced_curve(e)[1].round(6).tolist()
    per_var: dict[str, dict] = {}
    for var in sorted({r.variation for r in recs}):
        rs = [r for r in found if r.variation == var]
        per_var[var] = {
            "th": _mean([r.nme for r in rs if r.spectrum == "th"]),
            "vis": _mean([r.nme for r in rs if r.spectrum == "vis"]),
            "all": _mean([r.nme for r in rs]),
            "n": len(rs),
        }
    misses = [r for r in recs if r.nme is None]
    strict_e = [r.nme if r.nme is not None else math.inf for r in recs]
    report = {
        "method": method,
        "nme": {"th": _mean(by_spec["th"]), "vis": _mean(by_spec["vis"]), "all": _mean(all_e)},
        "per_variation": per_var,
        "ced": ced,
        "auc_0.08": auc(all_e) if all_e else None,
        "failure_rate_0.08": failure_rate(all_e, 0.08) if all_e else None,
        "failure_rate_0.10": failure_rate(all_e, 0.10) if all_e else None,
        "n_images": len(recs),
        "per_spectrum": {s: summarize(e) for s, e in by_spec.items()},
        "misses": {"count": len(misses), "th": sum(r.spectrum == "th" for r in misses),
                   "vis": sum(r.spectrum == "vis" for r in misses), "images": [r.image for r in misses]},
        "strict": {
            "failure_rate_0.08": failure_rate(strict_e, 0.08) if strict_e else None,
            "failure_rate_0.10": failure_rate(strict_e, 0.10) if strict_e else None,
            "auc_0.08": auc(strict_e) if strict_e else None,
        },
        "partial_annotations": sum(r.n_points < 68 for r in recs),
        "images": [{"image": r.image, "spectrum": r.spectrum, "variation": r.variation, "subject": r.subject,
                    "nme": r.nme} for r in recs],
    }
    if extra:
        report.update(extra)
    return report


def card_nme(report: dict) -> dict:
    """The model card's ``nme_val`` / ``nme_test`` entry from an evaluation report: NME per
    spectrum, the number of images and the NME per variation (both spectra)."""
    return {**report["nme"], "n_images": report["n_images"],
            "per_variation": {k: v["all"] for k, v in report["per_variation"].items()}}


def _mean(vals: Sequence[float]) -> Optional[float]:
    v = [x for x in vals if x is not None]
    return float(np.mean(v)) if v else None


#: a reported face is the annotated one when the box of its points overlaps the box of the true points
#: this much (IoU; the rule of ``tools/face_targets.py`` and of ``dmsl eval --detector``)
MATCH_IOU = 0.4


def match_annotated_face(faces: Sequence, gt: np.ndarray, min_iou: float = MATCH_IOU):
    """(the face of ``faces`` that is the annotated one, or None; how many others). A face is anything
    with ``landmarks`` (a :class:`dmsl_core.pipeline.Face`); the best-overlapping one with IoU >= ``min_iou``
    between its points' box and the true points' box is the annotated face."""
    from .detection import iou
    from .landmarks import boundary_from_points
    gbox = boundary_from_points(np.asarray(gt, float))
    best, best_iou = None, float(min_iou)
    for f in faces:
        try:
            v = iou(boundary_from_points(np.asarray(f.landmarks, float)), gbox)
        except ValueError:
            continue
        if v >= best_iou:
            best, best_iou = f, v
    return best, len(faces) - (best is not None)


def _detector_predictions(predictor, imgs, chunk, detector):
    """The shipped path per image (``Predictor.faces``: the face detector, the box refinement, the
    confidence): the annotated face's prediction, or a miss (``landmarks`` None) when no reported
    face is it."""
    from types import SimpleNamespace
    out = []
    for im, s in zip(imgs, chunk):
        faces = predictor.faces(im, detector=detector, spectrum=s.spectrum)
        best, _ = match_annotated_face(faces, s.landmarks)
        out.append(SimpleNamespace(landmarks=None if best is None else np.asarray(best.landmarks, float)))
    return out


def predict_records(predictor, samples, batch_size: int = 16, progress=None, keep_predictions: bool = False,
                    should_stop=None, true_box: bool = False,
                    detector: Optional[str] = None) -> tuple[list[EvalRecord], list[dict]]:
    """Run a Predictor (or a baseline with the same ``predict``) over samples, ``batch_size`` images
    per call: (one :class:`EvalRecord` per sample in order, and with ``keep_predictions`` one
    ``{"pred", "gt"}`` per sample). A prediction whose ``landmarks`` is None is a miss (no face
    found). ``should_stop()`` returning True raises :class:`EvaluationStopped`. ``true_box``: give
    M_l the ground truth's box B instead of M_b's (a diagnosis: M_l's error with a perfect M_b).
    ``detector``: find the faces with this face detector first, as ``dmsl predict`` and the app do
    (:func:`_detector_predictions`; the annotated face not among them is a miss)."""
    if true_box and detector:
        raise ValueError("true_box and detector exclude each other (the box comes from the truth or from the detector)")
    recs: list[EvalRecord] = []
    samples = list(samples)
    kept: list[dict] = []
    for start in range(0, len(samples), batch_size):
        if should_stop is not None and should_stop():
            raise EvaluationStopped("evaluation stopped")
        chunk = samples[start:start + batch_size]
        imgs = [s.load() for s in chunk]
        if true_box:
            from .landmarks import boundary_from_points
            preds = predictor.predict(imgs, boxes=[boundary_from_points(np.asarray(s.landmarks, float)) for s in chunk],
                                      refine=False)
        elif detector:
            preds = _detector_predictions(predictor, imgs, chunk, detector)
        else:
            preds = predictor.predict(imgs)
        for s, p in zip(chunk, preds):
            n_ok = int(np.isfinite(s.landmarks).all(axis=1).sum())
            try:
                err = None if p.landmarks is None else nme_per_image(p.landmarks, s.landmarks)
            except ValueError as exc:
                raise ValueError(f"{getattr(s, 'path', '') or s.name}: {exc}") from None
            recs.append(EvalRecord(s.name, s.spectrum, s.variation, s.subject, err, n_ok))
            if keep_predictions:
                gt = np.where(np.isfinite(s.landmarks), s.landmarks, np.nan)
                kept.append({"pred": None if p.landmarks is None else np.round(np.asarray(p.landmarks, float), 3).tolist(),
                             "gt": [[None if not np.isfinite(v) else round(float(v), 3) for v in row] for row in gt]})
        if progress:
            progress(min(start + batch_size, len(samples)), len(samples))
    return recs, kept


class EvaluationStopped(Exception):
    pass


def evaluate_predictor(predictor, samples, batch_size: int = 16, progress=None, method: str = "dmsl",
                       keep_predictions: bool = False, should_stop=None, dist=None, true_box: bool = False,
                       detector: Optional[str] = None) -> dict:
    """Run a Predictor (or a baseline with the same ``predict``) over samples and build the report.

    A prediction whose ``landmarks`` is None is a miss (no face found). ``keep_predictions`` adds
    ``pred`` (68 x 2 pixels, or None) and ``gt`` to each entry of ``report["images"]`` (the app's
    worst-images view). ``should_stop()`` returning True raises :class:`EvaluationStopped`.

    ``dist`` (a ``dmsl_core.distributed.DistContext`` of a torchrun job): each rank predicts a
    contiguous share of the samples - shares start on multiples of ``batch_size``, so every image is
    predicted in the same batch as in one process - and the records are gathered in the original
    order; every rank returns the same report (built from all the records).
    """
    samples = list(samples)
    if dist is None or not dist.active:
        recs, kept = predict_records(predictor, samples, batch_size, progress, keep_predictions, should_stop, true_box,
                                     detector)
    else:
        from .distributed import shard_range
        lo, hi = shard_range(len(samples), dist.rank, dist.world_size, align=batch_size)
        mine = predict_records(predictor, samples[lo:hi], batch_size, progress, keep_predictions, should_stop, true_box,
                               detector)
        parts = dist.all_gather_object(mine)
        recs = [r for part in parts for r in part[0]]
        kept = [k for part in parts for k in part[1]]
        if len(recs) != len(samples):
            raise RuntimeError(f"gathered {len(recs)} evaluation records for {len(samples)} images")
    report = build_report(recs, method=method)
    if keep_predictions:
        for entry, k in zip(report["images"], kept):
            entry.update(k)
    return report


def evaluate_folder(data, weights=None, *, fold: Optional[int] = None, folds: int = 10,
                    spectra: Sequence[str] = ("vis", "th"), baselines: Sequence[str] = (),
                    device: str = "auto", batch_size: int = 16, keep_predictions: bool = False,
                    skip_unavailable: bool = False, progress=None, should_stop=None,
                    compare: Sequence[str] = (), dist=None, tta: Optional[str] = None,
                    refine: Optional[str] = None, true_box: bool = False, detector: Optional[str] = None) -> dict:
    """Evaluate weights (run folder, ``.safetensors`` or shipped name) on a dataset folder - all of
    it, or fold ``fold``'s test subjects - and the named baselines (``dlib``, ``dlib+mb``) on the
    same images, and other trained models (``compare``: weights specs) likewise: the report of ``dmsl eval`` (see :func:`build_report`) plus ``baselines``
    ({name: report}) and ``baselines_unavailable`` ({name: reason}, with ``skip_unavailable``;
    otherwise an unavailable baseline raises). ``progress(message, done, total)``. ``dist``: shard
    the images over the ranks of a torchrun job (see :func:`evaluate_predictor`); the report holds
    no timing, so the same data give the same JSON whatever the number of processes. ``tta``:
    test-time augmentation of the models ("none", "flip-final", "flip"; None = each model card's own); ``refine``: their box
    refinement ("mb", "landmarks", "both"; None = each card's own). ``true_box``:
    the DMSL models get the ground truth's face box instead of M_b's (M_l's error with a perfect M_b;
    the report says ``"box": "truth"``; baselines are run as usual). ``detector`` (a face detector's
    name, e.g. "auto"): the DMSL models find the faces the way ``dmsl predict`` and the app do - the
    detector, the box refinement, the landmark confidence - and the annotated face not among the
    reported faces counts as a miss (``"box": "detector:NAME"``)."""
    from pathlib import Path

    from .data.folder import LoadReport, load_samples
    from .pipeline import Predictor

    subjects = None
    if fold is not None:
        from .data.splits import split_subjects as _split_subjects
        _, _, subjects = _split_subjects(str(data), fold, folds)
    rep = LoadReport()
    samples = [s for s in load_samples(data, tuple(spectra), subjects=subjects, report=rep)
               if (why := nme_undefined(s.landmarks)) is None or rep.skipped.append(f"{s.path}: {why}")]
    if not samples:
        raise ValueError(f"{data}: no annotated images to evaluate" + (f" in fold {fold}'s test subjects"
                                                                         if fold is not None else ""))
    pred = Predictor.from_weights(weights, device=dist.device if (dist is not None and dist.active)
                                  else (device or "auto"), tta=tta, refine=refine)
    say = (lambda msg: (lambda i, n: progress(msg, i, n))) if progress else (lambda msg: None)
    report = evaluate_predictor(pred, samples, batch_size=batch_size, progress=say(pred.name or "dmsl"),
                                keep_predictions=keep_predictions, should_stop=should_stop, dist=dist,
                                true_box=true_box, detector=detector)
    report.update({"weights": pred.source, "model": pred.name, "tta": pred.tta,
                   "refine": None if true_box else pred.refine,
                   "box": "truth" if true_box else f"detector:{detector}" if detector else "model",
                   "data": str(Path(data).resolve()),
                   "fold": fold, "dropped_dark": rep.dropped_dark, "skipped": rep.skipped})
    out, unavailable = {}, {}
    for name in [b.strip() for b in baselines if b and b.strip()]:
        from .baselines import BaselineUnavailable, DlibBaseline
        if name not in ("dlib", "dlib+mb", "dlib+Mb"):
            raise ValueError(f"unknown baseline {name!r} (known: dlib, dlib+mb)")
        try:
            base = DlibBaseline() if name == "dlib" else DlibBaseline(box_from=pred)
        except BaselineUnavailable as exc:
            if not skip_unavailable:
                raise
            unavailable[name] = str(exc)
            continue
        b = evaluate_predictor(base, samples, batch_size=batch_size, method=base.name, progress=say(base.name),
                               keep_predictions=keep_predictions, should_stop=should_stop, dist=dist)
        if not keep_predictions:
            b.pop("images", None)
        out[base.name] = b
    for spec in [c for c in compare if c and str(c).strip()]:
        other = Predictor.from_weights(spec, device=dist.device if (dist is not None and dist.active)
                                       else (device or "auto"), tta=tta, refine=refine)
        name = other.name or Path(str(spec)).name
        if name in out or name == (pred.name or "dmsl"):
            name = f"{name} ({spec})"
        b = evaluate_predictor(other, samples, batch_size=batch_size, method=name, progress=say(name),
                               keep_predictions=keep_predictions, should_stop=should_stop, dist=dist,
                               true_box=true_box, detector=detector)
        if not keep_predictions:
            b.pop("images", None)
        b["weights"] = other.source
        out[name] = b
    if out:
        report["baselines"] = out
    if unavailable:
        report["baselines_unavailable"] = unavailable
    return report


def table_rows(report: dict) -> list[dict]:
    """The paper's Table I shape: one row per method (DMSL first, then the baselines) with NME TH /
    VIS over detected images, misses per spectrum, AUC@0.08 and failure rates (paper's way: over
    detected images; strict: a miss counts as a failure)."""
    rows = []
    for name, r in [(report.get("model") or report.get("method", "dmsl"), report),
                    *(report.get("baselines") or {}).items()]:
        rows.append({"method": name, "nme_th": r["nme"]["th"], "nme_vis": r["nme"]["vis"],
                     "nme_all": r["nme"]["all"], "misses_th": r["misses"]["th"], "misses_vis": r["misses"]["vis"],
                     "n_images": r["n_images"], "auc_0.08": r["auc_0.08"],
                     "failure_rate_0.08": r["failure_rate_0.08"], "failure_rate_0.10": r["failure_rate_0.10"],
                     "strict_auc_0.08": r["strict"]["auc_0.08"],
                     "strict_failure_rate_0.08": r["strict"]["failure_rate_0.08"],
                     "strict_failure_rate_0.10": r["strict"]["failure_rate_0.10"]})
    return rows


def report_to_csv(report: dict) -> str:
    """CSV export of a report: the methods table, then the per-variation NMEs, then every image."""
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    rows = table_rows(report)
    cols = list(rows[0]) if rows else []
    w.writerow(["# methods"])
    w.writerow(cols)
    for r in rows:
        w.writerow([_csv_val(r[c]) for c in cols])
    w.writerow([])
    w.writerow(["# per variation", "(NME over detected images)"])
    methods = [(rows[0]["method"] if rows else "dmsl", report), *(report.get("baselines") or {}).items()]
    w.writerow(["variation"] + [f"{m} {s}" for m, _ in methods for s in ("TH", "VIS")])
    for var in report["per_variation"]:
        line = [var]
        for _, r in methods:
            v = r["per_variation"].get(var, {})
            line += [_csv_val(v.get("th")), _csv_val(v.get("vis"))]
        w.writerow(line)
    w.writerow([])
    w.writerow(["# images"])
    w.writerow(["method", "image", "spectrum", "subject", "variation", "nme"])
    for m, r in methods:
        for e in r.get("images") or []:
            w.writerow([m, e["image"], e["spectrum"], e["subject"], e["variation"],
                        "miss" if e["nme"] is None else _csv_val(e["nme"])])
    return buf.getvalue()


def _csv_val(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return "inf" if math.isinf(v) else f"{v:.6g}"
    return str(v)


def write_report(report: dict, path) -> None:
    from .atomic import atomic_write_text
    atomic_write_text(path, json.dumps(report, indent=2, allow_nan=False, default=_json_default))


def _json_default(o):
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, (np.integer,)):
        return int(o)
    raise TypeError(f"not JSON serialisable: {type(o)}")
