"""Write a complete synthetic VIS-TH dataset folder (the layout of :mod:`dmsl_core.data.folder`).

::

    DIR/manifest.csv              subject, variation, vis, th, landmarks, th_format=u16_ck, registered=1
    DIR/vis/s001_neutral.png      HxWx3 uint8 RGB (JPEG artefacts already baked in)
    DIR/th/s001_neutral.png       HxW uint16 centi-kelvin (C = raw / 100 - 273.15)
    DIR/th8/s001_neutral.png      HxW uint8 white-hot display image
    DIR/th_f32/s001_neutral.npy   float32 deg C (only with ``write_float=True``)
    DIR/pts/s001_neutral.pts      the 68 exact landmarks (iBUG .pts, 1-based in the file)

Every pair is rendered from its own random stream ``(seed, subject, variation)``, so the files
are byte-identical for the same seed whatever ``jobs`` is, and a subset of variations renders
exactly the same images as the full set.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from ..folder import PairRecord, write_manifest
from ..imageio import write_image
from ..pts import write_pts
from .identity import Identity, make_identity
from .render import DEFAULT_SIZE, FaceRenderer
from .state import VARIATIONS, FaceState, variation_state

ProgressFn = Callable[[int, int], None]


def fit_state(renderer: FaceRenderer, identity: Identity, state: FaceState, margin: float = 0.05) -> FaceState:
    """Shift (and if needed shrink) the face so its landmarks lie inside the frame with a margin."""
    W, H = renderer.size
    mx, my = margin * W, margin * H
    s = state
    for _ in range(3):
        lm = renderer.landmarks(identity, s)
        x0, y0 = lm.min(axis=0)
        x1, y1 = lm.max(axis=0)
        bw, bh = x1 - x0, y1 - y0
        k = min(1.0, (W - 2 * mx) / max(bw, 1e-6), (H - 2 * my) / max(bh, 1e-6))
        if k < 1.0:
            s = replace(s, scale=s.scale * k * 0.98)
            continue
        dx = max(mx - x0, 0.0) - max(x1 - (W - 1 - mx), 0.0)
        dy = max(my - y0, 0.0) - max(y1 - (H - 1 - my), 0.0)
        if abs(dx) < 1e-6 and abs(dy) < 1e-6:
            break
        s = replace(s, cx=s.cx + dx / (W - 1), cy=s.cy + dy / (H - 1))
    return s


def pair_state(seed: int, subject: int, variation: str, renderer: FaceRenderer,
               identity: Optional[Identity] = None) -> tuple[Identity, FaceState, np.random.Generator]:
    """Identity, framed state and sensor random stream of one pair of the synthetic database."""
    ident = identity if identity is not None else make_identity(seed, subject)
    rng = np.random.default_rng([int(seed), int(subject), VARIATIONS.index(variation), 0x5EED])
    state = fit_state(renderer, ident, variation_state(variation, rng))
    return ident, state, rng


# ---------------------------------------------------------------------------------------------
# worker side (one renderer per process)
_WORKER: dict = {}


def _init_worker(size: tuple[int, int], seed: int, jpeg: bool) -> None:
    try:
        import cv2
        cv2.setNumThreads(1)
    except Exception:  # noqa: BLE001 - cv2 is a hard dependency  # pragma: no cover
        pass
    _WORKER["renderer"] = FaceRenderer(size=size, camera_seed=seed, jpeg=jpeg)


def _render_pair(task: tuple) -> PairRecord:
    out_dir, seed, subject, variation, write_float = task
    renderer: FaceRenderer = _WORKER["renderer"]
    ident, state, rng = pair_state(seed, subject, variation, renderer)
    frame = renderer.render(ident, state, rng)
    root = Path(out_dir)
    stem = f"{ident.subject_id}_{variation}"
    rel = {"vis": f"vis/{stem}.png", "th": f"th/{stem}.png", "th8": f"th8/{stem}.png", "pts": f"pts/{stem}.pts"}
    write_image(root / rel["vis"], frame.vis)
    write_image(root / rel["th"], frame.th_u16)
    write_image(root / rel["th8"], frame.th_u8)
    if write_float:
        write_image(root / f"th_f32/{stem}.npy", frame.th_celsius)
    write_pts(root / rel["pts"], frame.landmarks)
    return PairRecord(subject=ident.subject_id, variation=variation, vis=rel["vis"], th=rel["th"],
                      landmarks=rel["pts"], th_format="u16_ck", registered=True)


def generate_dataset(out_dir: str | os.PathLike, subjects: int = 50, seed: int = 0,
                     size: tuple[int, int] = DEFAULT_SIZE, jobs: int = 1, progress: Optional[ProgressFn] = None,
                     variations: Optional[Sequence[str]] = None, write_float: bool = False,
                     jpeg: bool = True, subject_indices: Optional[Sequence[int]] = None) -> dict:
    """Render ``subjects`` x ``variations`` (default all 21 :data:`VARIATIONS`) pairs into ``out_dir``.

    ``subject_indices`` renders only those subjects (0-based, e.g. ``[45, 46]`` = s045, s046) of the
    same generator: each pair depends only on (seed, subject, variation), so they are the very
    pairs a full run writes (used to re-create a held-out split without rendering everything).

    Returns a summary: ``pairs``, ``subjects``, ``variations``, ``seconds``, ``pairs_per_s``,
    ``size``, ``seed``, ``manifest`` (path). ``progress(done, total)`` is called after each pair.
    """
    if subjects < 1:
        raise ValueError(f"subjects must be at least 1, got {subjects}")
    names = list(VARIATIONS if variations is None else variations)
    bad = [v for v in names if v not in VARIATIONS]
    if bad:
        raise ValueError(f"unknown variations {bad}; expected some of {VARIATIONS}")
    if not names:
        raise ValueError("no variations selected")
    W, H = int(size[0]), int(size[1])
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    ids = list(range(subjects)) if subject_indices is None else [int(i) for i in subject_indices]
    if any(i < 0 for i in ids):
        raise ValueError(f"subject indices must be >= 0, got {ids}")
    tasks = [(str(root), int(seed), s, v, bool(write_float)) for s in ids for v in names]
    total = len(tasks)
    t0 = time.perf_counter()
    records: list[PairRecord] = []
    jobs = max(1, min(int(jobs), total))
    if jobs == 1:
        _init_worker((W, H), int(seed), jpeg)
        for i, task in enumerate(tasks):
            records.append(_render_pair(task))
            if progress is not None:
                progress(i + 1, total)
    else:
        ctx = mp.get_context("spawn")
        with ctx.Pool(jobs, initializer=_init_worker, initargs=((W, H), int(seed), jpeg)) as pool:
            for i, rec in enumerate(pool.imap(_render_pair, tasks, chunksize=4)):
                records.append(rec)
                if progress is not None:
                    progress(i + 1, total)
    manifest = write_manifest(root, records)
    dt = time.perf_counter() - t0
    return {
        "out_dir": str(root), "manifest": str(manifest), "pairs": total, "subjects": len(ids),
        "variations": names, "size": [W, H], "seed": int(seed), "jobs": jobs,
        "seconds": round(dt, 3), "pairs_per_s": round(total / dt, 2) if dt > 0 else float("inf"),
    }
