"""Image files: 8-bit/16-bit PNG and TIFF, JPEG, float32 ``.npy`` / ``.tiff`` temperature.

Every read error names the file and the problem. Writes are atomic (temp file + rename).
"""
from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Optional

import cv2
import numpy as np

from ..atomic import atomic_path, atomic_write_bytes, atomic_write_text  # noqa: F401  (re-exported)

#: The most pixels :func:`read_image` decodes (OpenCV's own default limit, 2**30): a larger image is
#: refused from its header before any memory is allocated for it.
MAX_PIXELS = 1 << 30


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
    dims = _header_size(data)
    if dims is not None and dims[0] * dims[1] > MAX_PIXELS:
        raise ImageReadError(f"{p}: the image is {dims[0]}x{dims[1]} pixels, over the limit of {MAX_PIXELS} pixels")
    try:
        img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:
        msg = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise ImageReadError(f"{p}: OpenCV cannot decode it ({msg})") from exc
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


def _header_size(data: np.ndarray) -> Optional[tuple[int, int]]:
    """(width, height) from a PNG header, or None for other formats / a short file."""
    b = data[:24].tobytes()
    if len(b) >= 24 and b[:8] == b"\x89PNG\r\n\x1a\n" and b[12:16] == b"IHDR":
        return int.from_bytes(b[16:20], "big"), int.from_bytes(b[20:24], "big")
    return None


def encode_image(path: str | os.PathLike, img: np.ndarray, jpeg_quality: int = 95) -> bytes:
    """The bytes :func:`write_image` writes for ``path`` (format from its extension)."""
    p = Path(path)
    if p.suffix.lower() == ".npy":
        bio = io.BytesIO()
        np.save(bio, np.asarray(img), allow_pickle=False)
        return bio.getvalue()
    arr = np.asarray(img)
    if arr.ndim == 3 and arr.shape[2] == 3:
        arr = cv2.cvtColor(arr, cv2.COLOR_RGB2BGR)
    params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)] if p.suffix.lower() in (".jpg", ".jpeg") else []
    ok, buf = cv2.imencode(p.suffix, arr, params)
    if not ok:
        raise ValueError(f"{p}: OpenCV could not encode a {arr.dtype} {arr.shape} image as {p.suffix}")
    dec = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if dec is None or dec.shape[:2] != arr.shape[:2]:
        raise ValueError(f"{p}: OpenCV encoded a {arr.shape} image as {p.suffix} that does not decode back")
    return buf.tobytes()


def write_image(path: str | os.PathLike, img: np.ndarray, jpeg_quality: int = 95) -> None:
    """Write RGB/grey uint8, grey uint16 (PNG/TIFF) or float32 (``.npy``/``.tiff``) atomically.

    Encoded in memory (and decoded back as a check), written to a temporary file beside ``path``,
    ``fsync``-ed and read back; only bytes identical to the encoding are renamed to ``path``, so a
    short write (full disk) raises an ``OSError`` naming the file and leaves the previous file.
    """
    atomic_write_bytes(path, encode_image(path, img, jpeg_quality), read_back=True)


def pixel_problem(img: np.ndarray) -> Optional[str]:
    """Why no landmarks can come from these pixels (a float image with no finite value: all NaN or
    infinite), or None. NaN pixels among finite ones are fine (padding, masked areas)."""
    arr = np.asarray(img)
    if arr.dtype.kind == "f" and arr.size and not np.isfinite(arr).any():
        return "the image has no finite pixel (all NaN or infinite): no landmarks can come from it"
    return None


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(width, height) of an image file: from the header of a PNG, else by reading it."""
    p = Path(path)
    if p.suffix.lower() == ".png":
        with open(p, "rb") as fh:
            dims = _header_size(np.frombuffer(fh.read(24), np.uint8))
        if dims is not None:
            return dims
    img = read_image(p)
    return int(img.shape[1]), int(img.shape[0])


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
