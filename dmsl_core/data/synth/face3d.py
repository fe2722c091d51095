"""3D face geometry of the synthetic generator: mean face, shape modes, expressions, pose, camera.

Units are millimetres. The *head frame* has x to the image right of a frontal face (the subject's
left), y down and z out of the face towards the camera; its origin is the head's rotation centre
(between the ears, at eye level). The 68 landmarks follow the iBUG scheme, 0-based
(see :mod:`dmsl_core.landmarks`).

Everything here is small-array numpy (a few hundred points), so a whole geometry is built and
projected in well under a millisecond; the renderer draws from exactly these projections, which
is what makes the ground truth exact.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, fields
from typing import Mapping

import numpy as np

N_ARC = 33  # samples per jaw silhouette arc

# ----------------------------------------------------------------------------------------------
# Mean face (frontal layout, mm). Jaw 0-16 is generated parametrically in build_geometry.
# ----------------------------------------------------------------------------------------------
_MEAN_XY = np.zeros((68, 2))
_MEAN_XY[17:27] = [[-55, -13], [-46, -19.5], [-34, -22], [-22, -21.5], [-11, -18],
                   [11, -18], [22, -21.5], [34, -22], [46, -19.5], [55, -13]]
_MEAN_XY[27:36] = [[0, -6], [0, 8], [0, 21], [0, 33.5],
                   [-14, 41], [-7.5, 44], [0, 45.5], [7.5, 44], [14, 41]]
_MEAN_XY[36:48] = [[-46, 0], [-38.5, -5.5], [-26.5, -6], [-16, 0], [-26.5, 4], [-38.5, 4],
                   [16, 0], [26.5, -6], [38.5, -5.5], [46, 0], [38.5, 4], [26.5, 4]]
_MEAN_XY[48:60] = [[-25, 66], [-16, 61], [-6.5, 58.5], [0, 59.5], [6.5, 58.5], [16, 61],
                   [25, 66], [16, 72.5], [7.5, 75.5], [0, 76], [-7.5, 75.5], [-16, 72.5]]
_MEAN_XY[60:68] = [[-21.5, 66], [-8, 64.3], [0, 64.6], [8, 64.3],
                   [21.5, 66], [8, 65.3], [0, 65.5], [-8, 65.3]]

# depth offsets from the face surface z_face(x, y): eyes sit in sockets, the nose sticks out ...
_DZ = np.zeros(68)
_DZ[17:27] = 2.0
_DZ[27:31] = [-1.0, 8.0, 16.0, 24.0]
_DZ[31:36] = [4.0, 10.0, 13.0, 10.0, 4.0]
_DZ[36:48] = -3.0
_DZ[[39, 42]] = -2.0
_DZ[48:60] = [-1, 4, 6.5, 7, 6.5, 4, -1, 4, 6, 6.5, 6, 4]
_DZ[60:68] = [-2, 3.5, 4.5, 3.5, -2, 3.5, 4.5, 3.5]


def z_face(x: np.ndarray, y: np.ndarray, depth: float = 0.0) -> np.ndarray:
    """Depth of the (landmark) face surface at head-frame (x, y)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    return 88.0 + depth - 0.0105 * x * x - 0.0022 * np.maximum(y - 40.0, 0.0) ** 2


@dataclass
class ShapeParams:
    """Identity shape modes, each in units of about one standard deviation (0 = mean face)."""

    head_width: float = 0.0
    head_height: float = 0.0
    face_length: float = 0.0
    jaw_width: float = 0.0
    jaw_square: float = 0.0
    chin: float = 0.0
    eye_spacing: float = 0.0
    eye_size: float = 0.0
    nose_length: float = 0.0
    nose_width: float = 0.0
    nose_depth: float = 0.0
    mouth_width: float = 0.0
    lip_thickness: float = 0.0
    brow_height: float = 0.0
    ear_size: float = 0.0

    @classmethod
    def random(cls, rng: np.random.Generator, spread: float = 1.0) -> "ShapeParams":
        vals = np.clip(rng.standard_normal(len(fields(cls))) * spread, -2.2, 2.2)
        return cls(*[float(v) for v in vals])


EXPRESSIONS = ("smile", "surprise", "anger", "disgust")


def _expr_delta(name: str) -> np.ndarray:
    """(68, 3) landmark displacement (mm) of one expression at full intensity."""
    d = np.zeros((68, 3))
    if name == "smile":
        d[[48, 54]] = [[-5, -6, -5], [5, -6, -5]]
        d[[49, 53]] = [[-3, -3, -1.5], [3, -3, -1.5]]
        d[[50, 52]] = [[-1.2, -2.0, 0], [1.2, -2.0, 0]]
        d[51] = [0, -1.8, 0]
        d[[59, 55]] = [[-3.5, -3.5, -1], [3.5, -3.5, -1]]
        d[[58, 56]] = [[-1.5, -1.0, 0], [1.5, -1.0, 0]]
        d[57] = [0, -0.5, 0]
        d[[60, 64]] = [[-4.5, -5.5, -4], [4.5, -5.5, -4]]
        d[[61, 63]] = [[-2.0, -3.5, 0], [2.0, -3.5, 0]]
        d[62] = [0, -3.5, 0]
        d[[67, 65]] = [[-2.0, 0.5, 0], [2.0, 0.5, 0]]
        d[66] = [0, 1.2, 0]
        d[[40, 41, 46, 47], 1] = -1.8
        d[[36, 45], 1] = -0.8
        d[[31, 35]] = [[-1.5, -1.0, 0], [1.5, -1.0, 0]]
    elif name == "surprise":
        d[17:27, 1] = [-5, -7.5, -8.5, -8, -6.5, -6.5, -8, -8.5, -7.5, -5]
        d[[37, 38, 43, 44], 1] = -2.6
        d[[40, 41, 46, 47], 1] = 0.8
        d[[48, 60]] += [4.5, 0, 0]
        d[[54, 64]] += [-4.5, 0, 0]
        d[[49, 59, 61, 67]] += [2.0, 0, 0]
        d[[53, 55, 63, 65]] += [-2.0, 0, 0]
    elif name == "anger":
        d[17:22] = [[0, 0.5, 0], [0.5, 1.5, 0], [1.5, 3.0, 0], [2.5, 4.5, 0], [3.5, 6.0, 0]]
        d[22:27] = d[17:22][::-1] * [-1, 1, 1]
        d[[37, 38, 43, 44], 1] = 1.8
        d[[40, 41, 46, 47], 1] = -0.8
        d[[48, 60]] += [2.5, 1.5, 0]
        d[[54, 64]] += [-2.5, 1.5, 0]
        d[[61, 62, 63], 1] += 0.6
        d[[65, 66, 67], 1] -= 0.6
        d[[55, 56, 57, 58, 59], 1] -= 1.0
        d[[31, 35]] = [[-2.0, -0.5, 0], [2.0, -0.5, 0]]
    elif name == "disgust":
        d[[49, 50, 51, 52, 53], 1] = [-4.0, -5.0, -5.0, -5.0, -4.0]
        d[[61, 62, 63], 1] = -4.0
        d[[48, 54], 1] = 1.5
        d[[60, 64], 1] = 0.5
        d[31:36, 1] = -2.0
        d[[31, 35]] += [[-1.5, 0, 0], [1.5, 0, 0]]
        d[17:27, 1] = [1, 2, 3, 3.5, 4, 4, 3.5, 3, 2, 1]
        d[[21, 22]] += [[2, 0, 0], [-2, 0, 0]]
        d[[40, 41, 46, 47], 1] = -2.2
        d[[37, 38, 43, 44], 1] = 1.5
    else:
        raise ValueError(f"unknown expression {name!r}; expected one of {EXPRESSIONS}")
    return d


_EXPR_DELTAS = {name: _expr_delta(name) for name in EXPRESSIONS}
_UPPER_LID = [37, 38, 43, 44]
_LOWER_LID = [41, 40, 47, 46]
_MOUTH_DROP = np.zeros(68)  # fraction of the jaw drop each point follows
_MOUTH_DROP[[55, 56, 57, 58, 59]] = [0.92, 0.98, 1.0, 0.98, 0.92]
_MOUTH_DROP[[65, 66, 67]] = [0.95, 1.0, 0.95]
_MOUTH_DROP[[48, 54, 60, 64]] = 0.42


def rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Head-frame -> view-frame rotation (degrees).

    yaw > 0 turns the nose towards the image right, pitch > 0 lifts the chin (looks up),
    roll > 0 tilts the head clockwise in the image.
    """
    y, p, r = np.radians([yaw, pitch, roll])
    cy, sy, cp, sp, cr, sr = np.cos(y), np.sin(y), np.cos(p), np.sin(p), np.cos(r), np.sin(r)
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return rz @ ry @ rx


@dataclass
class Camera:
    """Pinhole camera looking at the head; the head centre sits at view-frame origin.

    A view-frame point (x, y, z) (z towards the camera) is at camera depth ``dist - z`` and
    projects to ``(px + f * (x + tx) / depth, py + f * (y + ty) / depth)``.
    """

    f: float
    px: float
    py: float
    tx: float
    ty: float
    dist: float

    def project(self, p_view: np.ndarray) -> np.ndarray:
        p = np.asarray(p_view, dtype=np.float64)
        depth = self.dist - p[..., 2]
        out = np.empty(p.shape[:-1] + (2,))
        out[..., 0] = self.px + self.f * (p[..., 0] + self.tx) / depth
        out[..., 1] = self.py + self.f * (p[..., 1] + self.ty) / depth
        return out

    def px_per_mm(self, z: float = 0.0) -> float:
        return self.f / (self.dist - z)


@dataclass
class FaceGeometry:
    """Head-frame 3D points of one face (identity + expression), before pose."""

    lm: np.ndarray            # (68, 3) nominal landmarks (jaw at its frontal position)
    jaw_arcs: np.ndarray      # (17, N_ARC, 3) silhouette candidates per jaw point (front -> nominal)
    head_center: np.ndarray   # (3,) centre of the head ellipsoid
    head_radii: np.ndarray    # (3,) radii of the head ellipsoid
    ears: np.ndarray          # (2, 24, 3) ear outlines (image-left ear first)
    brows: np.ndarray         # (2, 2, 5, 3) upper/lower brow edges
    iris_r: float             # iris radius, mm
    lid_crease: np.ndarray    # (2, 5, 3) upper-lid crease polylines
    nostrils: np.ndarray      # (2, 3, 3) centre, half-axis-x end, half-axis-y end
    cheeks: np.ndarray        # (2, 3) cheek centres
    forehead: np.ndarray      # (3,) forehead centre
    mouth_open: float         # jaw drop, mm


@functools.lru_cache(maxsize=256)
def _shape_part(key: tuple[float, ...]) -> dict:
    """Everything of :func:`build_geometry` that depends on the identity shape alone (cached per
    shape value: a video of one identity re-uses it every frame). Read-only arrays."""
    s = ShapeParams(*key)
    xy = _MEAN_XY.copy()
    # identity shape modes (mm per SD)
    xy[36:48, 0] += np.sign(xy[36:48, 0]) * 1.8 * s.eye_spacing
    eye_c = np.array([xy[36:42].mean(0), xy[42:48].mean(0)])
    for k, sl in enumerate((slice(36, 42), slice(42, 48))):
        xy[sl] = eye_c[k] + (xy[sl] - eye_c[k]) * (1 + 0.07 * s.eye_size)
    xy[17:27, 0] += np.sign(xy[17:27, 0]) * 1.2 * s.eye_spacing
    xy[17:27, 1] -= 2.0 * s.brow_height
    nl = 1 + 0.08 * s.nose_length
    xy[28:36, 1] = xy[28:36, 1] * nl
    xy[31:36, 0] *= 1 + 0.1 * s.nose_width
    fl = 1 + 0.05 * s.face_length
    mouth_shift = (fl - 1) * 60 + (nl - 1) * 30
    xy[48:68, 1] += mouth_shift
    xy[48:68, 0] *= 1 + 0.07 * s.mouth_width
    lip = 1 + 0.15 * s.lip_thickness
    mc = 65.5 + mouth_shift
    xy[48:60, 1] = mc + (xy[48:60, 1] - mc) * lip
    dz = _DZ.copy()
    dz[28:36] *= 1 + 0.12 * s.nose_depth
    pts = np.zeros((68, 3))
    pts[:, :2] = xy

    # jaw: superellipse from ear to chin (the jaw drop is added per expression)
    t = (np.arange(17) - 8) / 8 * (np.pi / 2)
    n = 2.3 + 0.45 * s.jaw_square
    st, ct = np.abs(np.sin(t)), np.abs(np.cos(t))
    half_w = 70.0 + 3.0 * s.head_width
    jaw_x = np.sign(t) * half_w * st ** (2 / n) * (1 + 0.06 * s.jaw_width * ct ** 0.7)
    y_top, y_chin = 4.0, 113.0 + 60 * (fl - 1) + 4.0 * s.chin + mouth_shift * 0.5
    jaw_y = y_top + (y_chin - y_top) * ct ** (2 / n)
    drop_w = np.clip((ct - 0.25) / 0.75, 0, 1) ** 0.8
    chin_z = 3.0 * s.chin * ct
    phi = np.linspace(0.0, np.pi / 2, N_ARC)

    # head ellipsoid (skull + face bulk); the jaw polygon clips its lower part
    radii = np.array([77.0 + 3.0 * s.head_width, 130.0 + 4.0 * s.head_height, 106.0])
    center = np.array([0.0, 12.0 + 2.0 * s.head_height, -17.0])

    # ears: outline in the side plane, flaring out at the back
    a = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    es = 1 + 0.08 * s.ear_size
    top = np.maximum(-np.sin(a), 0.0)
    ez = -7.0 + 11.0 * es * np.cos(a) + 2.0 * top
    ey = 15.0 + 29.0 * es * -np.sin(a) * (1 - 0.12 * np.cos(a)) + 3.0 * np.sin(a) ** 2
    ex = radii[0] - 4.0 + (1 - np.cos(a)) / 2 * (7.0 + 6.0 * top) + 3.0 * top
    ear_r = np.stack([ex, ey, ez], axis=1)
    ears = np.stack([ear_r * [-1, 1, 1], ear_r])

    cheeks = np.array([[-40.0, 30.0, 0], [40.0, 30.0, 0]])
    cheeks[:, 2] = z_face(cheeks[:, 0], cheeks[:, 1])
    forehead = np.array([0.0, -48.0, z_face(0.0, -48.0)])
    out = dict(pts=pts, dz=dz, jaw_x=jaw_x, jaw_y=jaw_y, drop_w=drop_w, chin_z=chin_z, st14=st ** 1.4,
               sin_phi=np.sin(phi), cos_phi=np.cos(phi), radii=radii, center=center, ears=ears,
               cheeks=cheeks, forehead=forehead)
    for v in out.values():
        v.flags.writeable = False
    out["nw"] = 1 + 0.1 * s.nose_width
    out["iris_r"] = 5.8 * (1 + 0.03 * s.eye_size)
    return out


_SHAPE_FIELDS = tuple(f.name for f in fields(ShapeParams))
_LINSPACE_3_5 = np.linspace(0, 3, 5)
_ARANGE_4 = np.arange(4)


def build_geometry(shape: ShapeParams, expression: Mapping[str, float] | None = None,
                   mouth_open: float = 0.0, eyes_closed: float = 0.0) -> FaceGeometry:
    """3D landmarks and helper points of a face with the given shape and expression weights.

    ``expression`` maps names in :data:`EXPRESSIONS` to weights (0..1, may overlap);
    ``mouth_open`` is 0..1 (1 = jaw dropped ~22 mm); ``eyes_closed`` 0..1.
    """
    sp = _shape_part(tuple(getattr(shape, f) for f in _SHAPE_FIELDS))
    pts = sp["pts"].copy()

    # expression
    expr = dict(expression or {})
    for name, w in expr.items():
        if w:
            d = _EXPR_DELTAS[name]
            pts += w * d
    surprise = float(expr.get("surprise", 0.0))
    drop = 22.0 * float(np.clip(mouth_open + 0.75 * surprise, 0.0, 1.2))
    pts[:, 1] += _MOUTH_DROP * drop
    ec = float(np.clip(eyes_closed, 0.0, 1.0))
    if ec > 0:
        target = pts[_LOWER_LID, 1] - 0.4
        pts[_UPPER_LID, 1] += ec * (target - pts[_UPPER_LID, 1])
        pts[[36, 39, 42, 45], 1] += 0.8 * ec
    pts[:, 2] = z_face(pts[:, 0], pts[:, 1]) + sp["dz"]

    # jaw: superellipse from ear to chin, follows the jaw drop
    jaw_x = sp["jaw_x"]
    jaw_y = sp["jaw_y"] + drop * sp["drop_w"]
    zf = z_face(0.0, jaw_y) - 8.0 + sp["chin_z"]
    z_side = 8.0
    jaw_z = zf - (zf - z_side) * sp["st14"]
    pts[0:17, 0] = jaw_x
    pts[0:17, 1] = jaw_y
    pts[0:17, 2] = jaw_z
    arcs = np.empty((17, N_ARC, 3))
    arcs[:, :, 0] = jaw_x[:, None] * sp["sin_phi"][None]
    arcs[:, :, 1] = jaw_y[:, None]
    arcs[:, :, 2] = jaw_z[:, None] + (zf - jaw_z)[:, None] * sp["cos_phi"][None]

    # brows: tapered band around the brow polyline
    brows = np.zeros((2, 2, 5, 3))
    brows[0, :, :, :2] = pts[17:22, :2]
    brows[1, :, :, :2] = pts[26:21:-1, :2]
    brows[:, 0, :, 1] += _BROW_UP  # c + (0, -0.55 thick, 0) / c + (0, 0.45 thick, 0)
    brows[:, 1, :, 1] += _BROW_DOWN
    brows[:, :, :, 2] = z_face(brows[..., 0], brows[..., 1]) + 2.5

    # upper-lid crease: 4-5 mm above the upper lid
    crease = np.zeros((2, 5, 3))
    for k, idx in enumerate(([36, 37, 38, 39], [42, 43, 44, 45])):
        c = pts[idx]
        lidx = np.interp(_LINSPACE_3_5, _ARANGE_4, c[:, 0])
        lidy = np.interp(_LINSPACE_3_5, _ARANGE_4, c[:, 1])
        up = np.array([0.5, 4.2, 4.8, 4.0, 0.8]) * (1 - 0.25 * ec)
        crease[k, :, 0] = lidx
        crease[k, :, 1] = np.minimum(lidy, pts[idx[1:3], 1].min()) - up
        crease[k, :, 2] = z_face(crease[k, :, 0], crease[k, :, 1]) - 1.0

    # nostrils
    nos = np.zeros((2, 3, 3))
    nw = sp["nw"]
    for k, (a_i, b_i) in enumerate(((31, 32), (35, 34))):
        c = 0.45 * pts[a_i] + 0.55 * pts[b_i] + [0, -1.6, -2.0]
        nos[k, 0] = c
        nos[k, 1] = c + [3.2 * nw, 0.6 * (1 if k == 0 else -1), 0]
        nos[k, 2] = c + [0, 1.6, 0.5]

    return FaceGeometry(lm=pts, jaw_arcs=arcs, head_center=sp["center"].copy(), head_radii=sp["radii"].copy(),
                        ears=sp["ears"].copy(), brows=brows, iris_r=sp["iris_r"], lid_crease=crease,
                        nostrils=nos, cheeks=sp["cheeks"].copy(), forehead=sp["forehead"].copy(),
                        mouth_open=drop)


_BROW_THICK = np.array([3.2, 4.2, 5.0, 5.6, 6.2])  # outer -> inner
_BROW_UP = -0.55 * _BROW_THICK
_BROW_DOWN = 0.45 * _BROW_THICK


def silhouette_jaw(arcs_2d: np.ndarray, outward: np.ndarray) -> np.ndarray:
    """Jaw landmarks as seen from the camera (landmark marching).

    ``arcs_2d`` (17, N_ARC, 2) are projected arcs from the face front (sample 0) to each jaw
    point's nominal position (last sample); ``outward`` is the image direction of the head's +x axis.
    A point that is hidden behind the turned cheek slides along its arc to the silhouette:
    the outermost projected sample on its side of the face.
    """
    proj = arcs_2d @ outward  # (17, N)
    side = np.sign(np.arange(17) - 8.0)
    score = proj * side[:, None]
    idx = np.argmax(score, axis=1)
    out = arcs_2d[np.arange(17), idx]
    out[8] = arcs_2d[8, -1]
    return out
