"""Training and measuring the landmark stage's confidence (:mod:`dmsl_core.models.quality`).

The network learns to judge the pipeline's own results, so its training set is made by running
the real pipeline (:meth:`Predictor.predict` with ``keep_quality_inputs=True``) on annotated images
from boxes of every kind it meets in use, and scoring each result against the truth:

- ``track``: the truth's box, slightly off (scale x exp(N(0, 0.12)), shift N(0, 0.08) of its side),
  one M_l pass (``refine=False``) - a tracked face between detections;
- ``detect``: a box off by up to x0.55-1.8 in size and 35 % of its side in position, refined the
  way the model's card says - a detector's box;
- ``wild``: off by x0.35-2.8 and up to 70 % - a detector's false box on part of a face, which the
  refinement may or may not rescue;
- ``background``: a box on the image away from the face (it overlaps the face's box by IoU < 0.05);
- ``texture``: a generated image with no face at all (noise at several scales, flat, gradients,
  stripes, checkers, ellipses, a warm blob on a cool background, in 8 and 16 bits).

The label is the NME of the result against the truth (``background`` and ``texture`` count as 10:
there is no face to hit), and success is NME < 0.08 (:data:`SUCCESS_NME`, the failure threshold of
the reports). The threshold under which a face is not a face is chosen on *validation* subjects
(:func:`choose_threshold`); test images are only measured (:func:`quality_report`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np

from .detection import iou
from .evaluation import nme_per_image
from .landmarks import boundary_from_points
from .models.quality import SUCCESS_NME, QualityNet

KINDS = ("track", "detect", "wild", "background", "texture")
NO_FACE_NME = 10.0


@dataclass
class QualitySetConfig:
    per_image: int = 3           # pipeline results per annotated image (track / detect / wild, in turn)
    background_every: int = 1    # a background box for every N-th image (0: none)
    texture_every: int = 3       # a no-face texture for every N-th image (0: none)
    seed: int = 0
    batch: int = 32


def _jitter(box: np.ndarray, rng: np.random.Generator, kind: str) -> np.ndarray:
    x, y, w, h = (float(v) for v in box)
    side = max(w, h)
    if kind == "track":
        s, dx, dy = math.exp(rng.normal(0, 0.12)), rng.normal(0, 0.08), rng.normal(0, 0.08)
    elif kind == "detect":
        s, (dx, dy) = math.exp(rng.uniform(math.log(0.55), math.log(1.8))), rng.uniform(-0.35, 0.35, 2)
    else:
        s, (dx, dy) = math.exp(rng.uniform(math.log(0.35), math.log(2.8))), rng.uniform(-0.7, 0.7, 2)
    cx, cy = x + w / 2 + dx * side, y + h / 2 + dy * side
    nw, nh = w * s * math.exp(rng.normal(0, 0.05)), h * s * math.exp(rng.normal(0, 0.05))
    return np.array([cx - nw / 2, cy - nh / 2, nw, nh])


def _background_box(shape: tuple, face: np.ndarray, rng: np.random.Generator) -> Optional[np.ndarray]:
    H, W = shape[:2]
    side0 = max(float(face[2]), float(face[3]))
    for _ in range(30):
        s = side0 * rng.uniform(0.3, 1.2)
        if s >= min(H, W) or s < 12:
            continue
        x, y = rng.uniform(0, W - s), rng.uniform(0, H - s)
        b = np.array([x, y, s, s * rng.uniform(0.9, 1.25)])
        cx, cy = face[0] + face[2] / 2, face[1] + face[3] / 2
        if iou(b, face) < 0.05 and not (b[0] <= cx <= b[0] + b[2] and b[1] <= cy <= b[1] + b[3]):
            return b
    return None


def texture_image(rng: np.random.Generator, shape: tuple = (256, 320)) -> np.ndarray:
    """An image with no face: one of several kinds of texture, 8-bit grey or colour or 16-bit."""
    import cv2
    H, W = shape
    kind = int(rng.integers(0, 8))
    if kind == 0:
        img = rng.uniform(0, 1, (H, W))
    elif kind == 1:
        img = cv2.GaussianBlur(rng.normal(0, 1, (H, W)), (0, 0), float(rng.uniform(1, 20)))
    elif kind == 2:
        img = np.full((H, W), rng.uniform(0, 1)) + rng.normal(0, 0.01, (H, W))
    elif kind == 3:
        yy, xx = np.mgrid[0:H, 0:W]
        a = rng.uniform(0, 2 * np.pi)
        img = np.cos(a) * xx + np.sin(a) * yy
        if rng.random() < 0.5:
            img = np.sin(img / rng.uniform(2, 30))
    elif kind == 4:
        n = int(rng.integers(2, 16))
        yy, xx = np.mgrid[0:H, 0:W]
        img = ((xx // max(1, W // n) + yy // max(1, H // n)) % 2).astype(float)
    elif kind == 5:
        img = np.zeros((H, W))
        for _ in range(int(rng.integers(1, 8))):
            c = (int(rng.integers(0, W)), int(rng.integers(0, H)))
            ax = (int(rng.integers(5, W // 2)), int(rng.integers(5, H // 2)))
            cv2.ellipse(img, c, ax, float(rng.uniform(0, 180)), 0, 360, float(rng.uniform(0.2, 1)), -1)
        img = cv2.GaussianBlur(img, (0, 0), float(rng.uniform(0.5, 4)))
    elif kind == 6:   # a warm featureless blob (a head-sized thermal object) on a cool, structured background
        img = cv2.GaussianBlur(rng.normal(0, 0.05, (H, W)), (0, 0), 8) + 0.2
        c = (int(rng.uniform(0.3, 0.7) * W), int(rng.uniform(0.3, 0.7) * H))
        ax = (int(rng.uniform(0.1, 0.3) * W), int(rng.uniform(0.15, 0.4) * H))
        blob = np.zeros((H, W))
        cv2.ellipse(blob, c, ax, float(rng.uniform(-20, 20)), 0, 360, 1.0, -1)
        img = img + 0.7 * cv2.GaussianBlur(blob, (0, 0), float(rng.uniform(2, 12)))
    else:             # stripes / text-like bars
        img = np.zeros((H, W))
        for _ in range(int(rng.integers(3, 20))):
            y0, x0 = int(rng.integers(0, H)), int(rng.integers(0, W))
            img[y0:y0 + int(rng.integers(2, 12)), x0:x0 + int(rng.integers(10, W))] = rng.uniform(0.3, 1)
    img = (img - img.min()) / max(float(img.max() - img.min()), 1e-6)
    mode = int(rng.integers(0, 3))
    if mode == 0:
        return (img * 255).astype(np.uint8)
    if mode == 1:
        tint = rng.uniform(0.3, 1.0, 3)
        return np.clip(img[..., None] * tint * 255 + rng.normal(0, 3, (H, W, 3)), 0, 255).astype(np.uint8)
    return (20000 + img * rng.uniform(500, 8000)).astype(np.uint16)


def build_quality_set(predictor, samples: Sequence, config: Optional[QualitySetConfig] = None,
                      progress: Optional[Callable[[int, int], None]] = None) -> dict:
    """Run the pipeline on ``samples`` (annotated :class:`~dmsl_core.data.sample.Sample`) from boxes
    of every kind (module docstring) and return the quality network's inputs with their labels:
    ``img`` (N, 2, Q, Q), ``vec`` (N, N_VEC), ``nme`` (N,), ``kind`` (N,) index into :data:`KINDS`,
    ``spectrum`` (N,) str, ``subject`` (N,) str."""
    cfg = config or QualitySetConfig()
    rng = np.random.default_rng(cfg.seed)
    jobs: list[tuple] = []   # (image, box, refine, gt or None, kind, spectrum, subject)
    for i, s in enumerate(samples):
        img = s.load()
        gt = np.asarray(s.landmarks, float)
        face = boundary_from_points(gt)
        for k in range(cfg.per_image):
            kind = ("track", "detect", "wild")[k % 3]
            jobs.append((img, _jitter(face, rng, kind), kind != "track", gt, kind, s.spectrum, s.subject))
        if cfg.background_every and i % cfg.background_every == 0:
            b = _background_box(img.shape, face, rng)
            if b is not None:
                jobs.append((img, b, bool(rng.random() < 0.7), None, "background", s.spectrum, s.subject))
        if cfg.texture_every and i % cfg.texture_every == 0:
            timg = texture_image(rng, (int(rng.integers(96, 320)), int(rng.integers(96, 400))))
            H, W = timg.shape[:2]
            side = rng.uniform(0.2, 0.9) * min(H, W)
            b = np.array([rng.uniform(0, W - side), rng.uniform(0, H - side), side, side * rng.uniform(0.9, 1.25)])
            jobs.append((timg, b, bool(rng.random() < 0.7), None, "texture", s.spectrum, s.subject))
    imgs, vecs, nmes, kinds, specs, subs = [], [], [], [], [], []
    done = 0
    for refine in (False, True):
        sel = [j for j in jobs if j[2] == refine]
        for a in range(0, len(sel), cfg.batch):
            chunk = sel[a:a + cfg.batch]
            preds = predictor.predict([j[0] for j in chunk], [j[1] for j in chunk], refine=refine,
                                      keep_quality_inputs=True)
            for j, p in zip(chunk, preds):
                if j[3] is None:
                    e = NO_FACE_NME
                else:
                    e = nme_per_image(p.landmarks, j[3])
                    e = NO_FACE_NME if not math.isfinite(e) else min(e, NO_FACE_NME)
                imgs.append(p.quality_inputs[0])
                vecs.append(p.quality_inputs[1])
                nmes.append(e)
                kinds.append(KINDS.index(j[4]))
                specs.append(j[5])
                subs.append(j[6])
            done += len(chunk)
            if progress:
                progress(done, len(jobs))
    return {"img": np.stack(imgs), "vec": np.stack(vecs), "nme": np.asarray(nmes, np.float64),
            "kind": np.asarray(kinds, np.int64), "spectrum": np.asarray(specs), "subject": np.asarray(subs)}


def train_quality(train: dict, epochs: int = 30, lr: float = 1e-3, batch: int = 256, seed: int = 0,
                  progress: Optional[Callable[[int, float], None]] = None) -> QualityNet:
    """Fit a :class:`QualityNet` to a set from :func:`build_quality_set`: binary cross-entropy on
    success (NME < 0.08) plus a smooth-L1 on log NME (weight 0.5); Adam, cosine learning rate,
    horizontal-flip augmentation of the image (the vector's x coordinates are mirrored with it)."""
    import torch
    from torch import nn
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = QualityNet()
    img = torch.from_numpy(train["img"].astype(np.float32))
    vec = torch.from_numpy(train["vec"].astype(np.float32))
    nme = torch.from_numpy(train["nme"].astype(np.float32))
    y = (nme < SUCCESS_NME).float()
    t = torch.log(nme.clamp(0.005, NO_FACE_NME))
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=1e-4)
    steps = epochs * math.ceil(len(y) / batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(1, steps), pct_start=0.1)
    bce, sl1 = nn.BCEWithLogitsLoss(), nn.SmoothL1Loss()
    from .landmarks import MIRROR_PERM
    perm = torch.as_tensor(np.array(MIRROR_PERM, dtype=np.int64))
    for ep in range(epochs):
        net.train()
        order = torch.randperm(len(y), generator=g)
        total = 0.0
        for a in range(0, len(y), batch):
            idx = order[a:a + batch]
            xi, xv = img[idx].clone(), vec[idx].clone()
            flip = torch.rand(len(idx), generator=g) < 0.5
            if flip.any():
                xi[flip] = xi[flip].flip(-1)
                pts = xv[flip, :136].reshape(-1, 68, 2)
                pts = pts[:, perm]
                pts[..., 0] = -pts[..., 0]
                xv[flip, :136] = pts.reshape(-1, 136)
                xv[flip, 136] = 1.0 - xv[flip, 136]
            out = net(xi, xv)
            loss = bce(out[:, 0], y[idx]) + 0.5 * sl1(out[:, 1], t[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        if progress:
            progress(ep + 1, total / len(y))
    return net.eval()


def auroc(score: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve of ``score`` separating ``positive`` (True) from the rest (ties half)."""
    score, positive = np.asarray(score, float), np.asarray(positive, bool)
    n1, n0 = int(positive.sum()), int((~positive).sum())
    if n1 == 0 or n0 == 0:
        return float("nan")
    from scipy.stats import rankdata
    r = rankdata(score)
    return float((r[positive].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def choose_threshold(conf: np.ndarray, nme: np.ndarray, keep: float = 0.99) -> float:
    """The highest confidence threshold that still keeps ``keep`` of the successful faces (NME < 0.08)
    of a validation set."""
    ok = np.asarray(nme) < SUCCESS_NME
    if not ok.any():
        return 0.5
    return float(np.quantile(np.asarray(conf)[ok], 1.0 - keep))


def quality_report(conf: np.ndarray, nme: np.ndarray, kind: np.ndarray, threshold: float,
                   spectrum: Optional[np.ndarray] = None) -> dict:
    """What a threshold does on a measured set: AUROC of success vs failure, the share of successes
    kept and of failures rejected (overall, per kind of box and per spectrum)."""
    conf, nme, kind = np.asarray(conf, float), np.asarray(nme, float), np.asarray(kind)
    ok = nme < SUCCESS_NME

    def part(m: np.ndarray) -> dict:
        n_ok, n_bad = int((ok & m).sum()), int((~ok & m).sum())
        return {"n": int(m.sum()), "successes": n_ok, "failures": n_bad,
                "successes_kept": round(float((conf[ok & m] >= threshold).mean()), 4) if n_ok else None,
                "failures_rejected": round(float((conf[~ok & m] < threshold).mean()), 4) if n_bad else None,
                "auroc": None if not (n_ok and n_bad) else round(auroc(conf[m], ok[m]), 4)}
    rep = {"threshold": round(float(threshold), 4), "success_nme": SUCCESS_NME, "all": part(np.ones(len(nme), bool))}
    rep["by_kind"] = {k: part(kind == i) for i, k in enumerate(KINDS) if (kind == i).any()}
    if spectrum is not None:
        spectrum = np.asarray(spectrum)
        rep["by_spectrum"] = {s: part(spectrum == s) for s in sorted(set(spectrum.tolist()))}
    return rep



#: samples per chunk of :func:`build_quality_set_parallel` (each chunk has its own seed, so the set
#: does not depend on the number of worker processes)
CHUNK = 256


def _build_chunk(args) -> dict:
    spec, samples, cfg, threads = args
    import torch
    torch.set_num_threads(threads)
    from .pipeline import Predictor
    pred = Predictor.from_weights(spec, device="cpu")
    pred.quality = None       # the set is made from M_l's plain points
    return build_quality_set(pred, samples, cfg)


def merge_sets(parts: Sequence[dict]) -> dict:
    parts = [p for p in parts if len(p.get("nme", ()))]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]} if parts else {}


def build_quality_set_parallel(weights, samples: Sequence, config: Optional[QualitySetConfig] = None,
                               jobs: int = 1, progress: Optional[Callable[[int, int], None]] = None) -> dict:
    """:func:`build_quality_set` for the model ``weights`` (a weights spec) in chunks of
    :data:`CHUNK` samples, each with seed ``config.seed * 1000 + chunk``, on ``jobs`` processes of
    one thread each (the same set for any ``jobs``)."""
    import dataclasses
    cfg = config or QualitySetConfig()
    chunks = [list(samples[a:a + CHUNK]) for a in range(0, len(samples), CHUNK)]
    args = [(weights, c, dataclasses.replace(cfg, seed=cfg.seed * 1000 + i), 1) for i, c in enumerate(chunks)]
    parts: list[dict] = []
    if jobs <= 1:
        for i, a in enumerate(args):
            parts.append(_build_chunk(a))
            if progress:
                progress(i + 1, len(args))
    else:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor
        with ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn")) as ex:
            for i, part in enumerate(ex.map(_build_chunk, args)):
                parts.append(part)
                if progress:
                    progress(i + 1, len(args))
    return merge_sets(parts)
