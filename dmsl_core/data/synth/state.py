"""What the camera sees at one instant: pose, expression, occlusions, light, framing.

:class:`FaceState` holds plain floats so a live demo can animate it (:func:`interpolate`);
:data:`VARIATIONS` are the 21 per-subject captures modelled on the Eurecom VIS-TH database.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import numpy as np

from .face3d import EXPRESSIONS

OCCLUSIONS = ("glasses", "sunglasses", "hand_mouth", "hand_cheek", "cap", "beanie", "scarf")

VARIATIONS: list[str] = [
    "neutral",
    # expressions
    "smile", "surprise", "anger", "disgust", "eyes_closed",
    # poses
    "yaw_left", "yaw_right", "pitch_up", "pitch_down", "tilt",
    # occlusions
    "glasses", "sunglasses", "hand_mouth", "hand_cheek", "hat", "scarf",
    # illumination
    "light_left", "light_right", "dim", "dark",
]
assert len(VARIATIONS) == 21


@dataclass
class FaceState:
    """One frame's pose, expression, occlusions, lighting and framing.

    Angles in degrees (see :func:`face3d.rotation`: yaw > 0 turns the nose to the image right,
    pitch > 0 looks up, roll > 0 tilts clockwise). Expression weights and ``mouth_open``,
    ``eyes_closed`` are 0..1. ``light`` is the room light level (0 = lights off: the visible image
    is black apart from sensor noise); ``light_azimuth`` < 0 puts the lamp on the image left.
    ``cx``, ``cy`` place the face centre (a point between nose tip and upper lip) as fractions
    of the frame; ``scale`` is the landmark box height (brows to chin) as a fraction of the
    frame height. ``th_*`` describe a known thermal misregistration (thermal pixel ->
    visible pixel): a shift in pixels, a scale and a rotation in degrees about the frame centre;
    all neutral means pixel-registered. ``scene`` selects a background (kept constant by a demo).
    """

    yaw: float = 0.0
    pitch: float = 0.0
    roll: float = 0.0
    smile: float = 0.0
    surprise: float = 0.0
    anger: float = 0.0
    disgust: float = 0.0
    mouth_open: float = 0.0
    eyes_closed: float = 0.0
    gaze_x: float = 0.0
    gaze_y: float = 0.0
    occlusions: frozenset = field(default_factory=frozenset)
    hand: float = 1.0
    light: float = 1.0
    light_azimuth: float = 0.0
    light_elevation: float = 25.0
    ambient: float = 0.4
    cx: float = 0.5
    cy: float = 0.5
    scale: float = 0.5
    ambient_c: float = 22.0
    breath: float = 0.0
    th_dx: float = 0.0
    th_dy: float = 0.0
    th_scale: float = 1.0
    th_rot: float = 0.0
    scene: int = 0

    def __post_init__(self) -> None:
        occ = frozenset(self.occlusions)
        bad = occ - set(OCCLUSIONS)
        if bad:
            raise ValueError(f"unknown occlusions {sorted(bad)}; expected some of {OCCLUSIONS}")
        self.occlusions = occ

    @property
    def expression(self) -> dict[str, float]:
        """Expression weights by name (only the non-zero ones)."""
        return {n: float(getattr(self, n)) for n in EXPRESSIONS if getattr(self, n)}

    def with_expression(self, name: str, intensity: float = 1.0) -> "FaceState":
        """A copy with exactly one expression (``neutral`` clears them; ``eyes_closed`` also works)."""
        kw = {n: 0.0 for n in EXPRESSIONS}
        if name == "eyes_closed":
            kw["eyes_closed"] = float(intensity)
        elif name != "neutral":
            if name not in EXPRESSIONS:
                raise ValueError(f"unknown expression {name!r}; expected neutral, eyes_closed or one of {EXPRESSIONS}")
            kw[name] = float(intensity)
        return replace(self, **kw)

    @property
    def misregistered(self) -> bool:
        return bool(self.th_dx or self.th_dy or self.th_scale != 1.0 or self.th_rot)


_FLOAT_FIELDS = [f.name for f in fields(FaceState) if f.name not in ("occlusions", "scene")]


def interpolate(a: FaceState, b: FaceState, t: float) -> FaceState:
    """Linear blend of every float field; occlusions and scene switch at t = 0.5."""
    t = float(t)
    kw = {n: (1 - t) * getattr(a, n) + t * getattr(b, n) for n in _FLOAT_FIELDS}
    src = a if t < 0.5 else b
    return FaceState(occlusions=src.occlusions, scene=src.scene, **kw)


def variation_state(name: str, rng: np.random.Generator) -> FaceState:
    """A random instance of one of the :data:`VARIATIONS` (framing, light and pose jittered)."""
    if name not in VARIATIONS:
        raise ValueError(f"unknown variation {name!r}; expected one of {VARIATIONS}")
    r = rng
    s = FaceState(
        yaw=float(r.normal(0, 4)), pitch=float(r.normal(0, 3.5)), roll=float(r.normal(0, 2.5)),
        gaze_x=float(r.normal(0, 0.15)), gaze_y=float(r.normal(0, 0.1)),
        light=float(r.uniform(0.8, 1.0)), light_azimuth=float(r.normal(0, 15)),
        light_elevation=float(r.uniform(15, 40)), ambient=float(r.uniform(0.35, 0.5)),
        cx=float(r.uniform(0.38, 0.62)), cy=float(r.uniform(0.44, 0.58)), scale=float(r.uniform(0.36, 0.6)),
        ambient_c=float(r.uniform(20.0, 24.0)), breath=float(r.uniform(0, 1)),
        scene=int(r.integers(0, 1 << 16)),
    )
    k = float(r.uniform(0.75, 1.0))
    if name in ("smile", "surprise", "anger", "disgust"):
        s = s.with_expression(name, k)
        if name == "smile":
            s.mouth_open = float(r.uniform(0.0, 0.2))
    elif name == "eyes_closed":
        s.eyes_closed = 1.0
    elif name == "yaw_left":
        s.yaw = -float(r.uniform(28, 42))
    elif name == "yaw_right":
        s.yaw = float(r.uniform(28, 42))
    elif name == "pitch_up":
        s.pitch = float(r.uniform(18, 28))
    elif name == "pitch_down":
        s.pitch = -float(r.uniform(18, 28))
    elif name == "tilt":
        s.roll = float(r.choice([-1, 1]) * r.uniform(15, 25))
    elif name in ("glasses", "sunglasses", "hand_mouth", "hand_cheek", "scarf"):
        s.occlusions = frozenset({name})
    elif name == "hat":
        s.occlusions = frozenset({"cap" if r.random() < 0.6 else "beanie"})
    elif name in ("light_left", "light_right"):
        s.light_azimuth = float((-1 if name == "light_left" else 1) * r.uniform(55, 80))
        s.ambient = float(r.uniform(0.08, 0.2))
        s.light = float(r.uniform(0.85, 1.0))
    elif name == "dim":
        s.light = float(r.uniform(0.12, 0.25))
    elif name == "dark":
        s.light = 0.0
    return s
