"""Synthetic identities: 3D shape, skin tone, hair, beard, age, clothing, thermal physiology."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .face3d import ShapeParams

RGB = tuple[float, float, float]

HAIR_STYLES = ("bald", "short", "medium", "long")
BEARD_STYLES = ("none", "stubble", "moustache", "goatee", "full")

_SKIN_TONES = np.array([
    [0.97, 0.82, 0.71], [0.92, 0.72, 0.60], [0.83, 0.62, 0.48],
    [0.68, 0.48, 0.35], [0.52, 0.35, 0.25], [0.36, 0.24, 0.17],
])
_HAIR_COLOURS = {
    "black": (0.07, 0.06, 0.055), "dark_brown": (0.17, 0.11, 0.07), "brown": (0.33, 0.21, 0.12),
    "blonde": (0.78, 0.63, 0.40), "red": (0.55, 0.24, 0.11), "grey": (0.58, 0.57, 0.55),
    "white": (0.85, 0.84, 0.82),
}
_IRIS = [(0.25, 0.15, 0.08), (0.12, 0.07, 0.04), (0.30, 0.42, 0.55), (0.32, 0.40, 0.25), (0.45, 0.35, 0.2)]


@dataclass
class Identity:
    """Everything that makes one synthetic subject look like themselves (deterministic per seed/index).

    Colours are display RGB in 0..1. Temperatures are offsets in degrees C.
    """

    index: int = 0
    seed: int = 0
    shape: ShapeParams = field(default_factory=ShapeParams)
    skin: RGB = (0.85, 0.66, 0.53)
    lips: RGB = (0.70, 0.38, 0.36)
    iris: RGB = (0.25, 0.15, 0.08)
    hair: RGB = (0.17, 0.11, 0.07)
    hair_style: str = "short"
    hairline: float = 0.3      # forehead covered by hair: 0 = high/receding, 1 = fringe down to the brows
    hair_volume: float = 8.0   # mm of hair above the scalp
    hair_part: float = 0.0     # -1..1 side sweep of the fringe (0 = symmetric)
    brows: RGB = (0.15, 0.10, 0.07)
    brow_density: float = 0.8
    beard: str = "none"
    beard_density: float = 0.0
    age: float = 0.3           # 0..1: wrinkles, grey hair
    clothing: RGB = (0.2, 0.3, 0.5)
    clothing2: RGB = (0.9, 0.9, 0.9)
    skin_temp: float = 0.0     # individual offset of the core facial temperature
    nose_cool: float = 1.0     # how much colder the nose is than the face (scale)
    name: str = ""

    @property
    def subject_id(self) -> str:
        return f"s{self.index + 1:03d}"


def _mix(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    return a + (b - a) * t


def make_identity(seed: int, index: int) -> Identity:
    """The identity of subject ``index`` (0-based) in the synthetic database of ``seed``.

    Deterministic: the same (seed, index) always gives the same identity.
    """
    rng = np.random.default_rng([int(seed), int(index), 0x1D])
    masc = bool(rng.random() < 0.55)
    age = float(rng.beta(1.6, 2.4))
    shape = ShapeParams.random(rng, 0.9)
    if masc:
        shape.jaw_square += 0.6
        shape.jaw_width += 0.4
        shape.head_width += 0.3
    else:
        shape.jaw_square -= 0.4
        shape.lip_thickness += 0.4
        shape.eye_size += 0.3
    t = float(rng.random()) * (len(_SKIN_TONES) - 1)
    i0 = int(np.floor(t))
    skin = _mix(_SKIN_TONES[i0], _SKIN_TONES[min(i0 + 1, len(_SKIN_TONES) - 1)], t - i0)
    skin = np.clip(skin * (1 + rng.normal(0, 0.025, 3)), 0, 1)
    lips = np.clip(skin * [0.82, 0.55, 0.55] + [0.06, 0.0, 0.02] + rng.normal(0, 0.02, 3), 0, 1)
    if not masc and rng.random() < 0.35:  # lipstick
        lips = np.array([0.65, 0.12, 0.18]) + rng.normal(0, 0.04, 3)

    # hair
    dark_skin = t > 2.8
    names = ["black", "dark_brown", "brown", "blonde", "red"]
    probs = np.array([0.3, 0.3, 0.2, 0.14, 0.06]) if not dark_skin else np.array([0.75, 0.2, 0.05, 0.0, 0.0])
    hname = names[int(rng.choice(len(names), p=probs / probs.sum()))]
    if age > 0.55 and rng.random() < (age - 0.45) * 1.6:
        hname = "grey" if rng.random() < 0.75 else "white"
    hair = np.clip(np.array(_HAIR_COLOURS[hname]) * (1 + rng.normal(0, 0.08)), 0, 1)
    if masc:
        style = str(rng.choice(HAIR_STYLES, p=[0.12 + 0.25 * age, 0.6 - 0.25 * age, 0.2, 0.08]))
    else:
        style = str(rng.choice(HAIR_STYLES, p=[0.0, 0.15, 0.35, 0.5]))
    hairline = float(np.clip(rng.beta(1.5, 2.5) - (0.3 * age if masc else 0.0), 0, 1))
    if style == "bald":
        hairline = 0.0
    volume = float({"bald": 2.0, "short": 6.0, "medium": 11.0, "long": 13.0}[style] * rng.uniform(0.7, 1.4))
    brows = np.clip(hair * 0.75 if hname not in ("blonde", "white", "grey") else hair * 0.6, 0, 1)

    beard, bden = "none", 0.0
    if masc and rng.random() < 0.5:
        beard = str(rng.choice(BEARD_STYLES[1:], p=[0.35, 0.15, 0.2, 0.3]))
        bden = float(rng.uniform(0.45, 0.95) if beard != "stubble" else rng.uniform(0.25, 0.45))

    clothing = np.clip(rng.random(3) * 0.8 + 0.05, 0, 1)
    clothing2 = np.clip(rng.random(3), 0, 1)
    return Identity(
        index=int(index), seed=int(seed), shape=shape, skin=tuple(map(float, skin)),
        lips=tuple(map(float, np.clip(lips, 0, 1))), iris=tuple(map(float, _IRIS[int(rng.integers(len(_IRIS)))])),
        hair=tuple(map(float, hair)), hair_style=style, hairline=hairline, hair_volume=volume,
        hair_part=float(rng.uniform(-1, 1)) if style in ("medium", "long") else float(rng.uniform(-0.4, 0.4)),
        brows=tuple(map(float, brows)), brow_density=float(rng.uniform(0.55, 0.95) + (0.1 if masc else -0.1)),
        beard=beard, beard_density=bden, age=age, clothing=tuple(map(float, clothing)),
        clothing2=tuple(map(float, clothing2)), skin_temp=float(rng.normal(0, 0.45)),
        nose_cool=float(rng.uniform(0.5, 1.4)), name=f"synthetic subject {index + 1}",
    )
