"""The synthetic visible + thermal face renderer.

:class:`FaceRenderer` draws one registered visible/thermal pair of a synthetic :class:`Identity`
in a :class:`FaceState` with OpenCV and numpy only. The 68 landmarks are the projections of the
same 3D geometry that is drawn (jaw points marched to the silhouette for turned heads), so the
ground truth is exact. Default frame size: 320x256 (W x H); the thermal image is rendered on a
sensor grid ``thermal_downsample`` times coarser (160x128 by default: optics blur, noise,
fixed-pattern non-uniformity, vignetting) and upsampled back to the shared pixel grid.

Painting order (painter's algorithm, with a per-pixel normal map for the lighting):
background, torso and neck, long hair, far ear, head (ray-cast ellipsoid clipped by the jaw
contour), near ear, brows, eyes, nose, beard, lips, creases, hair (ray-cast shell), occlusions.
Every layer writes a display colour, a temperature (deg C) and a surface normal.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np

from ...landmarks import boundary_from_points
from . import draw as D
from .face3d import Camera, FaceGeometry, build_geometry, rotation, silhouette_jaw
from .identity import Identity
from .state import FaceState

DEFAULT_SIZE = (320, 256)
BOX_HEIGHT_MM = 137.0      # brow top to chin of the mean face: ``FaceState.scale`` refers to it
FACE_CENTRE = np.array([0.0, 45.0, 90.0])  # head-frame point placed at (cx, cy)
CAMERA_DIST = 650.0


@dataclass
class SynthFrame:
    """One rendered, registered visible/thermal pair with its exact landmarks.

    ``landmarks`` (68, 2) float64 are pixel coordinates of the visible image (and of the thermal
    one when ``homography_th_to_vis`` is None); ``boundary`` is B = [x, y, w, h] of the landmarks.
    With a misregistered state the thermal image is warped: a thermal pixel p maps to visible
    pixel ``homography_th_to_vis @ p`` (homogeneous).
    """

    vis: np.ndarray             # HxWx3 uint8 RGB
    th_celsius: np.ndarray      # HxW float32, deg C
    th_u16: np.ndarray          # HxW uint16, centi-kelvin: round((C + 273.15) * 100)
    th_u8: np.ndarray           # HxW uint8, white-hot display (per-frame AGC)
    landmarks: np.ndarray       # (68, 2) float64
    boundary: np.ndarray        # (4,) float64
    homography_th_to_vis: Optional[np.ndarray] = None
    state: Optional[FaceState] = None

    @property
    def th_landmarks(self) -> np.ndarray:
        """Landmarks in thermal pixel coordinates (equal to ``landmarks`` when registered)."""
        if self.homography_th_to_vis is None:
            return self.landmarks.copy()
        hinv = np.linalg.inv(self.homography_th_to_vis)
        p = np.c_[self.landmarks, np.ones(len(self.landmarks))] @ hinv.T
        return p[:, :2] / p[:, 2:3]


@dataclass
class _Posed:
    geo: FaceGeometry
    R: np.ndarray
    cam: Camera
    lm2d: np.ndarray
    ppm: float
    outward: np.ndarray
    up: np.ndarray

    def view(self, p_head: np.ndarray) -> np.ndarray:
        return np.asarray(p_head) @ self.R.T

    def proj(self, p_head: np.ndarray) -> np.ndarray:
        return self.cam.project(self.view(p_head))

    def facing(self, n_head: np.ndarray) -> float:
        """View-frame z (towards the camera) of a head-frame direction."""
        return float(self.R[2] @ np.asarray(n_head, dtype=np.float64))


def _norm(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return v / (np.linalg.norm(v) + 1e-12)


class FaceRenderer:
    """Render :class:`SynthFrame` pairs; one instance is one camera rig (fixed-pattern noise, size).

    ``render`` at the default 320x256 takes ~15-30 ms of one core, so the same object drives the
    live demo. ``rng`` only drives per-frame sensor effects (noise, JPEG quality); everything
    else follows from the identity and the state, so animating a state gives a stable picture.
    """

    def __init__(self, size: tuple[int, int] = DEFAULT_SIZE, thermal_downsample: int = 2,
                 camera_seed: int = 0, jpeg: bool = True) -> None:
        self.W, self.H = int(size[0]), int(size[1])
        if self.W < 32 or self.H < 32:
            raise ValueError(f"image size must be at least 32x32, got {self.W}x{self.H}")
        self.ds = max(1, int(thermal_downsample))
        self.jpeg = bool(jpeg)
        self.px, self.py = (self.W - 1) / 2.0, (self.H - 1) / 2.0
        rng = np.random.default_rng([int(camera_seed), 0xCA3])
        self.sw, self.sh = max(self.W // self.ds, 8), max(self.H // self.ds, 8)
        fpn = rng.normal(0, 0.05, (self.sh, self.sw)) + rng.normal(0, 0.06, (1, self.sw))
        fpn += rng.normal(0, 0.03, (self.sh, 1))
        self._fpn = fpn.astype(np.float32)
        yy, xx = np.mgrid[0:self.sh, 0:self.sw].astype(np.float32)
        r2 = ((xx - (self.sw - 1) / 2) / (self.sw / 2)) ** 2 + ((yy - (self.sh - 1) / 2) / (self.sh / 2)) ** 2
        self._vignette = (-0.45 * r2 / 2).astype(np.float32)
        self._tex = D.blur(rng.random((128, 128)).astype(np.float32), 0.7)
        self._tex = (self._tex - self._tex.min()) / (np.ptp(self._tex) + 1e-6)
        strands = D.blur(rng.random((1, 720)).astype(np.float32), 1.2)[0]
        self._strands = (strands - strands.min()) / (np.ptp(strands) + 1e-6)
        self._xs = np.arange(self.W, dtype=np.float32)
        self._ys = np.arange(self.H, dtype=np.float32)
        self._gx = np.linspace(-1, 1, self.W, dtype=np.float32)[None, :]
        self._bg_cache: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._tex_tiles: dict[int, np.ndarray] = {}
        # full-frame scratch canvases, reused from frame to frame (fresh large arrays cost page
        # faults on every frame); a render pops a set and puts it back, so concurrent renders on
        # one renderer never share one (list.pop / append are atomic)
        self._spare: list[_Canvas] = []

    @property
    def size(self) -> tuple[int, int]:
        return self.W, self.H

    def _tex_tile(self, step: int, box: D.Box) -> np.ndarray:
        """``self._tex[(ys * step) % 128][:, (xs * step) % 128]`` over ``box`` (a read-only view of a
        full-frame tiling built once per step)."""
        tile = self._tex_tiles.get(step)
        if tile is None:
            tile = self._tex[(np.arange(self.H) * step) % 128][:, (np.arange(self.W) * step) % 128]
            tile.flags.writeable = False
            self._tex_tiles[step] = tile
        return tile[box[1]:box[3], box[0]:box[2]]

    # ------------------------------------------------------------------ geometry
    def _pose(self, identity: Identity, state: FaceState) -> _Posed:
        geo = build_geometry(identity.shape, state.expression, state.mouth_open, state.eyes_closed)
        R = rotation(state.yaw, state.pitch, state.roll)
        f = max(state.scale, 0.02) * self.H * CAMERA_DIST / BOX_HEIGHT_MM
        depth_c = CAMERA_DIST - FACE_CENTRE[2]
        tx = (state.cx * (self.W - 1) - self.px) * depth_c / f - FACE_CENTRE[0]
        ty = (state.cy * (self.H - 1) - self.py) * depth_c / f - FACE_CENTRE[1]
        cam = Camera(f=f, px=self.px, py=self.py, tx=tx, ty=ty, dist=CAMERA_DIST)
        outward = _norm(R[:2, 0])
        up = _norm(-R[:2, 1])
        posed = _Posed(geo=geo, R=R, cam=cam, lm2d=np.zeros((68, 2)), ppm=cam.px_per_mm(60.0),
                       outward=outward, up=up)
        lm = posed.proj(geo.lm)
        lm[0:17] = silhouette_jaw(posed.proj(geo.jaw_arcs), outward)
        posed.lm2d = lm
        return posed

    def landmarks(self, identity: Identity, state: FaceState) -> np.ndarray:
        """The (68, 2) pixel landmarks ``render`` would return, without drawing anything (fast)."""
        return self._pose(identity, state).lm2d.copy()

    # ------------------------------------------------------------------ scene
    def _background(self, scene: int) -> tuple[np.ndarray, np.ndarray]:
        hit = self._bg_cache.get(scene)
        if hit is not None:
            self._bg_cache.move_to_end(scene)
            return hit
        W, H = self.W, self.H
        rng = np.random.default_rng([int(scene), 0xB6])
        # drawn at quarter resolution (it is out of focus anyway), then upsampled
        w, h = max(W // 4, 8), max(H // 4, 8)
        wall = np.clip(rng.uniform(0.3, 0.85) * (1 + rng.normal(0, 0.1, 3)), 0.05, 1).astype(np.float32)
        gx = np.linspace(-1, 1, w, dtype=np.float32)[None, :]
        gy = np.linspace(-1, 1, h, dtype=np.float32)[:, None]
        lum = 1 + np.float32(0.12 * rng.normal()) * gx + np.float32(0.1 * rng.normal()) * gy
        vis = np.ascontiguousarray(lum[..., None] * wall[None, None, :])
        th = np.zeros((h, w), np.float32)
        for _ in range(int(rng.integers(1, 5))):
            x0, x1 = np.sort(rng.uniform(-0.2, 1.2, 2) * w * 16).astype(int)
            y0, y1 = np.sort(rng.uniform(-0.2, 1.2, 2) * h * 16).astype(int)
            if rng.random() < 0.5:
                col = np.clip(wall * rng.uniform(0.55, 1.35), 0, 1)
            else:
                col = rng.uniform(0.1, 0.9, 3)
            cv2.rectangle(vis, (int(x0), int(y0)), (int(x1), int(y1)), tuple(map(float, col)), -1, cv2.LINE_AA, 4)
            dt = float(rng.uniform(-0.8, 1.0))
            if rng.random() < 0.2:
                dt = float(rng.uniform(4.0, 12.0))  # a monitor, radiator or lamp
            cv2.rectangle(th, (int(x0), int(y0)), (int(x1), int(y1)), dt, -1, cv2.LINE_AA, 4)
        low = cv2.resize(rng.normal(0, 1, (h // 4 + 2, w // 4 + 2)).astype(np.float32), (w, h),
                         interpolation=cv2.INTER_CUBIC)
        vis *= (1 + 0.05 * low)[..., None]
        vis = np.clip(D.blur(vis, 0.35 + 0.001 * W), 0, 1)
        low_t = cv2.resize(rng.normal(0, 1, (h // 8 + 2, w // 8 + 2)).astype(np.float32), (w, h),
                           interpolation=cv2.INTER_CUBIC)
        th = D.blur(th, 0.5 + 0.0015 * W) + 0.45 * low_t - 0.6 * gy  # a little warmer near the ceiling
        vis = cv2.resize(vis, (W, H), interpolation=cv2.INTER_LINEAR)
        th = cv2.resize(th, (W, H), interpolation=cv2.INTER_LINEAR)
        out = (np.ascontiguousarray(vis.transpose(2, 0, 1)).astype(np.float32), th.astype(np.float32))
        self._bg_cache[scene] = out
        while len(self._bg_cache) > 8:
            self._bg_cache.popitem(last=False)
        return out

    # ------------------------------------------------------------------ ray casting
    def _raycast(self, P: _Posed, center: np.ndarray, radii: np.ndarray, box: D.Box,
                 cv: Optional["_Canvas"] = None):
        """Ray-cast an ellipsoid (head frame) over ``box``.

        Returns (alpha, hit point in head frame (3 planes), unit view-frame normal (3, h, w)).
        The smooth fields are solved on a 2x coarser grid and upsampled; the anti-aliased
        silhouette comes from the upsampled (smooth) discriminant at full resolution.
        With ``cv`` the results are views of its reusable ray-cast block: valid until the next
        ray cast with the same canvas (the callers use them before casting again).
        """
        x0, y0, x1, y1 = box
        w, h = x1 - x0, y1 - y0
        hw, hh = (w + 1) // 2, (h + 1) // 2
        cam = P.cam
        xs = x0 + 0.5 + 2.0 * np.arange(hw, dtype=np.float32)
        ys = y0 + 0.5 + 2.0 * np.arange(hh, dtype=np.float32)
        du = ((xs - cam.px) / cam.f)[None, :]
        dv = ((ys - cam.py) / cam.f)[:, None]
        Rt = P.R.T
        inv = 1.0 / radii
        o = np.array([-cam.tx, -cam.ty, cam.dist])
        oh = (Rt @ o - center) * inv
        g0, g1, g2 = Rt[:, 0] * inv, Rt[:, 1] * inv, Rt[:, 2] * inv
        # coarse grid, in place (the float32 operations of the formulas in the comments, in order)
        d = []
        for k in range(3):  # d[k] = du * g0[k] + dv * g1[k] - g2[k]
            dk = du * np.float32(g0[k]) + dv * np.float32(g1[k])
            dk -= np.float32(g2[k])
            d.append(dk)
        tmp = np.empty_like(d[0])

        def dot(u, v):  # u[0] * v[0] + u[1] * v[1] + u[2] * v[2] (u: planes, v: planes or scalars)
            acc = np.multiply(u[0], v[0])
            acc += np.multiply(u[1], v[1], out=tmp)
            acc += np.multiply(u[2], v[2], out=tmp)
            return acc

        a = dot(d, d)
        b = dot(d, [np.float32(oh[0]), np.float32(oh[1]), np.float32(oh[2])])
        c = np.float32(oh @ oh - 1.0)
        disc = np.multiply(b, b)  # b * b - a * c
        disc -= np.multiply(a, c, out=tmp)
        t = np.negative(b, out=b)  # (-b - sqrt(max(disc, 0))) / a
        t -= np.sqrt(np.maximum(disc, 0.0, out=tmp), out=tmp)
        t /= a
        q = []
        for k in range(3):  # q[k] = oh[k] + t * d[k]
            qk = np.multiply(t, d[k], out=d[k])
            qk += np.float32(oh[k])
            q.append(qk)
        R = P.R.astype(np.float32)
        nh = [q[k] * np.float32(inv[k]) for k in range(3)]
        nv = [dot(nh, R[i]) for i in range(3)]  # R[i, 0] * nh[0] + R[i, 1] * nh[1] + R[i, 2] * nh[2]
        nn = dot(nv, nv)  # 1 / (|nv| + 1e-6)
        np.sqrt(nn, out=nn)
        nn += np.float32(1e-6)
        np.divide(1.0, nn, out=nn)
        disc /= a
        planes = [disc]
        for k in range(3):  # hit point: q[k] * radii[k] + center[k]
            qk = q[k]
            qk *= np.float32(radii[k])
            qk += np.float32(center[k])
            planes.append(qk)
        for i in range(3):
            nv[i] *= nn
            planes.append(nv[i])
        # all seven planes upsampled into one block (no per-plane arrays); views cropped to the box
        shape = (7, 2 * hh, 2 * hw)
        up = np.empty(shape, np.float32) if cv is None else cv.scratch("ray", shape)
        for k, pl in enumerate(planes):
            cv2.resize(pl, (2 * hw, 2 * hh), up[k], interpolation=cv2.INTER_LINEAR)
        up = up[:, :h, :w]
        r_px = float(radii.min()) * P.ppm
        alpha = up[0]  # clip(disc / a * r_px / 2 + 1/2, 0, 1), in place
        alpha *= np.float32(r_px * 0.5)
        alpha += np.float32(0.5)
        np.clip(alpha, 0.0, 1.0, out=alpha)
        hit = [up[1], up[2], up[3]]
        nv_full = up[4:7]
        # nv_full *= 1 / (|nv_full| + 1e-6), in place
        n2 = np.multiply(nv_full[0], nv_full[0])
        tmp = np.multiply(nv_full[1], nv_full[1])
        n2 += tmp
        n2 += np.multiply(nv_full[2], nv_full[2], out=tmp)
        np.sqrt(n2, out=n2)
        n2 += np.float32(1e-6)
        np.divide(1.0, n2, out=n2)
        nv_full *= n2
        return alpha, hit, nv_full

    # ------------------------------------------------------------------ main entry
    def render(self, identity: Identity, state: FaceState,
               rng: Optional[np.random.Generator] = None) -> SynthFrame:
        """Draw one registered visible/thermal pair; ``rng`` drives sensor noise and JPEG quality."""
        if rng is None:
            rng = np.random.default_rng()
        try:
            cv = self._spare.pop()
        except IndexError:
            cv = _Canvas(self.W, self.H)
        frame = self._render(identity, state, rng, cv)
        if len(self._spare) < 4:  # keep a few (one per concurrent render), not one per thread ever seen
            self._spare.append(cv)
        return frame

    def _render(self, identity: Identity, state: FaceState, rng: np.random.Generator,
                cv: "_Canvas") -> SynthFrame:
        W, H = self.W, self.H
        P = self._pose(identity, state)
        bg_vis, bg_th = self._background(state.scene)
        alb = cv.alb
        np.copyto(alb, bg_vis)
        T = np.add(bg_th, np.float32(state.ambient_c), out=cv.T)
        N = cv.N
        N[:2] = 0.0
        N[2] = 1.0
        spec = cv.spec
        spec.fill(0.0)
        person = cv.person
        person.fill(0.0)
        amb_c = float(state.ambient_c)
        core = 34.0 + identity.skin_temp + 0.08 * (amb_c - 22.0)
        layer = _Layers(alb, T, N, spec, person, cv)

        self._draw_body(P, identity, state, layer, core)
        hair_v = max(identity.hair_volume, 1.0)
        if identity.hair_style == "long":
            self._draw_long_hair(P, identity, layer, amb_c, hair_v)
        self._draw_neck(P, identity, state, layer, core)

        # head region
        geo = P.geo
        shell_r = geo.head_radii + np.array([hair_v, hair_v * 1.15, hair_v])
        corners = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)]) * shell_r
        roi = D.bbox(np.concatenate([P.proj(corners + geo.head_center), P.lm2d]), 3, W, H)
        ears_front = [P.facing([-1, 0, 0]) > 0.12, P.facing([1, 0, 0]) > 0.12]
        for k in range(2):
            if not ears_front[k]:
                self._draw_ear(P, identity, layer, k, core)
        if roi is not None:
            head_a, shadow = self._draw_head(P, identity, state, layer, roi, core, hair_v)
        for k in range(2):
            if ears_front[k]:
                self._draw_ear(P, identity, layer, k, core)
        if roi is not None:
            self._draw_hair(P, identity, layer, roi, amb_c, hair_v, head_a, core)
        self._draw_occlusions(P, identity, state, layer, amb_c, core)
        if state.breath > 0:
            c = P.proj(np.array([[0.0, 80.0, 125.0]]))[0]
            # added straight into T: the same sums as adding a zero canvas holding the blob
            D.add_gauss(T, (0, 0, W, H), c, 14 * P.ppm, 0.9 * state.breath, 20 * P.ppm)

        vis = self._shade(P, state, layer, shadow if roi is not None else None, roi, rng, cv)
        th_c, H_th = self._thermal_sensor(T, state, rng)
        lm = P.lm2d.copy()
        k = th_c.astype(np.float64)  # round((C + 273.15) * 100), in place
        k += 273.15
        k *= 100.0
        np.round(k, out=k)
        np.clip(k, 0, 65535, out=k)
        th_u16 = k.astype(np.uint16)
        return SynthFrame(vis=vis, th_celsius=th_c, th_u16=th_u16, th_u8=_agc(th_c), landmarks=lm,
                          boundary=boundary_from_points(lm), homography_th_to_vis=H_th, state=state)

    # ------------------------------------------------------------------ body
    def _draw_body(self, P: _Posed, ident: Identity, state: FaceState, L: "_Layers", core: float) -> None:
        W, H = self.W, self.H
        cam = P.cam
        rr = np.radians(state.roll * 0.35)
        ry = np.radians(state.yaw * 0.2)
        rot = np.array([[np.cos(rr), -np.sin(rr)], [np.sin(rr), np.cos(rr)]])

        def vproj(xy: np.ndarray, z: float = -30.0, turn: float = 1.0) -> np.ndarray:
            p = np.asarray(xy, dtype=np.float64) @ rot.T
            x = p[:, 0] * np.cos(ry * turn)
            zz = z + p[:, 0] * np.sin(-ry * turn)
            return cam.project(np.stack([x, p[:, 1], zz], axis=1))

        nw = 47.0 + 2.0 * ident.shape.head_width
        sh = np.array([[-nw, 140], [-115, 165], [-170, 190], [-205, 235], [-225, 330], [-235, 1400],
                       [235, 1400], [225, 330], [205, 235], [170, 190], [115, 165], [nw, 140]])
        body2d = vproj(sh)
        box = D.bbox(body2d, 2, W, H)
        clo = np.array(ident.clothing, np.float32)
        amb = state.ambient_c
        if box is not None:
            a = D.fill([body2d], box)
            u = (self._xs[box[0]:box[2]] - float(body2d[:, 0].mean())) / max(float(np.ptp(body2d[:6, 0])), 1.0)
            nx = np.clip(u * 1.1, -0.9, 0.9)[None, :]
            n = np.zeros((3, 1, a.shape[1]), np.float32)  # per column, broadcast over the rows
            n[0] = nx
            n[1] = -0.15
            n[2] = np.sqrt(1 - nx * nx - 0.0225)
            L.paint(a, box, clo, amb + 6.5, n, 0.02)
            # neckline (V or crew)
            vneck = (ident.index % 3) != 0
            if vneck:
                v2d = vproj(np.array([[-nw + 4, 140], [0, 205], [nw - 4, 140]]), z=-5)
                a2 = D.fill([v2d], box)
                L.paint(a2, box, skin_tone(ident) * 0.92, core - 0.3)
                a3 = D.stroke([v2d], box, max(2.0, 4 * P.ppm))
                L.paint(a3 * 0.8, box, clo * 0.7, amb + 7.0)
            else:
                c2d = vproj(np.array([[-nw - 6, 138], [-nw * 0.5, 160], [0, 165], [nw * 0.5, 160], [nw + 6, 138]]), z=-5)
                a3 = D.stroke([c2d], box, max(2.0, 9 * P.ppm))
                L.paint(a3, box, np.array(ident.clothing2, np.float32), amb + 7.5)

    def _draw_neck(self, P: _Posed, ident: Identity, state: FaceState, L: "_Layers", core: float) -> None:
        cam = P.cam
        rr = np.radians(state.roll * 0.35)
        rot = np.array([[np.cos(rr), -np.sin(rr)], [np.sin(rr), np.cos(rr)]])
        nw = 47.0 + 2.0 * ident.shape.head_width
        W, H = self.W, self.H
        # neck: attached to the head at the top, to the body at the bottom
        ax = P.geo.head_radii[0] - 12.0
        top = P.view(np.array([[-ax, 12.0, -12.0], [ax, 12.0, -12.0]]))
        mid = np.array([[nw, 100.0], [-nw, 100.0]]) @ np.array([[np.cos(2 * rr), -np.sin(2 * rr)],
                                                                 [np.sin(2 * rr), np.cos(2 * rr)]]).T
        bot = np.array([[nw * 1.05, 165.0], [-nw * 1.05, 165.0]]) @ rot.T
        neck_v = np.concatenate([top[[0, 1]], np.c_[mid[[0]], [-15.0]], np.c_[bot, np.full(2, -15.0)],
                                 np.c_[mid[[1]], [-15.0]]])
        neck2d = cam.project(neck_v)
        nbox = D.bbox(neck2d, 2, W, H)
        if nbox is not None:
            a = D.fill([neck2d], nbox)
            u = (self._xs[nbox[0]:nbox[2]] - float(neck2d[:, 0].mean())) / max(float(np.ptp(neck2d[:, 0])) / 2, 1.0)
            # per-column fields (1, w), broadcast over the rows by the blend
            nx = np.clip(u, -0.95, 0.95)[None, :]
            n = np.stack([nx, np.full_like(nx, 0.05), np.sqrt(np.maximum(1 - nx * nx, 0.01))])
            tn = core + 0.3 - 1.2 * (np.abs(nx) ** 3)
            L.paint(a, nbox, skin_tone(ident) * 0.9, tn, n, 0.05)

    def _draw_long_hair(self, P: _Posed, ident: Identity, L: "_Layers", amb: float, vol: float) -> None:
        r = P.geo.head_radii
        pts_h = np.array([[-r[0] - vol, -10, -30], [-r[0] - vol * 0.8, 40, -40], [r[0] + vol * 0.8, 40, -40],
                          [r[0] + vol, -10, -30]]) + [0, P.geo.head_center[1], 0]
        top = P.view(pts_h)
        # the hair hangs down in the view frame, flaring over the shoulders with an uneven end
        k = np.linspace(0.0, 1.0, 9)
        left = top[1] + np.outer(k, [-28.0, 150.0, 0.0]) + np.outer(np.sin(k * np.pi), [-10.0, 0.0, 0.0])
        right = top[2] + np.outer(k, [28.0, 150.0, 0.0]) + np.outer(np.sin(k * np.pi), [10.0, 0.0, 0.0])
        xs = np.linspace(left[-1, 0], right[-1, 0], 9)
        ends = np.stack([xs, left[-1, 1] - 12.0 * np.sin(np.linspace(0, np.pi, 9)) + 6.0 * np.cos(xs * 0.3),
                         np.full(9, left[-1, 2])], 1)
        poly = P.cam.project(np.concatenate([top[:1], left, ends[1:-1], right[::-1], top[3:]]))
        box = D.bbox(poly, 2, self.W, self.H)
        if box is None:
            return
        a = D.blur(D.fill([poly], box), 0.8)
        col = np.array(ident.hair, np.float32) * 0.8
        L.paint(a, box, col, amb + 4.5, None, 0.1)

    def _draw_ear(self, P: _Posed, ident: Identity, L: "_Layers", k: int, core: float) -> None:
        ear = P.geo.ears[k]
        p2 = P.proj(ear)
        box = D.bbox(p2, 2, self.W, self.H)
        if box is None:
            return
        a = D.fill([p2], box)
        sgn = -1.0 if k == 0 else 1.0
        face = P.facing([sgn, 0, 0])
        nv = P.R @ _norm([sgn * 0.8, 0.0, 0.6])
        skin = skin_tone(ident)
        L.paint(a, box, skin * np.array([0.97, 0.9, 0.88], np.float32), core - 2.4, nv.astype(np.float32), 0.05)
        if face > 0.05:
            c = ear.mean(axis=0) + [0, 4, 2]
            inner = P.proj(D.ellipse_pts(c, np.array([0, 0, 6.5]), np.array([0, 12.0, 0]), 14))
            ai = D.blur(D.fill([inner], box), max(0.6, 1.2 * P.ppm))
            L.paint(ai * float(min(face * 2.0, 0.7)), box, skin * 0.62, core - 1.6)

    # ------------------------------------------------------------------ head
    def _draw_head(self, P: _Posed, ident: Identity, state: FaceState, L: "_Layers", roi: D.Box,
                   core: float, hair_v: float):
        geo, lm, ppm = P.geo, P.lm2d, P.ppm
        x0, y0, x1, y1 = roi
        h, w = y1 - y0, x1 - x0
        ell_a, hit, nrm = self._raycast(P, geo.head_center, geo.head_radii, roi, L.cv)
        big = 4.0 * max(w, h)
        out, up = P.outward, P.up
        jaw = lm[0:17]
        clip = np.concatenate([[jaw[0] - out * big], jaw, [jaw[16] + out * big, jaw[16] + out * big + up * big,
                                                           jaw[0] - out * big + up * big]])
        head_a = D.fill([clip], roi)  # max(ell_a * clip_a, jaw_a)
        head_a *= ell_a
        np.maximum(head_a, D.fill([jaw], roi), out=head_a)
        fallback = (P.R @ _norm([0, 0.35, 0.94])).astype(np.float32)
        np.copyto(nrm, fallback[:, None, None], where=~(ell_a > 0.01))  # nrm is ours: in place
        skin = skin_tone(ident)

        # skin colour and temperature fields
        red = np.zeros((h, w), np.float32)
        tf = np.full((h, w), core, np.float32)
        mm = ppm
        cheeks = P.proj(geo.cheeks)
        for c in cheeks:
            D.add_gauss(red, roi, c, 14 * mm, 1.0)
            D.add_gauss(tf, roi, c, 15 * mm, -1.1)
        D.add_gauss(red, roi, lm[30], 7 * mm, 0.7)
        # col = skin + (0.05, -0.03, -0.02) * red, per channel
        col = np.empty((3, h, w), np.float32)
        np.add(np.multiply(red, 0.05, out=col[0]), skin[0], out=col[0])
        np.subtract(skin[1], np.multiply(red, 0.03, out=col[1]), out=col[1])
        np.subtract(skin[2], np.multiply(red, 0.02, out=col[2]), out=col[2])
        fore = P.proj(geo.forehead[None])[0]
        D.add_gauss(tf, roi, fore, 30 * mm, 0.7, 22 * mm)
        D.add_gauss(tf, roi, lm[27], 9 * mm, 0.6)
        for i in (39, 42):
            D.add_gauss(tf, roi, lm[i], 4.5 * mm, 1.9)
        nc = ident.nose_cool
        D.add_gauss(tf, roi, lm[30], 8 * mm, -2.4 * nc)
        D.add_gauss(tf, roi, lm[29], 7 * mm, -1.1 * nc)
        for i in (31, 35):
            D.add_gauss(tf, roi, lm[i], 5 * mm, -0.6 * nc)
        D.add_gauss(tf, roi, 0.5 * (lm[62] + lm[66]), 12 * mm, 0.5, 6 * mm)
        D.add_gauss(tf, roi, lm[8], 16 * mm, -0.6)
        # tf -= 2.8 * edge * sqrt(edge), edge = clip(1 - nz, 0, 1) (in red's buffer: red is used up)
        edge = np.subtract(1.0, nrm[2], out=red)
        np.clip(edge, 0.0, 1.0, out=edge)
        root = np.sqrt(edge)
        edge *= 2.8
        edge *= root
        tf -= edge
        spec_w = np.full((h, w), 0.08, np.float32)
        D.add_gauss(spec_w, roi, lm[30], 6 * mm, 0.12)
        D.add_gauss(spec_w, roi, fore, 22 * mm, 0.06)
        L.paint(head_a, roi, col, tf, nrm, spec_w)

        ao_f = np.zeros((h, w), np.uint8)     # fine creases
        ao_b = np.zeros((h, w), np.uint8)     # broad shading (sockets, folds)
        bump = np.zeros((h, w), np.uint8)     # height field for nose/lips/brow ridge shading
        lw = max(1.0, 0.9 * mm)
        # eye sockets and the nose
        for idx in (range(36, 42), range(42, 48)):
            e = lm[list(idx)]
            c = e.mean(axis=0)
            D.fill_into(ao_b, [c + (e - c) * [1.5, 2.2] + up * (-2.5 * mm) * -1], roi, 120)
        ridge = lm[27:31]
        D.stroke([ridge[:2]], roi, 7 * mm, value=110, out=bump)
        D.stroke([ridge[1:]], roi, 9 * mm, value=170, out=bump)
        cv2.circle(bump, tuple(np.round((lm[30] - (x0, y0)) * 16).astype(int)), int(round(6 * mm * 16)), 230,
                   -1, cv2.LINE_AA, 4)
        for i in (31, 35):
            cv2.circle(bump, tuple(np.round((0.5 * lm[i] + 0.5 * lm[33] - (x0, y0)) * 16).astype(int)),
                       int(round(5.5 * mm * 16)), 150, -1, cv2.LINE_AA, 4)
        D.stroke([lm[17:22], lm[22:27]], roi, 6 * mm, value=60, out=bump)
        outer = D.catmull_rom(lm[48:60], 5, closed=True)
        D.fill_into(bump, [outer], roi, 90)
        for c in cheeks:
            cv2.circle(bump, tuple(np.round((c - (x0, y0)) * 16).astype(int)), int(round(13 * mm * 16)), 50, -1,
                       cv2.LINE_AA, 4)
        # nose sides, alar creases, under-nose, mouth, chin creases
        for s, (i_a, _i_b) in ((-1, (31, 32)), (1, (35, 34))):
            g = P.geo.lm
            side = P.proj(np.array([[s * 5.5, g[27, 1] + 6, g[27, 2] - 3], [s * 8.5, g[29, 1], g[29, 2] - 11],
                                    g[i_a] + [s * 1.0, -5.0, -3.0]]))
            D.stroke([side], roi, 3 * mm, value=90, out=ao_b)
            al = P.geo.lm[i_a]
            arc = P.proj(al + np.array([[s * -1, -7, 2], [s * 2.5, -5, 0], [s * 3.5, -1, -1], [s * 2, 2.5, -2]]))
            D.stroke([arc], roi, lw, value=140, out=ao_f)
        D.stroke([lm[31:36] - up * (0.8 * mm)], roi, 2 * mm, value=110, out=ao_f)
        lower = P.proj(P.geo.lm[[58, 57, 56]] + [0, 6.5, -5])
        D.stroke([lower], roi, 3 * mm, value=80, out=ao_b)
        D.stroke([lm[[33, 50]], lm[[33, 52]]], roi, 2 * mm, value=35, out=ao_b)
        age = ident.age
        fold_k = 25 + 90 * age ** 1.5 + 100 * state.smile
        for s, i_n, i_m in ((-1, 31, 48), (1, 35, 54)):
            g = P.geo.lm
            fold = P.proj(np.array([g[i_n] + [s * 4, -2, -4], g[i_n] + [s * 9, 10, -8],
                                    g[i_m] + [s * 5, 2, -4], g[i_m] + [s * 6, 14, -6]]))
            D.stroke([D.catmull_rom(fold, 4)], roi, lw * 1.2, value=int(min(fold_k, 255)), out=ao_f)
        if age > 0.35 or state.surprise > 0.3:
            k = int(min(255, 170 * (age - 0.33) + 120 * state.surprise))
            for yy in (-36.0, -45.0, -54.0):
                xs = np.linspace(-32, 32, 7)
                pts = np.stack([xs, yy + 1.5 * np.cos(xs / 20.0) - 3 * state.surprise, np.zeros_like(xs)], 1)
                pts[:, 2] = 88.0 - 0.0105 * xs ** 2 - 0.004 * (yy + 20) ** 2
                D.stroke([P.proj(pts)], roi, lw, value=k, out=ao_f)
        if age > 0.45:
            k = int(min(255, 200 * (age - 0.4)))
            for s, i in ((-1, 36), (1, 45)):
                g = P.geo.lm[i]
                for dy in (-4.0, 0.0, 4.0):
                    D.stroke([P.proj(np.array([g + [s * 3, dy * 0.3, -2], g + [s * 11, dy, -6]]))], roi, lw,
                             value=k, out=ao_f)
            for idx in ((41, 40), (46, 47)):
                g = P.geo.lm[list(idx)]
                bag = P.proj(np.array([g[0] + [-3, 6, 0], g.mean(0) + [0, 7.5, 0], g[1] + [3, 6, 0]]))
                D.stroke([bag], roi, lw, value=k // 2, out=ao_f)
        if state.anger > 0.2 or state.disgust > 0.3:
            k = int(min(255, 200 * max(state.anger, state.disgust * 0.6)))
            g = P.geo.lm
            for s in (-1, 1):
                D.stroke([P.proj(np.array([[s * 4, -20, 88], [s * 3, -8, 88]]))], roi, lw, value=k, out=ao_f)

        # brows
        for k in range(2):
            up_e = P.proj(geo.brows[k, 0])
            lo_e = P.proj(geo.brows[k, 1])
            poly = np.concatenate([D.catmull_rom(up_e, 4), D.catmull_rom(lo_e, 4)[::-1]])
            self._feature(L, [poly], roi, head_a, np.array(ident.brows, np.float32), -0.5,
                          opacity=0.55 + 0.4 * ident.brow_density, soft=0.5 * mm, texture=0.35)

        # eyes
        for k, idx in enumerate(((36, 37, 38, 39, 40, 41), (42, 43, 44, 45, 46, 47))):
            self._draw_eye(P, ident, state, L, roi, head_a, k, list(idx), ao_f, ao_b)

        # nostrils
        for k in range(2):
            c, a1, a2 = P.proj(geo.nostrils[k])
            poly = D.ellipse_pts(c, a1 - c, a2 - c, 14)
            self._feature(L, [poly], roi, head_a, skin * 0.28, 0.9 * state.breath, opacity=0.85, soft=0.4 * mm)

        # beard (before the lips)
        if ident.beard != "none" and ident.beard_density > 0:
            self._draw_beard(P, ident, L, roi, head_a)

        # lips and mouth
        self._draw_mouth(P, ident, state, L, roi, head_a, ao_f)

        # apply creases: darker in visible, slightly warmer in thermal
        fine = D.blur(D._alpha(ao_f), max(0.6, 0.45 * mm))
        broad = D.blur(D._alpha(ao_b), max(1.0, 3.5 * mm))
        # alb *= 1 - head_a * (0.5 * fine + 0.3 * broad); T += head_a * (0.5 * broad + 0.3 * fine)
        dark = np.multiply(fine, 0.5)
        tmp = np.multiply(broad, 0.3)
        dark += tmp
        dark *= head_a
        np.subtract(1.0, dark, out=dark)
        L.alb[:, y0:y1, x0:x1] *= dark
        warm = np.multiply(broad, 0.5, out=dark)
        warm += np.multiply(fine, 0.3, out=tmp)
        warm *= head_a
        L.T[y0:y1, x0:x1] += warm

        # height bump -> normal perturbation and a cast shadow (nose)
        hb = D.blur(np.multiply(bump, np.float32(14.0 * mm / 255), dtype=np.float32), max(1.0, 2.5 * mm))
        # N -= head_a * (Sobel(hb) / 8) in x and y, then N *= 1 / (|N| + 1e-6)
        Nroi = L.N[:, y0:y1, x0:x1]
        for k, (ox, oy) in enumerate(((1, 0), (0, 1))):
            g = cv2.Sobel(hb, cv2.CV_32F, ox, oy, ksize=3)
            g *= np.float32(0.125)
            g *= head_a
            Nroi[k] -= g
        n2 = np.multiply(Nroi[0], Nroi[0], out=tmp)
        n2 += np.multiply(Nroi[1], Nroi[1], out=g)
        n2 += np.multiply(Nroi[2], Nroi[2], out=g)
        np.sqrt(n2, out=n2)
        n2 += np.float32(1e-6)
        np.divide(1.0, n2, out=n2)
        Nroi *= n2
        shadow = np.zeros_like(head_a)
        sb = _intersect(D.bbox(np.concatenate([lm[27:36], lm[48:68]]), 12 * mm, self.W, self.H), roi)
        if sb is not None:
            sy, sx = D.sub(roi, sb)
            shadow[sy, sx] = _height_shadow(np.ascontiguousarray(hb[sy, sx]), state) * head_a[sy, sx]
        return head_a, shadow

    def _feature(self, L: "_Layers", polys: list, roi: D.Box, head_a: np.ndarray, rgb, dtemp: float,
                 opacity: float = 1.0, soft: float = 0.0, texture: float = 0.0,
                 temp_abs: Optional[float] = None) -> Optional[tuple[np.ndarray, D.Box]]:
        """Fill polygons clipped to the head, blend a colour and a temperature change; returns the mask."""
        allp = np.concatenate([np.asarray(p).reshape(-1, 2) for p in polys])
        box = D.bbox(allp, 2 + 2 * soft, self.W, self.H)
        box = _intersect(box, roi)
        if box is None:
            return None
        a = D.fill(polys, box)
        if soft > 0.3:
            a = D.blur(a, soft)
        sy, sx = D.sub(roi, box)
        a *= head_a[sy, sx] * np.float32(opacity)
        if texture > 0:
            th, tw = a.shape
            tex = self._tex_tile(3, box)
            a *= (1 - texture) + texture * tex
        x0, y0, x1, y1 = box
        tcur = L.T[y0:y1, x0:x1]
        L.paint(a, box, rgb, temp_abs if temp_abs is not None else tcur + np.float32(dtemp))
        return a, box

    def _draw_eye(self, P: _Posed, ident: Identity, state: FaceState, L: "_Layers", roi: D.Box,
                  head_a: np.ndarray, k: int, idx: list, ao_f: np.ndarray, ao_b: np.ndarray) -> None:
        lm, geo, mm = P.lm2d, P.geo, P.ppm
        e = lm[idx]
        upper = D.catmull_rom(e[[0, 1, 2, 3]], 5)
        lower = D.catmull_rom(e[[3, 4, 5, 0]], 5)
        opening = np.concatenate([upper[:-1], lower[:-1]])
        skin = skin_tone(ident)
        res = self._feature(L, [opening], roi, head_a, np.array([0.86, 0.82, 0.78], np.float32), 0.0,
                            opacity=1.0, temp_abs=None)
        lid_t = max(1.0, 0.07 * float(np.linalg.norm(e[0] - e[3])))
        if res is not None:
            eye_a, box = res
            L.T[box[1]:box[3], box[0]:box[2]] -= eye_a * np.float32(0.4)
            c3 = geo.lm[idx].mean(axis=0) + [3.0 * state.gaze_x, 2.0 * state.gaze_y + 0.5, 1.0]
            c2 = P.proj(c3[None])[0]
            r_px = geo.iris_r * mm
            for rad, col, op in ((r_px, np.array(ident.iris, np.float32), 1.0),
                                 (r_px * 0.45, np.zeros(3, np.float32), 1.0)):
                m = np.zeros((box[3] - box[1], box[2] - box[0]), np.uint8)
                cv2.circle(m, tuple(np.round((c2 - box[:2]) * 16).astype(int)), int(round(rad * 16)), 255, -1,
                           cv2.LINE_AA, 4)
                a = m.astype(np.float32) * np.float32(1 / 255) * eye_a
                L.paint(a * op, box, col, None)
            ring = np.zeros((box[3] - box[1], box[2] - box[0]), np.uint8)
            cv2.circle(ring, tuple(np.round((c2 - box[:2]) * 16).astype(int)), int(round(r_px * 16)), 255,
                       max(1, int(round(0.18 * r_px))), cv2.LINE_AA, 4)
            L.paint(ring.astype(np.float32) / 255 * eye_a * 0.6, box, np.array(ident.iris, np.float32) * 0.35, None)
            if state.light > 0.05:
                hl = c2 + np.array([-0.35, -0.4]) * r_px + np.array([np.sin(np.radians(state.light_azimuth)), 0]) * r_px * 0.3
                m = np.zeros_like(ring)
                cv2.circle(m, tuple(np.round((hl - box[:2]) * 16).astype(int)), int(round(max(0.6, 0.22 * r_px) * 16)),
                           255, -1, cv2.LINE_AA, 4)
                L.paint(m.astype(np.float32) / 255 * eye_a * 0.85, box, np.ones(3, np.float32), None)
            # upper shadow of the lid on the eyeball
            sh = D.stroke([upper], box, max(1.0, 0.22 * np.linalg.norm(e[0] - e[3]) * 0.5))
            L.paint(sh * eye_a * 0.35, box, skin * 0.35, None)
        # lids and lashes
        lb = _intersect(D.bbox(opening, 4, self.W, self.H), roi)
        if lb is not None:
            sy, sx = D.sub(roi, lb)
            la = D.stroke([upper], lb, lid_t) * head_a[sy, sx]
            L.paint(la * 0.9, lb, np.array([0.07, 0.05, 0.045], np.float32), None)
            lo = D.stroke([lower], lb, max(1.0, lid_t * 0.5)) * head_a[sy, sx]
            L.paint(lo * 0.35, lb, skin * 0.45, None)
        # crease line and socket shading
        cr = P.proj(geo.lid_crease[k])
        D.stroke([D.catmull_rom(cr, 4)], roi, max(1.0, 0.9 * mm), value=150, out=ao_f)

    def _draw_beard(self, P: _Posed, ident: Identity, L: "_Layers", roi: D.Box, head_a: np.ndarray) -> None:
        g = P.geo.lm
        lm = P.lm2d
        style = ident.beard
        polys = []
        z = lambda x, y: 88.0 - 0.0105 * x * x - 0.0022 * np.maximum(y - 40.0, 0.0) ** 2  # noqa: E731
        mo_top = (g[33, 1] + g[51, 1]) / 2
        if style in ("full", "stubble"):
            cheek_y = 0.5 * (g[31, 1] + g[48, 1])
            up_pts = [[-62, 12], [-50, cheek_y - 4], [-34, cheek_y + 6], [-24, mo_top], [0, mo_top - 1],
                      [24, mo_top], [34, cheek_y + 6], [50, cheek_y - 4], [62, 12]]
            up3 = np.array([[x, y, z(x, y) + 2] for x, y in up_pts])
            poly = np.concatenate([P.proj(up3), lm[16:13:-1], lm[13:2:-1], lm[2:0:-1]])
            polys.append(poly)
        if style in ("moustache", "goatee"):
            mo = np.array([[-26, g[48, 1] + 2], [-16, mo_top - 2], [0, mo_top - 3], [16, mo_top - 2],
                           [26, g[54, 1] + 2], [14, g[51, 1] + 1], [0, g[51, 1] + 1], [-14, g[51, 1] + 1]])
            polys.append(P.proj(np.array([[x, y, z(x, y) + 5] for x, y in mo])))
        if style == "goatee":
            gt = np.array([[-16, g[57, 1] + 1], [16, g[57, 1] + 1], [14, g[8, 1] - 3], [0, g[8, 1]],
                           [-14, g[8, 1] - 3]])
            polys.append(P.proj(np.array([[x, y, z(x, y) + 2] for x, y in gt])))
        if not polys:
            return
        dens = ident.beard_density
        self._feature(L, polys, roi, head_a, np.array(ident.hair, np.float32) * 0.85, -2.2 * dens,
                      opacity=dens, soft=1.2 * P.ppm, texture=0.55 if style != "stubble" else 0.8)

    def _draw_mouth(self, P: _Posed, ident: Identity, state: FaceState, L: "_Layers", roi: D.Box,
                    head_a: np.ndarray, ao_f: np.ndarray) -> None:
        lm, mm = P.lm2d, P.ppm
        outer = D.catmull_rom(lm[48:60], 5, closed=True)
        lips = np.array(ident.lips, np.float32)
        self._feature(L, [outer], roi, head_a, lips, 0.4, opacity=0.9, soft=0.35 * mm)
        up_in = D.catmull_rom(lm[[48, 60, 61, 62, 63, 64, 54]], 4)
        upper_lip = np.concatenate([D.catmull_rom(lm[48:55], 4), up_in[::-1]])
        self._feature(L, [upper_lip], roi, head_a, lips * 0.82, 0.0, opacity=0.7)
        inner = D.catmull_rom(lm[60:68], 5, closed=True)
        gap = float(np.linalg.norm(lm[66] - lm[62]))
        if gap > 1.2:
            res = self._feature(L, [inner], roi, head_a, np.array([0.22, 0.06, 0.07], np.float32), 0.0,
                                opacity=1.0, temp_abs=None)
            if res is not None:
                a_in, box = res
                L.T[box[1]:box[3], box[0]:box[2]] += a_in * np.float32(1.4)
                teeth_h = min(gap * 0.45, 6.0 * mm) if (state.smile + state.mouth_open + state.surprise) > 0.05 else 0
                if teeth_h > 0.8:
                    top = D.catmull_rom(lm[[60, 61, 62, 63, 64]], 4)
                    band = np.concatenate([top, top[::-1] + P.up * -teeth_h])
                    t = D.fill([band], box) * a_in
                    L.paint(t * 0.95, box, np.array([0.92, 0.9, 0.84], np.float32), None)
        # the line where the lips meet
        D.stroke([up_in[1:-1]], roi, max(1.0, 0.9 * mm), value=200, out=ao_f)

    # ------------------------------------------------------------------ hair
    def _draw_hair(self, P: _Posed, ident: Identity, L: "_Layers", roi: D.Box, amb: float, vol: float,
                   head_a: np.ndarray, core: float) -> None:
        style = ident.hair_style
        geo = P.geo
        shell = geo.head_radii + np.array([vol, vol * 1.15, vol])
        a_sh, hit, nrm = self._raycast(P, geo.head_center, shell, roi, L.cv)
        # work only on the pixels that see the shell (1-D gathers), then scatter back
        idx = np.flatnonzero(a_sh > 0.002)
        if idx.size == 0:
            return
        c0 = geo.head_center.astype(np.float32)
        k = (geo.head_radii / shell).astype(np.float32)
        # map the shell point back onto the scalp proportionally, then test the hair zone
        hx = (hit[0].ravel()[idx] - c0[0]) * k[0] + c0[0]
        hy = (hit[1].ravel()[idx] - c0[1]) * k[1] + c0[1]
        hz = (hit[2].ravel()[idx] - c0[2]) * k[2] + c0[2]
        theta = np.degrees(np.arctan2(np.abs(hx), hz)).astype(np.float32, copy=False)
        yf = -70.0 + 48.0 * ident.hairline
        knots = [0, 30, 60, 78, 88, 100, 130, 180]
        if style == "short":
            vals = [yf, yf + 4, -28, 4, 12, -14, 25, 48]
        elif style == "medium":
            vals = [yf, yf + 3, -25, -8, 30, 35, 50, 70]
        elif style == "long":
            vals = [yf, yf + 3, -22, -4, 60, 75, 90, 110]
        else:  # bald: a horseshoe fringe
            vals = [-400, -400, -400, -400, 8, 10, 25, 40]
        yline = np.interp(theta, knots, vals).astype(np.float32)
        if style in ("medium", "long") and abs(ident.hair_part) > 0:
            yline += np.float32(ident.hair_part * 0.25) * hx * (theta < 60)
        # self._tex[iy % 128, ix % 128] as one flat take (x % 128 == x & 127, negatives included)
        tex = np.take(self._tex.ravel(), (((hy * 1.3).astype(np.int32) & 127) << 7) | ((hx * 1.3).astype(np.int32) & 127))
        yline += (tex - 0.5) * 5.0
        zone = np.clip((yline - hy) * 0.5 + 0.5, 0.0, 1.0)
        if style == "bald":
            low = np.interp(theta, [0, 85, 100, 180], [400, 400, -16, -48]).astype(np.float32)
            zone *= np.clip((hy - low) * 0.5 + 0.5, 0.0, 1.0)
        # only the pixels with hair (zone > 0) are painted: carry on with those, in the bounding box
        # of them (elsewhere the alpha is 0 and the layer changes nothing)
        keep = np.flatnonzero(zone)
        L.box = D.union(L.box, roi)  # the lighting still covers the whole layer box
        L.spec_box = D.union(L.spec_box, roi)
        if keep.size == 0:
            return
        idx, zone, hx, hy, yline, theta, tex = (v[keep] for v in (idx, zone, hx, hy, yline, theta, tex))
        thick = np.clip((yline - hy) * np.float32(1 / 14.0), 0.0, 1.0)
        sidx = ((np.copysign(theta, hx) * 3.0 + hy * 0.04 + tex * 6.0 + ident.index * 37).astype(np.int32)) \
            % len(self._strands)
        strand = 0.6 * self._strands[sidx] + 0.4 * tex
        shade = 0.8 + 0.35 * strand
        hc = np.array(ident.hair, np.float32)
        t1 = np.float32(amb + 4.0) + np.float32(0.55 * (core - amb - 4.0)) * (1 - thick) + (strand - 0.5) * 0.8
        rows, cols = np.divmod(idx, a_sh.shape[1])
        r0, r1, q0, q1 = int(rows[0]), int(rows[-1]) + 1, int(cols.min()), int(cols.max()) + 1  # idx is sorted
        loc = (rows - r0) * (q1 - q0) + (cols - q0)  # flat index inside the sub-box
        a = np.zeros((r1 - r0, q1 - q0), np.float32)
        a.ravel()[loc] = a_sh[r0:r1, q0:q1].ravel()[loc] * zone
        col = np.zeros((3,) + a.shape, np.float32)
        for c in range(3):
            col[c].ravel()[loc] = shade * hc[c]
        t_hair = np.zeros(a.shape, np.float32)
        t_hair.ravel()[loc] = t1
        sub = (roi[0] + q0, roi[1] + r0, roi[0] + q1, roi[1] + r1)
        L.paint(a, sub, col, t_hair, nrm[:, r0:r1, q0:q1], 0.18)

    # ------------------------------------------------------------------ occlusions
    def _draw_occlusions(self, P: _Posed, ident: Identity, state: FaceState, L: "_Layers", amb: float,
                         core: float) -> None:
        occ = state.occlusions
        if not occ:
            return
        W, H = self.W, self.H
        geo, mm = P.geo, P.ppm
        rng = np.random.default_rng([ident.seed, ident.index, 0x0CC])
        if "scarf" in occ:
            th = np.radians(np.linspace(-105, 105, 29))
            ytop = geo.lm[57, 1] + 9.0 + (45.0 - geo.lm[57, 1] - 9.0) * 0.0
            y = ytop + (12.0 - ytop) * (np.abs(np.sin(th)) ** 2) * 0.55 + 8 * np.abs(np.sin(th)) ** 4
            ring = np.stack([78 * np.sin(th), y, 6 + 92 * np.cos(th)], 1)
            top2d = P.proj(ring)
            ends = P.view(ring[[-1, 0]])
            ends[:, 1] += 260.0
            ends[:, 0] *= 1.5
            poly = np.concatenate([top2d, P.cam.project(ends)])
            box = D.bbox(poly, 2, W, H)
            if box is not None:
                a = D.fill([poly], box)
                c1 = np.array(ident.clothing2, np.float32) * 0.85 + 0.1
                c2 = np.array(ident.clothing, np.float32)
                vv = self._ys[box[1]:box[3]][:, None] + 0.3 * self._xs[box[0]:box[2]][None, :]
                stripe = (np.sin(vv / max(2.0, 9 * mm) * 2 * np.pi) > 0.3).astype(np.float32)
                knit = self._tex_tile(5, box)
                col = np.stack([(c1[c] + (c2[c] - c1[c]) * stripe) * (0.85 + 0.25 * knit) for c in range(3)])
                tmap = np.float32(amb + 7.5) + 0.8 * knit
                D.add_gauss(tmap, box, top2d[len(top2d) // 2], 25 * mm, 1.5)
                nx = np.clip((self._xs[box[0]:box[2]] - top2d[:, 0].mean()) / max(np.ptp(top2d[:, 0]) / 2, 1), -0.9, 0.9)
                n = np.stack(np.broadcast_arrays(nx[None, :], np.float32(-0.1), np.sqrt(1 - nx * nx)[None, :]))
                L.paint(a, box, col, tmap, n.astype(np.float32), 0.0)
        if "hand_mouth" in occ or "hand_cheek" in occ:
            self._draw_hand(P, ident, state, L, "mouth" if "hand_mouth" in occ else "cheek", core)
        for kind in ("cap", "beanie"):
            if kind in occ:
                self._draw_hat(P, ident, L, kind, amb, rng)
        for kind in ("glasses", "sunglasses"):
            if kind in occ:
                self._draw_glasses(P, ident, L, kind, amb, rng)

    def _draw_hand(self, P: _Posed, ident: Identity, state: FaceState, L: "_Layers", where: str,
                   core: float) -> None:
        W, H = self.W, self.H
        mm = P.ppm
        if where == "mouth":
            c = np.array([-2.0, P.geo.lm[62, 1] + 2.0, 112.0])
            fd = _norm([1.0, -0.3, -0.15])
        else:
            c = np.array([-52.0, 48.0, 84.0])
            fd = _norm([0.25, -1.0, -0.1])
        nrm_h = np.array([0.0, 0.0, 1.0])
        ac = _norm(np.cross(nrm_h, fd))
        drop = (1.0 - float(np.clip(state.hand, 0.0, 1.0))) * 320.0

        def hp(p: np.ndarray) -> np.ndarray:
            v = P.view(p)
            v[..., 1] += drop
            return P.cam.project(v)

        palm3 = np.array([c + fd * 40 + ac * 40, c + fd * 42 - ac * 38, c - fd * 40 - ac * 34, c - fd * 42 + ac * 36])
        fingers = []
        for off, ln in ((-28, 62), (-9, 76), (10, 72), (28, 58)):
            base = c + fd * 36 + ac * off
            fingers.append(np.array([base, base + fd * ln * 0.55 + ac * off * 0.08,
                                     base + fd * ln + ac * off * 0.15 - nrm_h * 6]))
        thumb = np.array([c - fd * 20 + ac * 36, c + fd * 5 + ac * 58, c + fd * 30 + ac * 66])
        wrist = np.array([c - fd * 40 - ac * 30, c - fd * 40 + ac * 32])
        wv = P.view(wrist)
        wv[:, 1] += drop
        far = wv.copy()
        far[:, 1] += 380.0
        far[:, 0] += -60.0 if where == "mouth" else -40.0
        arm2d = P.cam.project(np.concatenate([wv, far[::-1]]))
        palm2d = hp(palm3)
        f2d = [hp(f) for f in fingers]
        t2d = hp(thumb)
        allp = np.concatenate([arm2d, palm2d, *f2d, t2d])
        box = D.bbox(allp, 20 * mm, W, H)
        if box is None:
            return
        skin = skin_tone(ident) * np.array([1.0, 0.96, 0.95], np.float32)
        fw = 17.0 * mm
        a_f = np.zeros((box[3] - box[1], box[2] - box[0]), np.uint8)
        D.stroke(f2d + [t2d], box, fw * 1.12, value=255, out=a_f)
        a_out = a_f.astype(np.float32) / 255
        a_in = D.stroke(f2d + [t2d], box, fw * 0.88)
        a_palm = D.fill([palm2d], box)
        n = (P.R @ _norm([0.2, 0.1, 1.0])).astype(np.float32)
        L.paint(a_out, box, skin * 0.6, core - 3.4, n, 0.05)
        L.paint(a_in, box, skin, core - 3.0, n, 0.05)
        L.paint(a_palm, box, skin, core - 1.2, n, 0.05)
        a_arm = D.fill([arm2d], box)
        L.paint(a_arm, box, skin * 0.95, core - 1.6, n, 0.03)

    def _draw_hat(self, P: _Posed, ident: Identity, L: "_Layers", kind: str, amb: float,
                  rng: np.random.Generator) -> None:
        geo = P.geo
        vol = min(ident.hair_volume, 8.0) if ident.hair_style != "bald" else 2.0
        r = geo.head_radii + np.array([vol + 5, vol + 5, vol + 5])
        c0 = geo.head_center
        cut = -42.0 if kind == "cap" else -34.0
        rise = 12.0 if kind == "cap" else 6.0
        corners = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)]) * r + c0
        box = D.bbox(P.proj(corners), 3, self.W, self.H)
        col = rng.uniform(0.05, 0.85, 3).astype(np.float32)
        if kind == "cap":
            th = np.radians(np.linspace(-180, 180, 36, endpoint=False))
            tv = np.radians(np.linspace(-75, 75, 15))
            yb = cut + 1.0
            rr = np.sqrt(np.clip(1 - ((yb - c0[1]) / r[1]) ** 2, 0, 1))
            inner = np.stack([r[0] * rr * np.sin(tv), np.full_like(tv, yb), c0[2] + r[2] * rr * np.cos(tv)], 1)
            outer = inner.copy()
            outer[:, 2] += 68.0 * np.cos(tv) ** 0.8
            outer[:, 0] *= 1.05
            outer[:, 1] += 8.0 * np.cos(tv)
            visor = P.proj(np.concatenate([inner, outer[::-1]]))
            box = D.union(box, D.bbox(visor, 3, self.W, self.H))
        if box is None:
            return
        # the dome: ray-cast the hat ellipsoid, keep what lies above the (tilted) rim
        a_sh, hit, nrm = self._raycast(P, c0, r, box, L.cv)
        theta = np.arctan2(hit[0] - np.float32(c0[0]), hit[2] - np.float32(c0[2]))
        ycut_px = np.float32(cut) + np.float32(rise / 2) * (1 - np.cos(theta))
        a = a_sh * np.clip((ycut_px - hit[1]) * 0.7 + 0.5, 0.0, 1.0)
        knit = self._tex_tile(4, box)
        colmap = np.stack([col[c] * (0.9 + 0.2 * knit) for c in range(3)])
        L.paint(a, box, colmap, amb + 4.0 + 0.5 * knit, nrm, 0.04)
        th = np.radians(np.linspace(-180, 180, 36, endpoint=False))
        ycut = cut + rise * (1 - np.cos(th)) / 2
        if kind == "beanie":
            band = P.proj(np.stack([r[0] * np.sqrt(np.clip(1 - ((ycut - 8 - c0[1]) / r[1]) ** 2, 0, 1)) * np.sin(th),
                                    ycut - 8, c0[2] + r[2] * np.sqrt(np.clip(1 - ((ycut - 8 - c0[1]) / r[1]) ** 2, 0, 1))
                                    * np.cos(th)], 1)[np.cos(th) > -0.1])
            s = D.stroke([band], box, max(1.0, 1.5 * P.ppm))
            L.paint(s * 0.5, box, col * 0.6, None)
        if kind == "cap":
            av = D.fill([visor], box)
            L.paint(av, box, col * 0.92, amb + 2.5, (P.R @ _norm([0, -0.9, 0.4])).astype(np.float32), 0.03)
            edge = D.stroke([P.proj(outer)], box, max(1.0, 1.6 * P.ppm))
            L.paint(edge * 0.6, box, col * 0.5, None)

    def _draw_glasses(self, P: _Posed, ident: Identity, L: "_Layers", kind: str, amb: float,
                      rng: np.random.Generator) -> None:
        geo, mm = P.geo, P.ppm
        sun = kind == "sunglasses"
        rx, ry = (27.0, 21.0) if sun else (23.5, 16.5)
        t = np.linspace(0, 2 * np.pi, 28, endpoint=False)
        ct, st = np.cos(t), np.sin(t)
        shape = np.stack([np.sign(ct) * np.abs(ct) ** 0.7, np.sign(st) * np.abs(st) ** 0.8], 1)
        lenses, rims3 = [], []
        for k, idx in enumerate((range(36, 42), range(42, 48))):
            e = geo.lm[list(idx)].mean(axis=0)
            cx = e[0] + (-2.0 if k == 0 else 2.0)
            p = np.stack([cx + rx * shape[:, 0], e[1] + 1.5 + ry * shape[:, 1], np.full(len(t), 0.0)], 1)
            p[:, 2] = geo.lm[[39, 42]][:, 2].max() + 11.0 - 0.006 * p[:, 0] ** 2
            rims3.append(p)
            lenses.append(P.proj(p))
        inner_l = rims3[0][np.argmax(rims3[0][:, 0])]
        inner_r = rims3[1][np.argmin(rims3[1][:, 0])]
        bridge = P.proj(np.array([inner_l, [0.0, geo.lm[28, 1] - 8.0, geo.lm[28, 2] + 4.0], inner_r]))
        temples = []
        for k, sgn in ((0, -1.0), (1, 1.0)):
            out_pt = rims3[k][np.argmin(rims3[k][:, 0])] if k == 0 else rims3[k][np.argmax(rims3[k][:, 0])]
            ear_top = np.array([sgn * (geo.head_radii[0] + 1.0), -6.0, -4.0])
            if P.facing([sgn, 0, 0]) > -0.15:
                temples.append(P.proj(np.array([out_pt, ear_top])))
        allp = np.concatenate(lenses + [bridge] + temples)
        box = D.bbox(allp, 4, self.W, self.H)
        if box is None:
            return
        frame_col = rng.choice([[0.05, 0.05, 0.05], [0.25, 0.15, 0.08], [0.55, 0.55, 0.58], [0.15, 0.15, 0.3]]) \
            .astype(np.float32)
        a_lens = D.fill(lenses, box)
        n = (P.R @ np.array([0, 0, 1.0])).astype(np.float32)
        lens_t = amb + (2.0 if sun else 3.0)
        if sun:
            L.paint(a_lens * 0.92, box, np.array([0.04, 0.04, 0.05], np.float32), lens_t, n, 0.6)
        else:
            L.paint(a_lens * 0.12, box, np.array([0.85, 0.92, 1.0], np.float32), None, None, 0.5)
            x0, y0, x1, y1 = box
            L.T[y0:y1, x0:x1] += a_lens * (np.float32(lens_t) - L.T[y0:y1, x0:x1])  # opaque, cold
        rim_w = (2.2 if sun else 1.6) * mm
        a_rim = D.stroke(lenses, box, rim_w, closed=True)
        a_br = D.stroke([bridge] + temples, box, rim_w)
        L.paint(np.maximum(a_rim, a_br), box, frame_col, amb + 4.0, n, 0.3)

    # ------------------------------------------------------------------ lighting and sensors
    def _shade(self, P: _Posed, state: FaceState, L: "_Layers", shadow: Optional[np.ndarray],
               roi: Optional[D.Box], rng: np.random.Generator, cv: "_Canvas") -> np.ndarray:
        # (in-place numpy with ``out=``: the very float32 operations of the plain expressions in the
        # comments, in the same order up to commutation, without full-frame temporaries)
        W, H = self.W, self.H
        az, el = float(np.radians(state.light_azimuth)), float(np.radians(state.light_elevation))
        Ld = np.array([np.sin(az) * np.cos(el), -np.sin(el), np.cos(az) * np.cos(el)], np.float32)
        amb = float(np.clip(state.ambient, 0.0, 1.0))
        light = float(np.clip(state.light, 0.0, 1.5))
        gain = float(np.clip(0.9 / max(light, 1e-3), 1.0, 2.6))
        expo = np.float32(light * gain)
        zero = np.float32(0.0)
        bg_shade = np.float32(amb + (1 - amb) * max(float(Ld[2]), 0.2) * 0.85) * \
            (1 + np.float32(0.35 * np.sin(az)) * self._gx)
        lum = cv.lum
        lum[:] = np.sqrt(bg_shade * expo)
        # sensor noise first (same random stream as before): add = noise + black level
        sigma = 0.004 + 0.007 * gain
        cv2.setRNGSeed(int(rng.integers(0, 2 ** 31 - 1)))  # OpenCV's per-thread RNG, seeded from rng
        add = cv.add
        cv2.randn(add, 0.0, sigma)
        cnoise = cv.cnoise
        cv2.randn(cnoise, (0.0, 0.0, 0.0), (sigma * 0.6,) * 3)
        add += np.float32(0.006)
        if L.box is not None:
            x0, y0, x1, y1 = L.box
            N = L.N[:, y0:y1, x0:x1]
            # diff = max(N . Ld, 0)
            diff = np.multiply(N[0], Ld[0])
            tmp = np.multiply(N[1], Ld[1])
            diff += tmp
            diff += np.multiply(N[2], Ld[2], out=tmp)
            np.maximum(diff, zero, out=diff)
            if shadow is not None and roi is not None:
                sb = _intersect(roi, L.box)
                if sb is not None:
                    diff[sb[1] - y0:sb[3] - y0, sb[0] - x0:sb[2] - x0] *= 1.0 - shadow[sb[1] - roi[1]:sb[3] - roi[1],
                                                                                     sb[0] - roi[0]:sb[2] - roi[0]]
            # shade = amb * 0.75 + amb * 0.25 * N[2] + (1 - amb) * diff, blended over the background
            # shade by the person mask: bgb + person * (shade - bgb)
            shade = np.multiply(N[2], np.float32(amb * 0.25), out=tmp)
            shade += np.float32(amb * 0.75)
            diff *= np.float32(1 - amb)
            shade += diff
            bgb = bg_shade[:, x0:x1]
            shade -= bgb
            shade *= L.person[y0:y1, x0:x1]
            shade += bgb
            shade *= expo
            np.maximum(shade, zero, out=shade)
            np.sqrt(shade, out=lum[y0:y1, x0:x1])  # ~display gamma
        if L.spec_box is not None:
            x0, y0, x1, y1 = L.spec_box
            N = L.N[:, y0:y1, x0:x1]
            hv = Ld + np.array([0, 0, 1.0], np.float32)
            hv /= np.linalg.norm(hv)
            # add += spec * max(N . hv, 0) ** 24 * expo
            ndh = np.multiply(N[0], hv[0])
            tmp = np.multiply(N[1], hv[1])
            ndh += tmp
            ndh += np.multiply(N[2], hv[2], out=tmp)
            np.maximum(ndh, zero, out=ndh)
            np.multiply(ndh, ndh, out=ndh)  # n2
            np.multiply(ndh, ndh, out=ndh)  # n4
            np.multiply(ndh, ndh, out=ndh)  # n8
            n24 = np.multiply(ndh, ndh, out=tmp)
            n24 *= ndh
            n24 *= L.spec[y0:y1, x0:x1]
            n24 *= expo
            add[y0:y1, x0:x1] += n24
        # vis = merge(alb[c] * lum + add) + the chroma noise (upsampled), clipped, to uint8
        rgb = np.multiply(L.alb, lum, out=cv.rgb)
        rgb += add
        vis = cv2.merge([rgb[0], rgb[1], rgb[2]], cv.vis)
        vis += cv2.resize(cnoise, (W, H), cv.cnoise_up, interpolation=cv2.INTER_NEAREST)
        np.clip(vis, 0.0, 1.0, out=vis)
        out = cv2.convertScaleAbs(vis, alpha=255.0)
        if self.jpeg:
            q = int(rng.integers(55, 96))
            ok, buf = cv2.imencode(".jpg", cv2.cvtColor(out, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, q])
            if ok:
                out = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        return out

    def _thermal_sensor(self, T: np.ndarray, state: FaceState,
                        rng: np.random.Generator) -> tuple[np.ndarray, Optional[np.ndarray]]:
        W, H = self.W, self.H
        Hm = None
        if state.misregistered:
            Hm = misregistration_homography(W, H, state.th_dx, state.th_dy, state.th_scale, state.th_rot)
            T = cv2.warpPerspective(T, Hm, (W, H), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                    borderMode=cv2.BORDER_REPLICATE)
        s = cv2.resize(T, (self.sw, self.sh), interpolation=cv2.INTER_AREA)
        s = D.blur(s, 0.7)
        s = s + self._fpn + self._vignette + rng.standard_normal(s.shape, dtype=np.float32) * np.float32(0.06)
        out = cv2.resize(s, (W, H), interpolation=cv2.INTER_LINEAR)
        return out.astype(np.float32, copy=False), Hm


class _Canvas:
    """Full-frame float32 scratch canvases of one render (reused by the next one)."""

    def __init__(self, W: int, H: int) -> None:
        self.alb = np.empty((3, H, W), np.float32)
        self.N = np.empty((3, H, W), np.float32)
        self.T = np.empty((H, W), np.float32)
        self.spec = np.empty((H, W), np.float32)
        self.person = np.empty((H, W), np.float32)
        # lighting (_shade)
        self.lum = np.empty((H, W), np.float32)
        self.add = np.empty((H, W), np.float32)
        self.cnoise = np.empty((H // 2, W // 2, 3), np.float32)
        self.cnoise_up = np.empty((H, W, 3), np.float32)
        self.rgb = np.empty((3, H, W), np.float32)
        self.vis = np.empty((H, W, 3), np.float32)
        self._scratch: dict[str, np.ndarray] = {}

    def scratch(self, key: str, shape: tuple[int, ...]) -> np.ndarray:
        """An uninitialised float32 array of ``shape`` in the (grow-only) scratch block ``key``."""
        n = int(np.prod(shape))
        buf = self._scratch.get(key)
        if buf is None or buf.size < n:  # grow with headroom: the boxes change a little every frame
            buf = self._scratch[key] = np.empty(n + n // 4 + 1024, np.float32)
        return buf[:n].reshape(shape)


class _Layers:
    """The canvases every layer paints into: colour, temperature, normal, specular, person mask."""

    def __init__(self, alb: np.ndarray, T: np.ndarray, N: np.ndarray, spec: np.ndarray, person: np.ndarray,
                 cv: Optional[_Canvas] = None):
        self.alb, self.T, self.N, self.spec, self.person = alb, T, N, spec, person
        self.cv = cv  # scratch memory of this render
        self.box: Optional[D.Box] = None      # union of the surface layers (lighting is computed there)
        self.spec_box: Optional[D.Box] = None  # union of the layers with a specular weight

    def paint(self, a: np.ndarray, box: D.Box, rgb, temp=None, normal=None, spec=None) -> None:
        if spec is not None:
            self.spec_box = D.union(self.spec_box, box)
        if normal is not None:
            self.box = D.union(self.box, box)
        if a.size >= _CROP_MIN_PX:
            # a zero alpha leaves a pixel as it is: blend only inside the bounding box of the
            # non-zero alpha (the lighting boxes above stay those of the whole layer)
            x, y, w, h = cv2.boundingRect(cv2.compare(a, 0.0, cv2.CMP_NE))
            if w == 0:
                return
            if w * h < a.size:
                sy, sx = slice(y, y + h), slice(x, x + w)
                box = (box[0] + x, box[1] + y, box[0] + x + w, box[1] + y + h)
                a = a[sy, sx]
                rgb, temp, normal, spec = (_crop(v, sy, sx) for v in (rgb, temp, normal, spec))
        if rgb is not None:
            D.paint(self.alb, a, box, rgb)
        if temp is not None:
            D.paint(self.T, a, box, temp)
        if normal is not None:
            D.paint(self.N, a, box, normal)
        if spec is not None:
            D.paint(self.spec, a, box, spec)
        if normal is not None:
            D.paint(self.person, a, box, 1.0)


_CROP_MIN_PX = 2048  # alpha masks from this size on are cropped to their non-zero part before blending


def _crop(v, sy: slice, sx: slice):
    """A per-pixel colour (..., h, w) of a box cut to the sub-box; scalars, vectors and broadcast
    axes (length 1) pass as they are."""
    if not isinstance(v, np.ndarray) or v.ndim < 2:
        return v
    return v[..., sy if v.shape[-2] != 1 else slice(None), sx if v.shape[-1] != 1 else slice(None)]


def skin_tone(ident: Identity) -> np.ndarray:
    return np.array(ident.skin, np.float32)


def _intersect(a: Optional[D.Box], b: Optional[D.Box]) -> Optional[D.Box]:
    if a is None or b is None:
        return None
    x0, y0, x1, y1 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1, y1


def _height_shadow(hb: np.ndarray, state: FaceState) -> np.ndarray:
    """Cast shadow of a height field (pixels) for the state's light (0 none .. 1 full)."""
    az, el = np.radians(state.light_azimuth), np.radians(state.light_elevation)
    lx, ly, lz = np.sin(az) * np.cos(el), -np.sin(el), np.cos(az) * np.cos(el)
    lxy = float(np.hypot(lx, ly))
    if lxy < 0.25:
        return np.zeros_like(hb)
    dx, dy = lx / lxy, ly / lxy
    slope = lz / lxy
    out = np.zeros_like(hb)
    for step in (2.0, 4.0, 7.0, 11.0):
        M = np.float32([[1, 0, dx * step], [0, 1, dy * step]])
        sh = cv2.warpAffine(hb, M, (hb.shape[1], hb.shape[0]), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                            borderMode=cv2.BORDER_REPLICATE)
        out = np.maximum(out, sh - hb - np.float32(slope * step))
    return np.clip(out / 3.0, 0.0, 0.85)


def misregistration_homography(width: int, height: int, dx: float = 0.0, dy: float = 0.0,
                               scale: float = 1.0, rot_deg: float = 0.0) -> np.ndarray:
    """Thermal -> visible pixel homography: scale and rotate about the frame centre, then shift."""
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    c, s = np.cos(np.radians(rot_deg)) * scale, np.sin(np.radians(rot_deg)) * scale
    return np.array([[c, -s, cx - c * cx + s * cy + dx],
                     [s, c, cy - s * cx - c * cy + dy],
                     [0.0, 0.0, 1.0]])


def _agc(th_c: np.ndarray) -> np.ndarray:
    """White-hot 8-bit display with a per-frame automatic gain (robust min/max)."""
    sample = th_c[::3, ::3]
    lo, hi = np.percentile(sample, [1.0, 99.7])
    hi = max(hi, lo + 2.0)
    v = np.subtract(th_c, lo)  # clip((th_c - lo) * (255 / (hi - lo)) + 0.5, 0, 255), in place (float64)
    v *= 255.0 / (hi - lo)
    v += 0.5
    np.clip(v, 0, 255, out=v)
    return v.astype(np.uint8)
