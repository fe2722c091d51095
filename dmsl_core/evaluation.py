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


def _mean(vals: Sequence[float]) -> Optional[float]:
    v = [x for x in vals if x is not None]
    return float(np.mean(v)) if v else None


def predict_records(predictor, samples, batch_size: int = 16, progress=None) -> list[EvalRecord]:
    """Run a Predictor (or a baseline with the same ``predict``) over samples, ``batch_size`` images
    per call; one :class:`EvalRecord` per sample, in order. A prediction whose ``landmarks`` is None
    is a miss (no face found)."""
    recs: list[EvalRecord] = []
    samples = list(samples)
    for start in range(0, len(samples), batch_size):
        chunk = samples[start:start + batch_size]
        imgs = [s.load() for s in chunk]
        preds = predictor.predict(imgs)
        for s, p in zip(chunk, preds):
            n_ok = int(np.isfinite(s.landmarks).all(axis=1).sum())
            err = None if p.landmarks is None else nme_per_image(p.landmarks, s.landmarks)
            recs.append(EvalRecord(s.name, s.spectrum, s.variation, s.subject, err, n_ok))
        if progress:
            progress(min(start + batch_size, len(samples)), len(samples))
    return recs


def evaluate_predictor(predictor, samples, batch_size: int = 16, progress=None, method: str = "dmsl",
                       dist=None) -> dict:
    """Run a Predictor (or a baseline with the same ``predict``) over samples and build the report.

    A prediction whose ``landmarks`` is None is a miss (no face found).

    ``dist`` (a ``dmsl_core.distributed.DistContext`` of a torchrun job): each rank predicts a
    contiguous share of the samples - shares start on multiples of ``batch_size``, so every image is
    predicted in the same batch as in one process - and the records are gathered in the original
    order; every rank returns the same report (built from all the records).
    """
    samples = list(samples)
    if dist is None or not dist.active:
        return build_report(predict_records(predictor, samples, batch_size, progress), method=method)
    from .distributed import shard_range
    lo, hi = shard_range(len(samples), dist.rank, dist.world_size, align=batch_size)
    mine = predict_records(predictor, samples[lo:hi], batch_size, progress)
    recs = [r for part in dist.all_gather_object(mine) for r in part]
    if len(recs) != len(samples):
        raise RuntimeError(f"gathered {len(recs)} evaluation records for {len(samples)} images")
    return build_report(recs, method=method)


def write_report(report: dict, path) -> None:
    from .atomic import atomic_write_text
    atomic_write_text(path, json.dumps(report, indent=2, allow_nan=False, default=_json_default))


def _json_default(o):
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, (np.integer,)):
        return int(o)
    raise TypeError(f"not JSON serialisable: {type(o)}")
