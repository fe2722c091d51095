"""Visible face photo + 68 landmarks -> a plausible long-wave thermal image on the same pixel grid.

Used to make thermal training data for the landmark models from visible faces with iBUG 68-point
annotations (300-W), in the spirit of Mallat & Dugelay (IJCB 2020) and T-FAKE (CVPR 2025), but
without a learned translator: the temperature map is built from the face's own geometry.

* Regions from the landmarks: the face polygon is the jaw (points 0-16) closed above the brows by
  a half ellipse whose height is a fraction of the chin-to-brow distance (the forehead). Inside it
  a smooth sum of terms in face coordinates: inner canthi hottest (35.5-37 C), forehead and temples
  34-35, cheeks 33-34, lips ~34, open mouth warm, nose tip cooler and variable (28-33), a fall-off
  towards the silhouette (grazing emission angles).
* Skin outside the landmark face (neck, ears, hands) from a skin-colour model in YCrCb fitted to
  the face's own cheeks, warmed moderately (ears cool, neck warm); non-skin pixels in the head zone
  are hair, below the chin clothing, inside the lower face beard -- all near ambient, a little
  warmer (they sit on a warm body). Background at a per-image ambient (18-28 C) with smooth
  random structure: low-frequency blobs, a gradient, a few warmer (sometimes hot) objects.
* Glasses are opaque to LWIR; they are not detected automatically (a detector on photos is not
  reliable enough) -- pass ``ThermalOptions(glasses=True)`` to paint the lenses cold.
* Only the visible image's LOW frequencies enter (skin probability and shading are computed on a
  down-sampled, blurred image); hair strands, clothing patterns and print do not leak through.
* Sensor model on a coarse sensor grid (the face spans what it would on a 320x256..640x512 camera):
  optics blur, NETD noise, fixed-pattern noise, column/row stripes, vignetting; then up-sampled to
  the input grid. The landmarks are unchanged.

Deterministic: the same image, points, seed and options give byte-identical output.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import cv2
import numpy as np

from .atomic import atomic_path
from .data.folder import MANIFEST, DatasetError, PairRecord, read_manifest, write_manifest
from .data.imageio import ImageReadError, read_image, write_image
from .data.pts import AnnotationError, read_pts

PALETTES = ("white-hot", "black-hot")


@dataclass(frozen=True)
class ThermalOptions:
    """Knobs of the converter (ranges are sampled per image from the seed)."""

    ambient_c: tuple[float, float] = (18.0, 28.0)
    face_c: tuple[float, float] = (33.3, 34.3)        # cheek level (the face's base temperature)
    canthus_c: tuple[float, float] = (35.5, 37.0)
    nose_drop_c: tuple[float, float] = (0.8, 5.0)     # how much cooler the nose tip is than the cheeks
    ear_c: tuple[float, float] = (29.0, 33.0)
    forehead_height: tuple[float, float] = (0.50, 0.65)  # forehead above the brows / chin-to-brow distance
    sensor_face_px: tuple[float, float] = (90.0, 190.0)  # face width on the simulated sensor, pixels
    netd_k: tuple[float, float] = (0.03, 0.08)
    fpn_k: tuple[float, float] = (0.02, 0.06)
    stripe_k: tuple[float, float] = (0.02, 0.08)
    vignette_k: tuple[float, float] = (0.2, 0.8)
    psf_px: tuple[float, float] = (0.6, 1.1)          # optics blur sigma on the sensor grid
    shading_k: tuple[float, float] = (0.4, 1.1)       # low-frequency visible shading -> K on skin
    glasses: bool = False                              # paint opaque (cold) lenses over the eyes


@dataclass
class ThermalFace:
    celsius: np.ndarray            # HxW float32 degrees C, the input's pixel grid
    points: np.ndarray             # (68, 2) the input points (unchanged)
    ambient_c: float
    meta: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------- encodings
def to_u16_ck(celsius: np.ndarray) -> np.ndarray:
    """16-bit centi-kelvin (the manifest's ``u16_ck``: C = raw / 100 - 273.15)."""
    return np.round((np.asarray(celsius, np.float64) + 273.15) * 100.0).clip(0, 65535).astype(np.uint16)


def to_u8(celsius: np.ndarray, palette: str = "white-hot", *, low_pct: float = 1.0,
          high_pct: float = 99.5, min_span_c: float = 2.0) -> np.ndarray:
    """8-bit display with an automatic gain like a camera's AGC (percentile stretch of the frame)."""
    if palette not in PALETTES:
        raise ValueError(f"palette must be one of {PALETTES}, got {palette!r}")
    c = np.asarray(celsius, np.float32)
    sample = c[:: max(1, c.shape[0] // 200), :: max(1, c.shape[1] // 200)]
    lo, hi = (float(v) for v in np.percentile(sample, [low_pct, high_pct]))
    if hi - lo < min_span_c:
        mid = 0.5 * (hi + lo)
        lo, hi = mid - min_span_c / 2, mid + min_span_c / 2
    out = np.clip((c - lo) * (255.0 / (hi - lo)) + 0.5, 0, 255).astype(np.uint8)
    return 255 - out if palette == "black-hot" else out


# ----------------------------------------------------------------------------- helpers
def _blur(a: np.ndarray, sigma: float) -> np.ndarray:
    if sigma <= 0.05:
        return a
    return cv2.GaussianBlur(a, (0, 0), float(sigma), borderType=cv2.BORDER_REFLECT)


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cell: float) -> np.ndarray:
    """Zero-mean unit-ish smooth random field with features about ``cell`` pixels wide."""
    gh, gw = max(2, int(np.ceil(h / cell)) + 2), max(2, int(np.ceil(w / cell)) + 2)
    g = rng.standard_normal((gh, gw)).astype(np.float32)
    return cv2.resize(g, (w, h), interpolation=cv2.INTER_CUBIC)


def _fill(shape: tuple[int, int], polys: list[np.ndarray]) -> np.ndarray:
    m = np.zeros(shape, np.uint8)
    pp = [np.round(np.asarray(p, np.float64) * 16).astype(np.int32).reshape(-1, 1, 2) for p in polys if len(p) >= 3]
    if pp:
        cv2.fillPoly(m, pp, 255, cv2.LINE_AA, 4)
    return m.astype(np.float32) / 255.0


def _gauss(X: np.ndarray, Y: np.ndarray, c: np.ndarray, sx: float, sy: Optional[float] = None) -> np.ndarray:
    sy = sx if sy is None else sy
    cx, cy, sx, sy = float(c[0]), float(c[1]), float(sx), float(sy)
    return np.exp(np.float32(-0.5) * (((X - cx) / sx) ** 2 + ((Y - cy) / sy) ** 2)).astype(np.float32, copy=False)


def _smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    t = np.asarray(x, np.float32) - np.float32(e0)
    t *= np.float32(1.0 / (e1 - e0))
    np.clip(t, 0.0, 1.0, out=t)
    return t * t * (np.float32(3.0) - np.float32(2.0) * t)


def _u(rng: np.random.Generator, r: tuple[float, float]) -> float:
    return float(rng.uniform(r[0], r[1]))


def _nanfill(points: np.ndarray) -> np.ndarray:
    """Points with NaN mouth points (54-point files) replaced by a plausible guess."""
    p = np.asarray(points, np.float64).copy()
    if p.shape != (68, 2):
        raise ValueError(f"expected 68 landmarks, got {p.shape[0] if p.ndim == 2 else p.shape}")
    bad = ~np.isfinite(p).all(axis=1)
    need = [0, 8, 16, 30, 36, 39, 42, 45]
    if bad[need].any():
        raise ValueError("landmarks lack the jaw ends, chin, nose tip or eye corners "
                         f"(points {[i for i in need if bad[i]]} missing)")
    if bad.any():
        # mouth: a small ellipse between the nose tip and the chin
        c = p[30] + 0.45 * (p[8] - p[30])
        w = 0.2 * np.linalg.norm(p[16] - p[0])
        ang = np.linspace(np.pi, -np.pi, 12, endpoint=False)
        outer = c + np.stack([w * np.cos(ang), 0.35 * w * np.sin(ang)], 1)
        ang8 = np.linspace(np.pi, -np.pi, 8, endpoint=False)
        inner = c + np.stack([0.7 * w * np.cos(ang8), np.zeros(8)], 1)
        guess = np.full((68, 2), np.nan)
        guess[48:60], guess[60:68] = outer, inner
        for i in np.flatnonzero(bad):
            if np.isfinite(guess[i]).all():
                p[i] = guess[i]
            else:  # brows/eyes/nose interior missing: a neighbour is close enough for region maps
                good = np.flatnonzero(~bad)
                p[i] = p[good[np.argmin(np.abs(good - i))]]
    return p


def _background_likeness(ycc: np.ndarray, skin_p: np.ndarray) -> np.ndarray:
    """0..1: how much a pixel's colour resembles the picture's top and side borders (the scene)."""
    h, w = ycc.shape[:2]
    b = max(2, int(0.04 * min(h, w)))
    ring = np.zeros((h, w), bool)
    ring[:b, :] = True
    ring[: int(0.6 * h), :b] = True
    ring[: int(0.6 * h), -b:] = True
    ring &= skin_p < 0.3
    if ring.sum() < 20:
        return np.zeros((h, w), np.float32)
    q = np.clip(ycc / 16.0, 0, 15.999).astype(np.int32)          # 16 bins per channel
    idx = (q[..., 0] * 16 + q[..., 1]) * 16 + q[..., 2]
    hist = np.bincount(idx[ring], minlength=16 ** 3).astype(np.float32).reshape(16, 16, 16)
    for ax in range(3):                                          # spread a bin to its neighbours
        hist = hist + 0.5 * (np.roll(hist, 1, ax) + np.roll(hist, -1, ax))
    dens = hist.ravel()[idx] / float(hist.sum())
    return _blur(_smoothstep(0.001, 0.008, dens), 1.0)


def _highlight_model(ycc: np.ndarray, samples: np.ndarray) -> np.ndarray:
    """0..1: bright pixels whose chroma lies between the cheeks' and neutral (specular skin)."""
    cr, cb, y = ycc[..., 1] - 128.0, ycc[..., 2] - 128.0, ycc[..., 0]
    sel = samples if samples.sum() >= 3 else np.ones_like(samples)
    v0, v1, my = float(np.median(cr[sel])), float(np.median(cb[sel])), float(np.median(y[sel]))
    n2 = v0 * v0 + v1 * v1
    if n2 < 9.0:
        return np.zeros(y.shape, np.float32)
    t = (cr * v0 + cb * v1) / n2
    perp = np.abs(cr * v1 - cb * v0) / np.sqrt(n2)
    return (_smoothstep(1.0 * my, 1.2 * my, y) * _smoothstep(0.0, 0.3, t) * _smoothstep(1.3, 0.9, t)
            * np.exp(-0.5 * (perp / 5.0) ** 2)).astype(np.float32)


def _skin_model(ycc: np.ndarray, samples: np.ndarray) -> tuple[np.ndarray, bool]:
    """Skin probability (0..1) from the face's own cheek colour; ``samples`` is a boolean mask."""
    cr, cb, y = ycc[..., 1], ycc[..., 2], ycc[..., 0]
    grey = float(np.std(cr)) < 1.5 and float(np.std(cb)) < 1.5
    sel = samples & (y > 25)
    if sel.sum() < 10:
        sel = samples
    if sel.sum() < 3:
        sel = np.ones_like(samples)
    if grey:  # no colour: luminance similarity only
        my = float(np.median(y[sel]))
        sy = max(12.0, 1.4826 * float(np.median(np.abs(y[sel] - my))) * 2.0)
        return np.exp(-0.5 * ((y - my) / sy) ** 2).astype(np.float32), True
    mcr, mcb = float(np.median(cr[sel])), float(np.median(cb[sel]))
    scr = max(3.5, 1.4826 * float(np.median(np.abs(cr[sel] - mcr))) * 1.8)
    scb = max(3.5, 1.4826 * float(np.median(np.abs(cb[sel] - mcb))) * 1.8)
    d2 = ((cr - mcr) / scr) ** 2 + ((cb - mcb) / scb) ** 2
    my = float(np.median(y[sel]))
    p = np.exp(-0.5 * d2) * _smoothstep(0.15 * my, 0.4 * my, y)   # deep shadow is not skin evidence
    # very dark or blown-out pixels carry no reliable chroma: shrink towards "not skin"
    p *= _smoothstep(8.0, 32.0, y)
    return p.astype(np.float32), False


# ----------------------------------------------------------------------------- the converter
def thermalize_face(image: np.ndarray, points: np.ndarray, *, seed: int = 0,
                    options: Optional[ThermalOptions] = None) -> ThermalFace:
    """A thermal version (degrees C, same HxW grid) of a visible face image with its 68 points."""
    o = options or ThermalOptions()
    img = np.asarray(image)
    if img.ndim == 3 and img.shape[2] >= 3:
        rgb = img[..., :3]
    elif img.ndim == 2 or (img.ndim == 3 and img.shape[2] == 1):
        g = img.reshape(img.shape[0], img.shape[1])
        rgb = np.repeat(g[..., None], 3, axis=2)
    else:
        raise ValueError(f"expected an HxW or HxWx3 image, got shape {img.shape}")
    if rgb.dtype != np.uint8:
        f = rgb.astype(np.float32)
        hi = float(np.percentile(f, 99.5)) or 1.0
        rgb = np.clip(f * (255.0 / hi), 0, 255).astype(np.uint8)
    H, W = rgb.shape[:2]
    if H < 16 or W < 16:
        raise ValueError(f"image too small ({W}x{H})")
    pts_in = np.asarray(points, np.float64)
    p = _nanfill(pts_in)
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 0x7E4A1])

    # ---- face frame in input pixels
    eye_l, eye_r = p[36:42].mean(0), p[42:48].mean(0)
    iod = float(np.linalg.norm(eye_r - eye_l))
    face_w = max(float(np.linalg.norm(p[16] - p[0])), 1.6 * iod, 8.0)
    ex = (eye_r - eye_l) / max(iod, 1e-6)
    up = np.array([ex[1], -ex[0]])
    eyes_mid = 0.5 * (eye_l + eye_r)
    if np.dot(eyes_mid - p[8], up) < 0:
        up = -up

    # ---- sensor grid: the face spans sensor_face_px pixels (never finer than the input)
    f = min(1.0, _u(rng, o.sensor_face_px) / face_w)
    ws, hs = max(16, int(round(W * f))), max(16, int(round(H * f)))
    fx, fy = ws / W, hs / H
    q = np.empty_like(p)
    q[:, 0] = (p[:, 0] + 0.5) * fx - 0.5
    q[:, 1] = (p[:, 1] + 0.5) * fy - 0.5
    s = 0.5 * (fx + fy)
    fw = face_w * s                         # face width in sensor pixels
    small = cv2.resize(rgb, (ws, hs), interpolation=cv2.INTER_AREA) if f < 1.0 else rgb.copy()
    small = cv2.GaussianBlur(small, (0, 0), max(0.8, 0.012 * fw))
    ycc = cv2.cvtColor(small, cv2.COLOR_RGB2YCrCb).astype(np.float32)
    lum = ycc[..., 0]

    Y, X = np.mgrid[0:hs, 0:ws].astype(np.float32)
    eyes_m = 0.5 * (q[36:42].mean(0) + q[42:48].mean(0))
    brow_m = q[17:27].mean(0)
    chin = q[8]
    cb = max(float(np.dot(brow_m - chin, up)), 0.5 * fw)       # chin-to-brow height
    # face coordinates: U across (1 = half face width), V up (0 at the eyes, 1 = one chin-to-brow)
    dX, dY = X - float(eyes_m[0]), Y - float(eyes_m[1])
    U = ((dX * float(ex[0]) + dY * float(ex[1])) / float(0.5 * fw)).astype(np.float32)
    V = ((dX * float(up[0]) + dY * float(up[1])) / float(cb)).astype(np.float32)

    def fv(pt: np.ndarray) -> tuple[float, float]:
        d = pt - eyes_m
        return float(np.dot(d, ex) / (0.5 * fw)), float(np.dot(d, up) / cb)

    # ---- face polygon: jaw + a half ellipse above the brows
    fh = _u(rng, o.forehead_height)
    m = 0.5 * (q[0] + q[16])
    a_ax = 0.5 * float(np.linalg.norm(q[16] - q[0]))
    top = brow_m + up * fh * cb
    b_ax = max(float(np.dot(top - m, up)), 0.3 * cb)
    ex_f = (q[16] - q[0]) / max(2 * a_ax, 1e-6)
    up_f = np.array([ex_f[1], -ex_f[0]])
    if np.dot(up_f, up) < 0:
        up_f = -up_f
    t = np.linspace(0.0, np.pi, 25)
    arc = m + np.outer(np.cos(t), ex_f * a_ax) + np.outer(np.sin(t), up_f * b_ax)
    face_poly = np.concatenate([q[0:17], arc[1:-1]])
    sig_edge = max(0.7, 0.015 * fw)
    face_fill = _fill((hs, ws), [face_poly])
    # a sharp outline along the jaw, a soft one at the hairline (estimated, and hair thins out there)
    top_w = _smoothstep(0.0, 0.5, V)
    face_m = _blur(face_fill, sig_edge) * (1 - top_w) + _blur(face_fill, 3.0 * sig_edge) * top_w
    lower_face = _fill((hs, ws), [q[0:17]])               # below the jaw line's chord

    # ---- skin model from the cheeks and the nose bridge
    samp = np.zeros((hs, ws), bool)
    r = max(1.5, 0.08 * fw)
    for c in (0.5 * (q[2] + q[31]), 0.5 * (q[14] + q[35]), 0.5 * (q[29] + q[30]), q[28]):
        samp |= (X - c[0]) ** 2 + (Y - c[1]) ** 2 <= r * r
    skin_p, grey = _skin_model(ycc, samp)
    skin = _blur(_smoothstep(0.12, 0.5, skin_p), max(0.7, 0.015 * fw))
    bg_like = _background_likeness(ycc, skin_p)

    # ---- per-image temperatures
    ta = _u(rng, o.ambient_c)
    t0 = _u(rng, o.face_c) + 0.05 * (ta - 23.0)              # cheek level
    t_fore = t0 + rng.uniform(0.5, 1.1)
    t_neck = t0 + rng.uniform(0.3, 1.0)
    t_ear = _u(rng, o.ear_c)
    t_hair = ta + rng.uniform(0.3, 0.6) * (t0 - ta)
    t_cloth = ta + rng.uniform(0.2, 0.55) * (t0 - ta)
    t_beard = ta + rng.uniform(0.55, 0.75) * (t0 - ta)

    # ---- background: ambient with structure
    bg = np.full((hs, ws), ta, np.float32)
    bg += np.float32(rng.uniform(0.3, 1.0)) * _smooth_noise(rng, hs, ws, max(hs, ws) / rng.uniform(2.0, 5.0))
    gx, gy = rng.normal(0, 0.8, 2)
    bg += (np.float32(gx) * (X / ws - 0.5) + np.float32(gy - 0.5) * (Y / hs - 0.5)).astype(np.float32)
    objs = np.zeros((hs, ws), np.float32)
    for _ in range(int(rng.integers(1, 5))):
        cx, cy = rng.uniform(0, ws), rng.uniform(0, hs)
        if rng.random() > 0.2:   # furniture, walls, windows: close to ambient
            ax_, ay_ = rng.uniform(0.05, 0.4) * ws, rng.uniform(0.05, 0.4) * hs
            dt = rng.uniform(-0.8, 2.0)
        else:                    # a small hot object: lamp, monitor, radiator
            ax_, ay_ = rng.uniform(0.03, 0.12) * ws, rng.uniform(0.03, 0.12) * hs
            dt = rng.uniform(3.0, 9.0)
        mk = np.zeros((hs, ws), np.uint8)
        if rng.random() < 0.6:
            ang = rng.uniform(-20, 20)
            box = cv2.boxPoints(((cx, cy), (2 * ax_, 2 * ay_), ang))
            cv2.fillPoly(mk, [np.round(box).astype(np.int32)], 1)
        else:
            cv2.ellipse(mk, (int(cx), int(cy)), (int(ax_), int(ay_)), rng.uniform(0, 180), 0, 360, 1, -1)
        objs += np.float32(dt) * mk
    bg += _blur(objs, max(1.0, rng.uniform(0.01, 0.03) * max(hs, ws)))
    # a trace of the scene's large-scale layout (very blurred luminance; no edges survive)
    lum_lf = _blur(lum, max(2.0, 0.12 * fw))
    bg += np.float32(rng.uniform(0.0, 1.2)) * (lum_lf / max(float(lum_lf.mean()), 1.0) - 1.0)

    T = bg
    # ---- body (clothing) below the chin, neck
    below = _smoothstep(-0.05, 0.15, -(V - fv(chin)[1]) * cb / fw)   # below the chin
    width_at = 0.9 + 1.2 * np.clip(-(V - fv(chin)[1]) * cb / fw, 0, 2.0)
    body = below * _smoothstep(-0.25, 0.0, -(np.abs(U) - width_at * 1.1) / 2)
    body = _blur(body, sig_edge * 2)
    neck = below * _smoothstep(-0.15, 0.0, -(np.abs(U) - 0.65) / 2) * _smoothstep(-1.2, -0.4, V - fv(chin)[1] + 0.8)
    neck = _blur(neck, sig_edge * 2)
    # directly under the chin is nearly always neck (often shadowed: weak skin evidence)
    skin = np.maximum(skin, 0.6 * neck * _smoothstep(-0.05, 0.25, -(V - fv(chin)[1]) * cb / fw)
                      * _smoothstep(0.75, 0.25, -(V - fv(chin)[1]) * cb / fw))
    cloth_t = t_cloth + 0.6 * _smooth_noise(rng, hs, ws, 0.5 * fw)
    T = T + (cloth_t - T) * (body * (1 - skin))

    # ---- hair zone: an ellipse around the head
    # (non-skin pixels there that do not look like the picture's border are hair or headwear)
    v_m, v_top0 = fv(m)[1], fv(top)[1]
    hv = (v_top0 - v_m) * 1.0 + 0.3 * fw / cb              # vertical half axis above m, in V units
    hd = (U / 1.25) ** 2 + (np.maximum(V - v_m, 0) / hv) ** 2
    head = _smoothstep(1.1, 0.9, hd) * _smoothstep(fv(q[8])[1] + 0.2, fv(q[8])[1] + 0.6, V)
    head = head * (1 - 0.85 * bg_like)
    scalp = _blur(face_fill, 0.18 * fw)                     # hair is warmer close to the scalp
    hair_t = t_hair + 0.4 * _smooth_noise(rng, hs, ws, 0.3 * fw) + (t0 - t_hair) * 0.5 * scalp
    skin_soft = _blur(skin, 0.03 * fw)                       # hair/skin boundaries: no strand edges
    T = T + (hair_t - T) * (head * (1 - skin_soft))

    # ---- skin outside the landmark face: ears cool, neck warm, other skin moderate
    dist = np.sqrt(U ** 2 + (V * cb / (0.5 * fw)) ** 2)
    near = _smoothstep(5.0, 2.5, dist)
    ear_zone = np.zeros((hs, ws), np.float32)
    for k in (0, 16):
        ec = q[k] + (q[k] - q[27]) * 0.12 + up * 0.1 * cb
        ear_zone = np.maximum(ear_zone, _gauss(X, Y, ec, 0.2 * fw, 0.35 * fw))
    other_t = t0 - rng.uniform(0.5, 2.0)
    sk_t = other_t + (t_ear - other_t) * ear_zone
    sk_t = sk_t + (t_neck - sk_t) * neck
    # skin-coloured pixels outside the face: only their low frequencies (curly skin-coloured hair, bark
    # or wood must not print their texture), less trusted in the hair zone, fading with distance
    skin_lf = _blur(skin, 0.045 * fw)
    trust = (0.35 + 0.65 * near) * (1 - 0.5 * head * (1 - ear_zone))
    w_sk = np.clip(np.maximum(skin_lf, neck * skin) * trust, 0, 1) * (1 - face_m)
    T = T + (sk_t - T) * w_sk

    # ---- the face itself
    uu = U
    ff = np.zeros((hs, ws), np.float32) + np.float32(t0)
    _, v_brow = fv(brow_m)
    ff += (t_fore - t0) * _smoothstep(-0.05, 0.35, V)                         # forehead and temples
    # periorbital warmth
    eye_w = max(1.0, 0.5 * (np.linalg.norm(q[39] - q[36]) + np.linalg.norm(q[45] - q[42])))
    for a_, b_ in ((36, 39), (42, 45)):
        c = q[[a_, b_]].mean(0)
        ff += np.float32(rng.uniform(0.4, 0.9)) * _gauss(X, Y, c, 0.9 * eye_w, 0.6 * eye_w)
    # temples (superficial temporal arteries) warm; a subject's own smooth pattern of vessels
    for k, j in ((17, 0), (26, 16)):
        ff += np.float32(rng.uniform(0.3, 0.8)) * _gauss(X, Y, 0.55 * q[k] + 0.45 * q[j], 0.09 * fw)
    ff += np.float32(rng.uniform(0.15, 0.4)) * _smooth_noise(rng, hs, ws, 0.18 * fw)
    # cheeks slightly cooler, chin cooler
    for c in (0.5 * (q[3] + q[31]) , 0.5 * (q[13] + q[35])):
        ff -= np.float32(rng.uniform(0.1, 0.6)) * _gauss(X, Y, c, 0.15 * fw)
    ff -= np.float32(rng.uniform(0.1, 0.6)) * _gauss(X, Y, q[8] + (q[57] - q[8]) * 0.4, 0.14 * fw)
    # nose: cooler towards the tip (variable)
    nose_drop = _u(rng, o.nose_drop_c)
    for tt, amp, sg in ((0.45, 0.12, 0.06), (0.7, 0.3, 0.065), (0.88, 0.55, 0.07), (1.0, 0.75, 0.075)):
        ff -= np.float32(nose_drop * amp) * _gauss(X, Y, q[27] + tt * (q[30] - q[27]), sg * fw)
    for k in (31, 35):                                    # the alae
        ff -= np.float32(nose_drop * 0.3) * _gauss(X, Y, 0.5 * (q[k] + q[30]), 0.05 * fw)
    # beside the nose, under the inner eye corners: warm (angular vessels)
    for a_, b_ in ((39, 31), (42, 35)):
        ff += np.float32(rng.uniform(0.2, 0.6)) * _gauss(X, Y, 0.5 * (q[a_] + q[b_]), 0.07 * fw)
    # the open eye (cornea, lids) is cooler than the skin around it
    eyes = _blur(_fill((hs, ws), [q[36:42], q[42:48]]), 0.6 * sig_edge)
    ff -= np.float32(rng.uniform(0.5, 1.3)) * eyes
    # lips and mouth
    lips = _blur(_fill((hs, ws), [q[48:60]]), sig_edge)
    ff += np.float32(rng.uniform(-0.2, 0.4)) * lips
    inner = _fill((hs, ws), [q[60:68]])
    if inner.sum() > 0.002 * fw * fw:          # open mouth: warm inside
        ff += (t0 + rng.uniform(1.2, 2.0) - ff) * _blur(inner, 0.6 * sig_edge)
    else:                                      # closed: the line where the lips meet is a little warmer
        line = np.zeros((hs, ws), np.uint8)
        cv2.polylines(line, [np.round(q[[48, 60, 61, 62, 63, 64, 54]] * 16).astype(np.int32).reshape(-1, 1, 2)],
                      False, 255, max(1, int(round(0.012 * fw))), cv2.LINE_AA, 4)
        ff += np.float32(rng.uniform(0.2, 0.6)) * _blur(line.astype(np.float32) / 255.0, 0.5 * sig_edge)
    # grazing-angle fall-off toward the silhouette (sides and chin of an ellipsoid)
    v_top, v_chin = fv(top)[1], fv(chin)[1]
    vn = (V - 0.5 * (v_top + v_chin)) / (0.5 * (v_top - v_chin))
    graze = 1 - np.sqrt(np.clip(1 - np.clip(uu ** 2 + 0.6 * vn ** 2, 0, 1), 0, 1))
    ff -= np.float32(rng.uniform(1.0, 2.2)) * graze.astype(np.float32) ** 1.5
    # eyebrows: a little cooler (hair)
    ff -= np.float32(rng.uniform(0.2, 0.6)) * _blur(_fill((hs, ws), [
        np.concatenate([q[17:22] + up * 0.03 * cb, q[21:16:-1] - up * 0.03 * cb]),
        np.concatenate([q[22:27] + up * 0.03 * cb, q[26:21:-1] - up * 0.03 * cb])]), sig_edge)
    # low-frequency shading of the visible image modulates skin slightly
    lum_s = _blur(lum, max(1.5, 0.08 * fw))
    ref = float(np.median(lum_s[face_m > 0.5])) if (face_m > 0.5).any() else float(lum_s.mean())
    shade = np.clip(lum_s / max(ref, 1.0) - 1.0, -0.6, 0.6)
    ff += np.float32(_u(rng, o.shading_k)) * shade

    # canthi: hottest; amplitude set so the peak lands on the sampled target
    for a_, b_ in ((39, 36), (42, 45)):
        c = q[a_] + 0.12 * (q[a_] - q[b_])
        ix, iy = int(np.clip(round(c[0]), 0, ws - 1)), int(np.clip(round(c[1]), 0, hs - 1))
        amp = max(0.0, _u(rng, o.canthus_c) - float(ff[iy, ix]))
        ff += np.float32(amp) * _gauss(X, Y, c, max(0.7, 0.09 * iod * s), max(0.7, 0.07 * iod * s))
    # which part of the face polygon is skin: below the brows all of it (eyes, brows and lips are
    # face); above the brows only skin-coloured pixels (hair covers foreheads)
    above = _smoothstep(v_brow - 0.05, v_brow + 0.15, V)
    # (blown-out highlights have no chroma: inside the face they are skin)
    shine = np.maximum(_smoothstep(220.0, 245.0, lum), _highlight_model(ycc, samp))
    skin_face = np.maximum(skin_soft, _blur(shine, 2 * sig_edge))
    w_face = face_m * (1 - above * (1 - skin_face))
    # a high forehead: skin above the estimated outline, in the head zone, is forehead too
    high = head * _smoothstep(0.95, 0.65, np.abs(U)) * above * (1 - face_m) * (0.0 if grey else 1.0)
    w_face = np.clip(w_face + high * skin_face, 0, 1)
    T = T + (ff - T) * w_face

    # beard / moustache: dark non-skin in the lower face away from the lips
    mouth_zone = _blur(_fill((hs, ws), [q[48:60]]), 2.5 * sig_edge)
    nose_base = fv(q[33])[1]
    dark = _smoothstep(0.75, 0.45, lum / max(ref, 1.0))
    beard = lower_face * _smoothstep(nose_base + 0.05, nose_base - 0.1, V) * (1 - skin) * dark * (1 - mouth_zone)
    beard = _blur(beard, sig_edge)
    T = T + (t_beard - T) * beard
    if o.glasses:
        lens = np.zeros((hs, ws), np.float32)
        for a_, b_ in ((36, 39), (42, 45)):
            c = q[[a_, b_]].mean(0)
            lens = np.maximum(lens, _fill((hs, ws), [cv2.ellipse2Poly(
                (int(round(c[0] * 16)), int(round(c[1] * 16))), (int(0.95 * eye_w * 16), int(0.7 * eye_w * 16)),
                int(np.degrees(np.arctan2(ex[1], ex[0]))), 0, 360, 10).astype(np.float64) / 16]))
        T = T + (ta + rng.uniform(0.5, 2.5) - T) * _blur(lens, 0.5 * sig_edge)

    # ---- sensor: optics blur, vignetting, fixed-pattern and stripe noise, NETD
    T = _blur(T.astype(np.float32), _u(rng, o.psf_px))
    r2 = ((X - ws / 2) / (ws / 2)) ** 2 + ((Y - hs / 2) / (hs / 2)) ** 2
    T = T - np.float32(_u(rng, o.vignette_k)) * r2 / 2
    T = T + np.float32(_u(rng, o.fpn_k)) * rng.standard_normal((hs, ws), dtype=np.float32)
    T = T + np.float32(_u(rng, o.stripe_k)) * rng.standard_normal((1, ws), dtype=np.float32)
    T = T + np.float32(0.5 * _u(rng, o.stripe_k)) * rng.standard_normal((hs, 1), dtype=np.float32)
    T = T + np.float32(_u(rng, o.netd_k)) * rng.standard_normal((hs, ws), dtype=np.float32)
    if (ws, hs) != (W, H):
        T = cv2.resize(T, (W, H), interpolation=cv2.INTER_LINEAR)
    meta = {"ambient_c": ta, "face_c": t0, "sensor_scale": f, "sensor_size": (ws, hs), "grey_input": grey}
    return ThermalFace(celsius=np.ascontiguousarray(T, np.float32), points=pts_in.copy(), ambient_c=ta, meta=meta)


# ----------------------------------------------------------------------------- datasets
@dataclass
class ThermalizeReport:
    out_dir: str
    converted: int = 0
    skipped: list[str] = field(default_factory=list)   # "file: reason"
    linked: int = 0
    copied: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        s = (f"converted {self.converted} row(s) to {self.out_dir} in {self.seconds:.1f} s "
             f"({self.linked} file(s) hard-linked, {self.copied} copied)")
        if self.skipped:
            s += f"; skipped {len(self.skipped)}:\n  " + "\n  ".join(self.skipped[:50])
            if len(self.skipped) > 50:
                s += f"\n  ... and {len(self.skipped) - 50} more"
        return s


def row_seed(seed: int, key: str) -> int:
    """Per-row seed from the dataset seed and the row's file name (independent of processing order)."""
    h = hashlib.blake2b(f"{int(seed)}\0{key}".encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(h, "little") & 0x7FFFFFFF


def _link_or_copy(src: Path, dst: Path, rep: ThermalizeReport) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists() or dst.is_symlink():
        if os.path.samefile(src, dst):
            rep.linked += 1
            return
        dst.unlink()
    try:
        os.link(src, dst)
        rep.linked += 1
        return
    except OSError:
        pass
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)
    rep.copied += 1


def _prepare(src: Path, dst: Path, overwrite: bool) -> None:
    if not src.is_dir():
        raise DatasetError(f"{src}: source is not a folder")
    s, d = src.resolve(), dst.resolve()
    if s == d or d in s.parents or s in d.parents:
        raise DatasetError(f"{dst}: the destination must be a separate folder from the source {src}")
    if dst.exists() and not dst.is_dir():
        raise DatasetError(f"{dst}: exists and is not a folder")
    if (dst / MANIFEST).exists() and not overwrite:
        raise DatasetError(f"{dst}: already holds a {MANIFEST}; choose an empty folder or pass --overwrite")


def _rel_stem(rel: str) -> str:
    p = Path(rel)
    return str(p.with_suffix("")).replace("\\", "/")


def thermalize_dataset(src: str | os.PathLike, dst: str | os.PathLike, *, seed: int = 0, overwrite: bool = False,
                       progress: Optional[Callable[[int, int], None]] = None,
                       options: Optional[ThermalOptions] = None) -> ThermalizeReport:
    """Convert a dataset folder's visible rows into registered visible + thermal pairs in ``dst``.

    Visible images and .pts are hard-linked (copied across file systems) to the same relative
    paths; ``th/<stem>.png`` (16-bit centi-kelvin) and ``th8/<stem>.png`` (8-bit white-hot AGC
    view) are written per row. A bad row (unreadable image, missing points) is reported and
    skipped. The source is never modified.
    """
    t_start = time.perf_counter()
    src, dst = Path(src), Path(dst)
    _prepare(src, dst, overwrite)
    records = read_manifest(src)
    dst.mkdir(parents=True, exist_ok=True)
    rep = ThermalizeReport(out_dir=str(dst))
    out: list[PairRecord] = []
    n = len(records)
    for i, rec in enumerate(records):
        try:
            if not rec.vis:
                raise ValueError(f"{src / MANIFEST}: row {i + 2} has no visible image")
            vis_path = rec.abspath(rec.vis)
            if not rec.landmarks:
                raise ValueError(f"{vis_path}: no landmark file in the manifest")
            lm_path = rec.abspath(rec.landmarks)
            if not lm_path.exists():
                raise ValueError(f"{lm_path}: no such file")
            pts = read_pts(lm_path)
            if pts.shape != (68, 2):
                raise ValueError(f"{lm_path}: {pts.shape[0]} points, expected 68")
            img = read_image(vis_path)
            if Path(rec.vis).is_absolute() or Path(rec.landmarks).is_absolute():
                raise ValueError(f"{vis_path}: absolute paths in the manifest are not supported")
            try:
                tf = thermalize_face(img, pts, seed=row_seed(seed, rec.vis), options=options)
            except ValueError as exc:
                raise ValueError(f"{vis_path}: {exc}") from None
            stem = _rel_stem(rec.vis)
            th_rel, th8_rel = f"th/{stem}.png", f"th8/{stem}.png"
            write_image(dst / th_rel, to_u16_ck(tf.celsius))
            write_image(dst / th8_rel, to_u8(tf.celsius))
            _link_or_copy(vis_path, dst / rec.vis, rep)
            _link_or_copy(lm_path, dst / rec.landmarks, rep)
            out.append(PairRecord(subject=rec.subject, variation=rec.variation, vis=rec.vis, th=th_rel,
                                  landmarks=rec.landmarks, th_format="u16_ck", registered=True))
            rep.converted += 1
        except (ImageReadError, AnnotationError, ValueError, OSError) as exc:
            rep.skipped.append(str(exc))  # every message above names its file
        if progress is not None:
            progress(i + 1, n)
    write_manifest(dst, out)
    rep.seconds = time.perf_counter() - t_start
    return rep
