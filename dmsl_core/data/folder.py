"""The project's dataset folder.

Layout (what ``dmsl synth`` and every importer write, and every consumer reads)::

    DIR/
      manifest.csv        one row per visible/thermal pair
      ...images and .pts files, anywhere below DIR (paths in the manifest are relative to DIR)

``manifest.csv`` columns:

========== ==========================================================================
subject    subject id (string; sorted to build the 10-fold protocol)
variation  variation name (e.g. ``neutral``, ``yaw_left``, ``dark``)
vis        visible image path, or empty
th         thermal image path, or empty
landmarks  iBUG ``.pts`` file of the pair (serves both images when ``registered`` is 1)
th_format  how to read the thermal file: ``u8`` (8-bit display, white-hot), ``u16_ck``
           (16-bit centi-kelvin: C = raw / 100 - 273.15), ``u16_raw`` (16-bit counts,
           uncalibrated) or ``f32_c`` (float32 degrees C, ``.npy`` or float ``.tiff``)
registered 1 when visible and thermal are pixel-registered (one landmark file for both), else 0
th_landmarks optional: a separate ``.pts`` for the thermal image when not registered
========== ==========================================================================
"""
from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional, Sequence

import numpy as np

from .imageio import atomic_write_text, image_size, pixel_problem, read_image
from .pts import read_pts
from .sample import Sample

MANIFEST = "manifest.csv"
COLUMNS = ["subject", "variation", "vis", "th", "landmarks", "th_format", "registered", "th_landmarks"]
TH_FORMATS = ("u8", "u16_ck", "u16_raw", "f32_c")


class DatasetError(ValueError):
    """A dataset folder or manifest that cannot be used; the message names the file and the problem."""


@dataclass
class PairRecord:
    subject: str
    variation: str
    vis: str = ""
    th: str = ""
    landmarks: str = ""
    th_format: str = "u8"
    registered: bool = True
    th_landmarks: str = ""
    root: Optional[Path] = field(default=None, repr=False, compare=False)
    line: int = field(default=0, repr=False, compare=False)  # of manifest.csv (0: not read from one)

    def abspath(self, rel: str) -> Optional[Path]:
        """The file a manifest path names, confined to the dataset folder (:func:`confined_path`);
        a path escaping it raises :class:`DatasetError` naming the manifest row."""
        if not rel:
            return None
        if self.root is None:
            return Path(rel)
        where = f"{Path(self.root) / MANIFEST}" + (f":{self.line}" if self.line else "")
        return confined_path(self.root, rel, where=where)

    def path_error(self) -> Optional[str]:
        """Why this row is refused (a path escaping the dataset folder), or None."""
        try:
            for rel in (self.vis, self.th, self.landmarks, self.th_landmarks):
                self.abspath(rel)
        except DatasetError as exc:
            return str(exc)
        return None

    def landmarks_for(self, spectrum: str) -> Optional[np.ndarray]:
        rel = self.landmarks
        if spectrum == "th" and not self.registered:
            rel = self.th_landmarks
        path = self.abspath(rel)
        return read_pts(path) if path is not None else None


def confined_path(root: str | os.PathLike, rel: str | os.PathLike, where: str = "") -> Path:
    """``root / rel`` when it stays inside ``root`` once resolved (``..``, symlinks of any part,
    an absolute ``rel``), else :class:`DatasetError` naming ``where`` (e.g. ``DIR/manifest.csv:3``)
    and the path. The one check every path read from a manifest goes through, for reading and writing."""
    root = Path(root)
    where = where or str(root / MANIFEST)
    p = Path(rel)
    if p.is_absolute() or p.drive:
        raise DatasetError(f"{where}: path {str(rel)!r} is absolute; manifest paths must be relative to the "
                           f"dataset folder {root}")
    full = root / p
    base = root.resolve()
    real = full.resolve()
    if real != base and base not in real.parents:
        raise DatasetError(f"{where}: path {str(rel)!r} leads outside the dataset folder {root} (to {real}); "
                           f"refused")
    return full


def thermal_to_celsius(raw: np.ndarray, th_format: str) -> Optional[np.ndarray]:
    """Degrees C from a thermal image in the given manifest format, or None when not radiometric."""
    if th_format == "u16_ck":
        return raw.astype(np.float32) / 100.0 - 273.15
    if th_format == "f32_c":
        return raw.astype(np.float32)
    return None


def read_manifest(root: str | os.PathLike) -> list[PairRecord]:
    root = Path(root)
    path = root / MANIFEST
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder")
    if not path.exists():
        raise DatasetError(f"{root}: no {MANIFEST} (not a DMSL dataset folder; see `dmsl import` / `dmsl synth`)")
    try:
        text = path.read_bytes().decode("utf-8-sig")  # a BOM (as spreadsheets save CSV) is dropped
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[:exc.start].count(b"\n") + 1
        raise DatasetError(f"{path}:{line}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset "
                           f"{exc.start}); save the manifest as UTF-8 CSV") from None
    if "\x00" in text:
        raise DatasetError(f"{path}: not a CSV text file (contains NUL bytes)")
    records: list[PairRecord] = []
    with io.StringIO(text, newline="") as fh:
        reader = csv.DictReader(fh)
        missing = {"subject", "variation", "vis", "th", "landmarks"} - set(reader.fieldnames or [])
        if missing:
            raise DatasetError(f"{path}: missing columns {sorted(missing)}")
        for line, row in enumerate(reader, start=2):
            fmt = (row.get("th_format") or "u8").strip()
            if fmt not in TH_FORMATS:
                raise DatasetError(f"{path}:{line}: th_format {fmt!r} is not one of {TH_FORMATS}")
            reg = (row.get("registered") or "1").strip().lower() not in ("0", "false", "no")
            rec = PairRecord(
                subject=(row["subject"] or "").strip(), variation=(row["variation"] or "").strip(),
                vis=(row["vis"] or "").strip(), th=(row["th"] or "").strip(),
                landmarks=(row["landmarks"] or "").strip(), th_format=fmt, registered=reg,
                th_landmarks=(row.get("th_landmarks") or "").strip(), root=root, line=line,
            )
            if not rec.vis and not rec.th:
                raise DatasetError(f"{path}:{line}: neither a visible nor a thermal image")
            records.append(rec)
    return records


def write_manifest(root: str | os.PathLike, records: Iterable[PairRecord]) -> Path:
    root = Path(root)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for r in records:
        w.writerow([r.subject, r.variation, r.vis, r.th, r.landmarks, r.th_format, int(bool(r.registered)),
                    r.th_landmarks])
    out = root / MANIFEST
    atomic_write_text(out, buf.getvalue())
    return out


def is_dark(image: np.ndarray, mean_max: float = 0.04, p99_max: float = 0.12) -> bool:
    """The paper's "lights off" rule: a visible image that is essentially black.

    Works on the 8-bit scale: mean below 4 % and 99th percentile below 12 % of full scale.
    """
    arr = np.asarray(image)
    scale = 65535.0 if arr.dtype == np.uint16 else 255.0
    g = arr.astype(np.float32) if arr.ndim == 2 else arr[..., :3].astype(np.float32).mean(axis=2)
    g = g[::2, ::2] / scale
    return bool(g.mean() < mean_max and np.percentile(g, 99) < p99_max)


def _size_mismatch(rec: PairRecord) -> Optional[str]:
    """Why the thermal image of a registered pair cannot use its landmarks (sizes differ), or None."""
    try:
        vp, tp = rec.abspath(rec.vis), rec.abspath(rec.th)
        vs, ts = image_size(vp), image_size(tp)
    except (ValueError, OSError):
        return None   # an unreadable image is reported where it is read
    if vs == ts:
        return None
    return (f"{tp}: registered with {vp.name} but {ts[0]}x{ts[1]} against {vs[0]}x{vs[1]} pixels - one set of "
            f"landmarks cannot fit both (resize it, or set registered=0 and give th_landmarks)")


@dataclass
class LoadReport:
    n_samples: int = 0
    dropped_dark: int = 0
    skipped: list[str] = field(default_factory=list)  # "path: reason"


def load_samples(root: str | os.PathLike, spectra: Sequence[str] = ("vis", "th"), *,
                 subjects: Optional[Iterable[str]] = None, drop_dark: bool = True,
                 preload: bool = False, report: Optional[LoadReport] = None) -> list[Sample]:
    """Samples of a dataset folder (one per image of a requested spectrum that has landmarks).

    ``drop_dark`` drops black "lights off" visible images (counted in ``report.dropped_dark``).
    Thermal images of format ``u16_ck``/``f32_c`` are returned in their file units; the
    pre-processing normalises each image, so the units do not matter to the models.
    """
    records = read_manifest(root)
    keep = set(subjects) if subjects is not None else None
    rep = report if report is not None else LoadReport()
    out: list[Sample] = []
    for rec in records:
        if keep is not None and rec.subject not in keep:
            continue
        for spec in spectra:
            rel = rec.vis if spec == "vis" else rec.th
            if not rel:
                continue
            try:
                path = rec.abspath(rel)
                lm = rec.landmarks_for(spec)
            except ValueError as exc:
                rep.skipped.append(str(exc))
                continue
            if lm is None:
                continue
            if lm.shape != (68, 2):
                rep.skipped.append(f"{rec.abspath(rec.landmarks)}: {lm.shape[0]} points, expected 68")
                continue
            if spec == "th" and rec.registered and rec.vis:
                why = _size_mismatch(rec)   # one set of points cannot fit two images of different sizes
                if why:
                    rep.skipped.append(why)
                    continue
            image = None
            may_be_float = spec == "th" and (rec.th_format == "f32_c" or path.suffix.lower() in (".npy", ".tif", ".tiff"))
            if preload or (drop_dark and spec == "vis") or may_be_float:
                try:
                    image = read_image(path)
                except ValueError as exc:
                    rep.skipped.append(str(exc))
                    continue
                if spec == "vis" and image.dtype.kind == "f":   # not "dark": a visible image must be 8/16-bit
                    rep.skipped.append(f"{path}: a {image.dtype} image cannot be a visible image "
                                       "(expected 8-bit colour or grey, or 16-bit grey)")
                    continue
                if (why := pixel_problem(image)) is not None:
                    rep.skipped.append(f"{path}: {why}")
                    continue
                if drop_dark and spec == "vis" and is_dark(image):
                    rep.dropped_dark += 1
                    continue
                if not preload:
                    image = None
            out.append(Sample(spectrum=spec, landmarks=lm, subject=rec.subject, variation=rec.variation,
                              path=str(path), image=image,
                              meta={"th_format": rec.th_format} if spec == "th" else {}))
    rep.n_samples = len(out)
    return out
