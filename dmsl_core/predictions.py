"""Predictions of image files, and their writers: one implementation for ``dmsl predict`` and the
app's folder browser (*Export…*).

Each image gives one entry ``{"image": path, "faces": [...]}`` (``"error"`` instead when the file
cannot be read), each face ``Face.to_dict()``: detector box and score, the box B of the final M_l
pass, the 68 landmarks in the image's pixels, spectrum and detector. With ``detector=None`` there is
no detector: M_b's one face per image, with ``score`` None; with a quality network (the model's
``quality.safetensors``) every face carries the landmark stage's own ``confidence`` and one below its
threshold is no face (the detector path drops it; without a detector the entry keeps M_b's points
at the top level but lists no face).

Written (every file atomically, :mod:`dmsl_core.atomic`): the entries as JSON (one image per line),
a CSV of one row per face (image, face, score, confidence, box, B, x0 y0 .. x67 y67), an iBUG ``.pts`` per face
(``IMAGE_face<i>.pts``) and an overlay PNG per image (boxes, points, scores).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable, Iterable, Optional

import numpy as np

CSV_HEAD = (["image", "face", "score", "confidence", "box_x", "box_y", "box_w", "box_h", "b_x", "b_y", "b_w", "b_h"]
            + [f"{c}{i}" for i in range(68) for c in ("x", "y")])


def guess_spectrum(img: np.ndarray) -> str:
    """Colour 8-bit -> "vis"; 16-bit or float (raw counts / temperatures) -> "th"; 8-bit grey -> ""."""
    if img.dtype != np.uint8:
        return "th"
    return "vis" if img.ndim == 3 else ""


def predict_image(pred, img: np.ndarray, path: str | os.PathLike, spectrum: str = "auto", detector=None) -> dict:
    """The entry of one image: every face the detector finds (``[]``: no face), each with its
    landmarks; ``detector=None``: M_b's one face."""
    spectrum = guess_spectrum(img) if spectrum in ("", "auto", None) else spectrum
    if detector is None:
        p = pred.predict_one(img)
        conf = None if p.confidence is None else round(float(p.confidence), 4)
        face = {"index": 0, "box": np.round(p.boundary, 3).tolist(), "score": None,
                "boundary": np.round(p.boundary, 3).tolist(), "landmarks": np.round(p.landmarks, 3).tolist(),
                "spectrum": spectrum, "detector": "none", "confidence": conf}
        judge = getattr(pred, "is_face", None)
        faces = [face] if judge is None or judge(p) else []
        return {"image": str(path), "faces": faces, "landmarks": face["landmarks"], "boundary": face["boundary"],
                "confidence": conf}
    faces = [f.to_dict() for f in pred.faces(img, detector=detector, spectrum=spectrum or None)]
    return {"image": str(path), "faces": faces}


def summary_line(entry: dict) -> str:
    """One line per image: ``NAME: no face`` / ``NAME: 2 faces (0.91, 0.40)`` / the error."""
    path = Path(entry["image"])
    if entry.get("error"):
        msg = entry["error"]
        return msg if str(path) in msg else f"{path}: {msg}"
    faces = entry["faces"]
    if not faces:
        if entry.get("confidence") is not None:   # M_b's points, which the landmark stage rejects
            return f"{path.name}: no face (M_b without a detector; landmark confidence {entry['confidence']:.2f})"
        return f"{path.name}: no face"
    if faces[0].get("score") is None and faces[0].get("detector") == "none":
        c = faces[0].get("confidence")
        return f"{path.name}: 1 face (M_b, no detector" + (f"; confidence {c:.2f})" if c is not None else ")")

    def one(f: dict) -> str:
        c = f.get("confidence")
        s = "M_b (no detection)" if f.get("score") is None else f"{f['score']:.2f}"
        return s if c is None else f"{s}, confidence {c:.2f}"
    scores = "; ".join(one(f) for f in faces)
    return f"{path.name}: {len(faces)} face{'s' if len(faces) != 1 else ''} ({scores})"


def draw_faces(img: np.ndarray, faces: list[dict]) -> np.ndarray:
    """An RGB uint8 copy of ``img`` with each face's box, points and score."""
    import cv2

    from .detection import to_gray8
    vis = img.copy() if img.dtype == np.uint8 and img.ndim == 3 else cv2.cvtColor(to_gray8(img), cv2.COLOR_GRAY2RGB)
    vis = np.ascontiguousarray(vis[:, :, :3])
    thick = max(1, int(round(max(vis.shape[:2]) / 400)))
    for f in faces:
        x, y, w, h = (int(round(v)) for v in f["box"])
        cv2.rectangle(vis, (x, y), (x + w, y + h), (0, 255, 0), thick)
        for px, py in f["landmarks"]:
            if np.isfinite(px) and np.isfinite(py):
                cv2.circle(vis, (int(round(px)), int(round(py))), thick, (255, 0, 0), -1)
        label = ("face" if f.get("detector") == "none" else "M_b") if f["score"] is None else f"{f['score']:.2f}"
        if f.get("confidence") is not None:
            label += f" c{f['confidence']:.2f}"
        cv2.putText(vis, label, (x, max(12, y - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.5 * thick, (255, 255, 0), thick)
    if not faces:
        cv2.putText(vis, "no face", (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5 * thick, (255, 80, 80), thick)
    return vis


def write_image_outputs(entry: dict, img: np.ndarray, pts_dir: Optional[str | os.PathLike] = None,
                        overlay_dir: Optional[str | os.PathLike] = None, stem: Optional[str] = None) -> list[Path]:
    """``STEM_face<i>.pts`` per face into ``pts_dir`` and ``STEM.png`` (the overlay) into ``overlay_dir``."""
    from .data.imageio import write_image
    from .data.pts import write_pts
    stem = stem or Path(entry["image"]).stem
    out = []
    if pts_dir:
        for f in entry["faces"]:
            p = Path(pts_dir) / f"{stem}_face{f['index']}.pts"
            write_pts(p, np.asarray(f["landmarks"]))
            out.append(p)
    if overlay_dir:
        p = Path(overlay_dir) / f"{stem}.png"
        write_image(p, draw_faces(img, entry["faces"]))
        out.append(p)
    return out


def predictions_json(results: list[dict]) -> str:
    return "[\n" + ",\n".join(json.dumps(r) for r in results) + "\n]\n"   # one image per line


def predictions_csv(results: list[dict]) -> str:
    rows = [",".join(CSV_HEAD)]
    for r in results:
        for f in r["faces"]:
            vals = [r["image"].replace(",", "_"), str(f["index"]), "" if f["score"] is None else str(f["score"]),
                    "" if f.get("confidence") is None else str(f["confidence"])]
            vals += [str(v) for v in f["box"]] + [str(v) for v in f["boundary"]]
            vals += [str(v) for xy in f["landmarks"] for v in xy]
            rows.append(",".join(vals))
    return "\n".join(rows) + "\n"


def predict_files(pred, paths: Iterable[str | os.PathLike], *, detector=None, spectrum: str = "auto",
                  spectra: Optional[dict] = None, pts_dir=None, overlay_dir=None, json_path=None, csv_path=None,
                  stems: Optional[dict] = None, on_entry: Optional[Callable[[dict], None]] = None,
                  check_stop: Optional[Callable[[], None]] = None) -> dict:
    """Predict every file and write what was asked; a file that cannot be read is named in its entry
    (``error``) and counted, the others are still written.

    ``spectra``: path -> spectrum for files whose spectrum is known (else ``spectrum``, "auto": by the
    pixels); ``stems``: path -> the name its ``.pts`` / overlay files get (default: the file's stem);
    ``on_entry(entry)`` after each file; ``check_stop()`` before each file (it raises to stop).
    Returns ``{"results", "n_images", "n_faces", "failed", "files"}``; ``json_path`` "-" writes no JSON
    file (the caller prints ``predictions_json(results)``)."""
    from .atomic import atomic_write_text
    from .data.imageio import read_image
    for d in (pts_dir, overlay_dir):
        if d:
            Path(d).mkdir(parents=True, exist_ok=True)
    results, files, failed, n_faces, n = [], [], 0, 0, 0
    for path in paths:
        if check_stop is not None:
            check_stop()
        n += 1
        try:
            img = read_image(path)
            s = (spectra or {}).get(str(path), spectrum)
            entry = predict_image(pred, img, path, s, detector)
            files += write_image_outputs(entry, img, pts_dir, overlay_dir, (stems or {}).get(str(path)))
        except (ValueError, OSError) as exc:   # a bad file: named, counted, the batch goes on
            failed += 1
            entry = {"image": str(path), "error": str(exc), "faces": []}
        else:
            n_faces += len(entry["faces"])
        results.append(entry)
        if on_entry is not None:
            on_entry(entry)
    if csv_path:
        atomic_write_text(csv_path, predictions_csv(results))
        files.append(Path(csv_path))
    if json_path and json_path != "-":
        atomic_write_text(json_path, predictions_json(results))
        files.append(Path(json_path))
    return {"results": results, "n_images": n, "n_faces": n_faces, "failed": failed, "files": files}
