"""Image files: 8-bit/16-bit PNG and TIFF, JPEG, float32 ``.npy`` / ``.tiff`` temperature.

Every read error names the file and the problem. Writes are atomic (temp file + rename).
"""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from ..atomic import atomic_path, atomic_write_text  # noqa: F401  (re-exported)


class ImageReadError(ValueError):
    """An image file that cannot be used; the message names the file and the reason."""


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image without changing its bit depth.

    Returns HxWx3 uint8 RGB for colour files, HxW uint8/uint16 for grey ones, HxW float32 for
    ``.npy`` or float TIFF (temperatures in degrees C by the project's convention).
    """
    p = Path(path)
    if not p.exists():
        raise ImageReadError(f"{p}: no such file")
    if p.suffix.lower() == ".npy":
        try:
            arr = np.load(p, allow_pickle=False)
        except Exception as exc:  # noqa: BLE001 - re-raised with the file name
            raise ImageReadError(f"{p}: not a readable .npy array ({exc})") from exc
        if arr.ndim != 2 and not (arr.ndim == 3 and arr.shape[2] in (1, 3)):
            raise ImageReadError(f"{p}: expected a HxW or HxWx3 array, got shape {arr.shape}")
        if arr.ndim == 3 and arr.shape[2] == 1:
            arr = arr[:, :, 0]
        if arr.dtype not in (np.uint8, np.uint16):
            arr = arr.astype(np.float32)
        return arr
    data = np.fromfile(str(p), dtype=np.uint8)
    if data.size == 0:
        raise ImageReadError(f"{p}: empty file")
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ImageReadError(f"{p}: not a readable image (corrupt or unsupported format)")
    if img.ndim == 3:
        if img.shape[2] == 4:
            img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
        elif img.shape[2] == 3:
            img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        elif img.shape[2] == 1:
            img = img[:, :, 0]
    if img.dtype not in (np.uint8, np.uint16, np.float32):
        img = img.astype(np.float32)
    return img


def write_image(path: str | os.PathLike, img: np.ndarray, jpeg_quality: int = 95) -> None:
    """Write RGB/grey uint8, grey uint16 (PNG/TIFF) or float32 (``.npy``/``.tiff``) atomically."""
    p = Path(path)
    with atomic_path(p, suffix=p.suffix) as tmp:
        if p.suffix.lower() == ".npy":
            with open(tmp, "wb") as fh:
                np.save(fh, np.asarray(img), allow_pickle=False)
            return
        arr = np.asarray(img)
        if arr.ndim == 3 and arr.shape[2] == 3:
            arr = cv2.cvtColor(arr, cv2.COLOR_RGB2BGR)
        params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)] if p.suffix.lower() in (".jpg", ".jpeg") else []
        ok, buf = cv2.imencode(p.suffix, arr, params)
        if not ok:
            raise ValueError(f"{p}: OpenCV could not encode a {arr.dtype} {arr.shape} image as {p.suffix}")
        buf.tofile(tmp)


def to_gray_float(img: np.ndarray) -> np.ndarray:
    """Any supported image -> HxW float32 in its own units (RGB is converted to luma)."""
    arr = np.asarray(img)
    if arr.ndim == 3:
        if arr.shape[2] == 1:
            arr = arr[:, :, 0]
        else:
            arr = cv2.cvtColor(arr[:, :, :3].astype(np.float32) if arr.dtype != np.uint8 else arr[:, :, :3],
                               cv2.COLOR_RGB2GRAY)
    if arr.ndim != 2:
        raise ValueError(f"expected a HxW or HxWx3 image, got shape {np.asarray(img).shape}")
    return arr.astype(np.float32, copy=False)
