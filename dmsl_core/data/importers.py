"""Importers: folders of visible/thermal face images (+ annotations) -> a DMSL dataset folder.

The destination is the project's dataset folder (see :mod:`.folder`)::

    DST/manifest.csv
    DST/images/<subject>/<key>_vis.<ext>, <key>_th.<ext>   (copied byte for byte: 16-bit stays 16-bit)
    DST/landmarks/<subject>/<key>.pts                       (68 points, 54-point files mapped to 68)
    DST/landmarks/<subject>/<key>_th.pts                    (thermal's own file, when it has one)

The source is only read, never modified. Every file that cannot be used (unreadable image, a
landmark file that cannot be parsed or has neither 68 nor 54 points, a point outside its image,
a registered pair whose two images differ in size) is reported with the reason and the import
goes on; :class:`ImportReport` holds the counts and the list of problems.

What happens to a bad file:

- unreadable image: that image is left out (its partner, if any, is still imported);
- bad landmark file or points outside the image: the images are imported without landmarks
  (consumers such as :func:`.folder.load_samples` skip unannotated images);
- registered pair of different sizes: the whole pair is left out (one landmark file cannot serve
  both images).

Pairing (the generic ``paired`` importer, used by the presets):

- ``name``: by file stem with the spectrum marker removed (``s01_v03_vis.png`` <-> ``s01_v03_th.png``;
  spectrum from a stem suffix such as ``_vis``/``_rgb``/``_th``/``_thr``/``_ir``, or from a folder
  named like ``VIS``/``rgb_image``/``thermal``). Leftovers are paired by bare stem when unique.
- ``order``: the sorted visible list against the sorted thermal list.
- ``pattern``: a regular expression (``re.search`` on the path relative to the source, ``/``
  separators) with named groups ``subject``, optionally ``variation`` and ``spectrum``; every
  other named group becomes part of the pair key (and of the variation when there is no
  ``variation`` group). Files it does not match are ignored (counted in the report).

Without a pattern, the subject is the first folder under the spectrum folder, or else the stem's
part before the first ``_``/``-``; the variation is the rest of the stem.

Annotation files beside the images (same stem, ``.pts``/``.ljson``/``.json``; also ``<stem>_lm``,
``<stem>.png.pts``... and a pair-level ``s01_v03.pts`` for ``s01_v03_vis.png``) are converted to
``.pts``; elsewhere under the source they are found by stem, the one nearest the image winning.
A multi-image annotation file (dlib XML or CSV) can be given with ``annotations=``.
A pair-level annotation serves the visible image when the pair is not registered.
"""
from __future__ import annotations

import argparse
import csv
import io
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable, Iterable, Mapping, Optional, Sequence, Union

import numpy as np

from .folder import TH_FORMATS, DatasetError, PairRecord, write_manifest
from .formats import (AnnotationError, read_csv_landmarks, read_dlib_xml, read_landmarks,
                      to_68)
from .imageio import read_image
from .pts import write_pts
from .import_common import ImportProblem, ImportReport, _prepare_dst, _reason, _safe, natural_key
from .import_300w import import_300w

__all__ = [
    "ImportProblem", "ImportReport", "PairPlan", "Annotation", "PRESETS", "IMAGE_EXTENSIONS",
    "EURECOM_PATTERN", "SPEAKINGFACES_PATTERN", "KOPACZKA_PATTERN",
    "import_dataset", "import_paired", "import_eurecom", "import_speakingfaces", "import_arl_vtf",
    "import_sf_tl54", "import_kopaczka", "import_300w", "write_plans", "natural_key",
    "add_import_arguments", "run_import_command", "spectrum_from_name", "strip_spectrum",
]

PathLike = Union[str, os.PathLike]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".npy")
SIDE_ANNOTATION_EXTENSIONS = (".pts", ".ljson", ".json")
VIS_TOKENS = frozenset({"vis", "visible", "rgb", "color", "colour", "vi"})
TH_TOKENS = frozenset({"th", "thr", "thermal", "ir", "lwir", "therm", "infrared"})
_ANN_SUFFIXES = ("_landmarks", "_landmark", "_lms", "_lm", "_pts", "_ann", "_annotation", "_shape")
_SPLIT = re.compile(r"[_\-. ]+")

#: Eurecom VIS-TH: the exact file names are not published. The default takes a number (subject)
#: and a variation name/number, separated by ``_``, ``-`` or ``/``, with an optional spectrum
#: suffix; the spectrum otherwise comes from a ``VIS``/``TH`` (visible/thermal, rgb/ir...) folder.
#: Matches ``VIS/001_05.png``, ``001/05_th.jpg``, ``th/12-smile.png``, ``003_07_vis.png``.
EURECOM_PATTERN = (r"(?:^|/)(?P<subject>\d+)[_/-](?P<variation>[A-Za-z0-9]+)"
                   r"(?:[_-](?P<spectrum>vis|visible|rgb|th|thermal|ir|lwir))?\.[A-Za-z0-9]+$")
EURECOM_SUBJECTS = 50
EURECOM_VARIATIONS = 21
#: SpeakingFaces: ``sub_{id}/trial_{n}/{rgb_image,thr_image}/{sub}_{trial}_{pos}_{frame}_{1|2}.png``,
#: the last field 1 = thermal, 2 = visible.
SPEAKINGFACES_PATTERN = (r"(?:^|/)(?P<subject>\d+)_(?P<trial>\d+)_(?P<pos>\d+)_(?P<frame>\d+)"
                         r"_(?P<spectrum>[12])\.[A-Za-z0-9]+$")
SPEAKINGFACES_SPECTRA = {"1": "th", "2": "vis"}
#: Kopaczka et al. thermal faces: ``irface_subNNN_seqNN_frmNNNNN...`` (thermal only).
KOPACZKA_PATTERN = r"irface_sub(?P<subject>\d+)_seq(?P<seq>\d+)_frm(?P<frame>\d+)"


# ---------------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------------
# ---------------------------------------------------------------------------------------------
# plans
# ---------------------------------------------------------------------------------------------
@dataclass
class Annotation:
    """Where a face's landmarks come from: a file, or points already read from a multi-image file."""

    path: Path
    points: Optional[np.ndarray] = None

    def load(self) -> np.ndarray:
        return self.points if self.points is not None else read_landmarks(self.path)


@dataclass
class PairPlan:
    """One manifest row to write: source images, their annotations, names."""

    subject: str
    variation: str
    key: str
    vis: Optional[Path] = None
    th: Optional[Path] = None
    ann_vis: Optional[Annotation] = None
    ann_th: Optional[Annotation] = None
    ann_pair: Optional[Annotation] = None
    registered: bool = True


def _tokens(name: str) -> list[str]:
    return [t for t in _SPLIT.split(name.lower()) if t]


def _spectrum_token(tok: str) -> Optional[str]:
    if tok in VIS_TOKENS:
        return "vis"
    if tok in TH_TOKENS:
        return "th"
    return None


def _stem_spectrum(stem: str) -> tuple[Optional[str], str]:
    """(spectrum, stem without it) from a trailing ``_vis``/``-th``... marker in a file stem."""
    m = re.search(r"[_\-. ]([A-Za-z]+)$", stem)
    if m:
        spec = _spectrum_token(m.group(1).lower())
        if spec:
            return spec, stem[: m.start()]
    return None, stem


def spectrum_from_name(name: str) -> Optional[str]:
    """``"th"`` / ``"vis"`` when the words of a file name (its stem: ``face_thermal_01``, ``0001-IR``,
    ``rgb_007``) name one spectrum - the vocabulary of :data:`VIS_TOKENS` / :data:`TH_TOKENS` -, else None
    (no spectrum word, or words of both)."""
    found = {s for s in (_spectrum_token(t) for t in _tokens(PurePosixPath(name).stem)) if s}
    return found.pop() if len(found) == 1 else None


def strip_spectrum(stem: str) -> str:
    """A file stem without its trailing spectrum marker (``0012_vis`` -> ``0012``, ``a-IR`` -> ``a``)."""
    return _stem_spectrum(stem)[1] or stem


def _dir_spectrum(name: str) -> Optional[str]:
    """Spectrum of a folder named ``VIS``, ``thermal``, ``rgb_image``, ``thr_image``... (None if unclear)."""
    found = {s for s in (_spectrum_token(t) for t in _tokens(name)) if s}
    return found.pop() if len(found) == 1 else None


def _spectrum_of(rel: PurePosixPath) -> Optional[str]:
    spec, _ = _stem_spectrum(rel.stem)
    if spec:
        return spec
    for part in reversed(rel.parts[:-1]):
        spec = _dir_spectrum(part)
        if spec:
            return spec
    return None


def _pair_key(rel: PurePosixPath) -> tuple[str, str]:
    """(key with path, bare stem) without the spectrum markers of file stem and folders."""
    _, stem = _stem_spectrum(rel.stem)
    dirs = [d for d in rel.parts[:-1] if _dir_spectrum(d) is None]
    return "/".join(dirs + [stem]), stem


def _guess_subject_variation(rel: PurePosixPath) -> tuple[str, str]:
    _, stem = _stem_spectrum(rel.stem)
    dirs = [d for d in rel.parts[:-1] if _dir_spectrum(d) is None]
    if dirs:
        subject = dirs[0]
        variation = stem
        for sep in ("_", "-"):
            if stem.startswith(subject + sep) and len(stem) > len(subject) + 1:
                variation = stem[len(subject) + 1:]
        if len(dirs) > 1:
            variation = "_".join(dirs[1:] + [variation])
        return subject, variation
    m = re.match(r"^(.+?)[_-](.+)$", stem)
    if m:
        return m.group(1), m.group(2)
    return stem, stem


def _is_image(p: Path) -> bool:
    return p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")


def _walk(root: Path, exclude: Optional[Path] = None) -> list[Path]:
    out = []
    excl = exclude.resolve() if exclude is not None else None
    for dirpath, dirnames, filenames in os.walk(root):
        d = Path(dirpath)
        if excl is not None:
            dirnames[:] = [n for n in dirnames if (d / n).resolve() != excl]
        dirnames[:] = sorted(n for n in dirnames if not n.startswith("."))
        out += [d / f for f in sorted(filenames) if not f.startswith(".")]
    return out


def _rel(path: Path, root: Path) -> PurePosixPath:
    try:
        return PurePosixPath(path.relative_to(root).as_posix())
    except ValueError:
        return PurePosixPath(path.name)


# ---------------------------------------------------------------------------------------------
# annotation look-up
# ---------------------------------------------------------------------------------------------
def _ann_stem(p: Path) -> str:
    stem = p.stem
    low = stem.lower()
    for ext in IMAGE_EXTENSIONS:  # "face.png.pts"
        if low.endswith(ext):
            stem, low = stem[: -len(ext)], low[: -len(ext)]
            break
    for suf in _ANN_SUFFIXES:  # "face_lm.ljson"
        if low.endswith(suf):
            stem = stem[: -len(suf)]
            break
    return stem


class AnnotationIndex:
    """Annotation files under ``root``, found by the stem of the image they belong to.

    A file whose path marks the other spectrum (``VIS/x.pts`` for a thermal image) is not used.
    """

    def __init__(self, root: Path, files: Iterable[Path], key: Optional[Callable[[Path], Optional[str]]] = None,
                 extra: Optional[Mapping[str, Annotation]] = None) -> None:
        self._root = root
        self._key = key or _ann_stem
        self._by_key: dict[str, list[Path]] = {}
        for f in files:
            if f.suffix.lower() in SIDE_ANNOTATION_EXTENSIONS:
                k = self._key(f)
                if k:
                    self._by_key.setdefault(k, []).append(f)
        self._extra = dict(extra or {})

    def find(self, image: Path, keys: Sequence[str] = (), spectrum: Optional[str] = None) -> Optional[Annotation]:
        """The annotation of ``image`` (by its key, then by the extra ``keys``), nearest first.

        With ``spectrum``, files whose path marks the other spectrum are skipped.
        """
        own = self._key(image) or image.stem
        for k in [own, *keys]:
            cands = self._by_key.get(k) or []
            if spectrum is not None:
                cands = [c for c in cands if _spectrum_of(_rel(c, self._root)) in (None, spectrum)]
            if cands:
                return Annotation(min(cands, key=lambda c: (-_common_len(c, image), _ext_rank(c), str(c))))
        for k in (image.name, image.stem, own, *keys):
            if k in self._extra:
                return self._extra[k]
        return None


def _ext_rank(p: Path) -> int:
    ext = p.suffix.lower()
    return SIDE_ANNOTATION_EXTENSIONS.index(ext) if ext in SIDE_ANNOTATION_EXTENSIONS else 9


def _common_len(a: Path, b: Path) -> int:
    n = 0
    for x, y in zip(a.parent.parts, b.parent.parts):
        if x != y:
            break
        n += 1
    return n


def _multi_annotations(path: Optional[PathLike], report: ImportReport) -> dict[str, Annotation]:
    """Entries of a dlib XML / CSV annotation file, keyed by image path, file name and stem."""
    if path is None:
        return {}
    p = Path(path)
    try:
        if p.suffix.lower() == ".xml":
            entries = {k: v.points for k, v in read_dlib_xml(p).items()}
        elif p.suffix.lower() == ".csv":
            entries = read_csv_landmarks(p)
        else:
            raise AnnotationError(f"{p}: a multi-image annotation file must be dlib .xml or .csv")
    except AnnotationError as exc:
        report.add(p, _reason(exc, p))
        return {}
    out: dict[str, Annotation] = {}
    for image, pts in entries.items():
        a = Annotation(p, pts)
        q = PurePosixPath(image.replace("\\", "/"))
        for k in (str(q), q.name, q.stem):
            out.setdefault(k, a)
    return out


# ---------------------------------------------------------------------------------------------
# writing
# ---------------------------------------------------------------------------------------------
def _atomic_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent)
    os.close(fd)
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _th_format(img: np.ndarray, u16_format: str) -> str:
    if img.dtype == np.uint16:
        return u16_format
    if img.dtype == np.float32 or img.dtype == np.float64:
        return "f32_c"
    return "u8"


def _size(img: np.ndarray) -> tuple[int, int]:
    return int(img.shape[1]), int(img.shape[0])


def _check_points(pts: np.ndarray, size: tuple[int, int], margin: float) -> Optional[str]:
    ok = np.isfinite(pts).all(axis=1)
    if not ok.any():
        return "no landmark is present"
    w, h = size
    p = pts[ok]
    out = ((p[:, 0] < -0.5 - margin) | (p[:, 0] > w - 0.5 + margin)
           | (p[:, 1] < -0.5 - margin) | (p[:, 1] > h - 0.5 + margin))
    if out.any():
        idx = np.flatnonzero(ok)[out]
        x, y = pts[idx[0]]
        return (f"{len(idx)} point(s) outside the {w}x{h} image (point {int(idx[0])} at "
                f"({x:.1f}, {y:.1f}))")
    return None


def _load_points(ann: Annotation, size: tuple[int, int], margin: float, report: ImportReport) -> Optional[np.ndarray]:
    try:
        raw = ann.load()
        pts = to_68(raw, ann.path)
    except (AnnotationError, ValueError) as exc:
        report.add(ann.path, _reason(exc, ann.path) + "; imported without landmarks")
        return None
    bad = _check_points(pts, size, margin)
    if bad:
        report.add(ann.path, bad + "; imported without landmarks")
        return None
    return pts  # 54-point files are mapped to 68; the 14 mouth points they lack are NaN (-1 -1 in .pts)


def _same_file(a: Optional[Annotation], b: Optional[Annotation]) -> bool:
    return a is not None and b is not None and a.path == b.path and a.points is None and b.points is None


def write_plans(plans: Sequence[PairPlan], src: PathLike, dst: PathLike, report: ImportReport, *,
                th_u16_format: str = "u16_raw", bounds_margin: float = 0.0,
                progress: Optional[Callable[[int, int], None]] = None) -> ImportReport:
    """Check and copy every planned pair into ``dst``, write the .pts files and the manifest."""
    if th_u16_format not in TH_FORMATS:
        raise ValueError(f"th_u16_format must be one of {TH_FORMATS}, got {th_u16_format!r}")
    dst = Path(dst)
    dst.mkdir(parents=True, exist_ok=True)
    records: list[PairRecord] = []
    used: set[tuple[str, str]] = set()
    plans = sorted(plans, key=lambda q: natural_key(q.subject))  # stable: keeps each subject's order
    for i, plan in enumerate(plans):
        if progress is not None:
            progress(i, len(plans))
        imgs: dict[str, np.ndarray] = {}
        for spec, path in (("vis", plan.vis), ("th", plan.th)):
            if path is None:
                continue
            try:
                imgs[spec] = read_image(path)
            except (ValueError, OSError) as exc:
                report.add(path, _reason(exc, path))
        if not imgs:
            report.n_skipped += 1
            continue
        registered = plan.registered
        if registered and len(imgs) == 2 and imgs["vis"].shape[:2] != imgs["th"].shape[:2]:
            wv, hv = _size(imgs["vis"])
            wt, ht = _size(imgs["th"])
            report.add(plan.th, f"registered pair of different sizes: thermal {wt}x{ht}, visible {wv}x{hv} "
                                f"({plan.vis}); pair left out")
            report.n_skipped += 1
            continue
        if len(imgs) == 1:
            registered = True  # one image: the one landmark file serves it
        # which annotation belongs to which image
        if plan.registered:
            # one landmark file serves the pair (annotated on the visible image by convention),
            # whichever of the two images could be read
            main = plan.ann_vis or plan.ann_pair or plan.ann_th
            extra_th = plan.ann_th if (plan.ann_th is not None and plan.ann_th is not main
                                       and not _same_file(plan.ann_th, main) and len(imgs) == 2) else None
            any_img = next(iter(imgs.values()))
            pts_main = _load_points(main, _size(any_img), bounds_margin, report) if main else None
            pts_th = _load_points(extra_th, _size(imgs["th"]), bounds_margin, report) if extra_th else None
            pts_vis = pts_main if "vis" in imgs else None
            if "vis" not in imgs:
                pts_th = pts_main
        else:
            ann_vis = plan.ann_vis or (plan.ann_pair if plan.vis is not None else None)
            ann_th = plan.ann_th or (plan.ann_pair if plan.vis is None else None)
            if _same_file(ann_vis, ann_th):
                ann_th = None  # one file found for both images: it belongs to the visible one
            pts_vis = _load_points(ann_vis, _size(imgs["vis"]), bounds_margin, report) \
                if ann_vis and "vis" in imgs else None
            pts_th = _load_points(ann_th, _size(imgs["th"]), bounds_margin, report) \
                if ann_th and "th" in imgs else None
        subject, key = _safe(plan.subject), _safe(plan.key)
        k, n = key, 1
        while (subject, k) in used:
            n += 1
            k = f"{key}_{n}"
        key = k
        used.add((subject, key))
        rec = PairRecord(subject=plan.subject, variation=plan.variation, registered=registered)
        try:
            for spec, path in (("vis", plan.vis), ("th", plan.th)):
                if spec not in imgs or path is None:
                    continue
                rel = f"images/{subject}/{key}_{spec}{path.suffix.lower()}"
                _atomic_copy(path, dst / rel)
                setattr(rec, spec, rel)
                if spec == "th":
                    rec.th_format = _th_format(imgs["th"], th_u16_format)
            main_pts = pts_vis if "vis" in imgs else pts_th
            if main_pts is not None:
                rec.landmarks = f"landmarks/{subject}/{key}.pts"
                write_pts(dst / rec.landmarks, main_pts)
            if "vis" in imgs and pts_th is not None:
                rec.th_landmarks = f"landmarks/{subject}/{key}_th.pts"
                write_pts(dst / rec.th_landmarks, pts_th)
        except OSError as exc:
            report.add(plan.vis or plan.th, f"cannot write into {dst} ({exc.strerror or exc})")
            report.n_skipped += 1
            continue
        records.append(rec)
        report.n_vis += bool(rec.vis)
        report.n_th += bool(rec.th)
        report.n_pairs += bool(rec.vis and rec.th)
        report.n_annotated += bool(rec.landmarks or rec.th_landmarks)
    if progress is not None:
        progress(len(plans), len(plans))
    report.n_records = len(records)
    report.manifest = str(write_manifest(dst, records))
    if report.n_records and not report.n_annotated:
        report.notes.append("no landmark file was found beside the images")
    return report


# ---------------------------------------------------------------------------------------------
# the generic paired-folders importer
# ---------------------------------------------------------------------------------------------
@dataclass
class _Item:
    path: Path
    rel: PurePosixPath
    spectrum: Optional[str]
    subject: str = ""
    variation: str = ""
    key: str = ""
    stem: str = ""


def _spectrum_dirs(src: Path) -> tuple[Optional[Path], Optional[Path]]:
    """Top-level ``VIS``/``TH``-like folders of ``src``, when there is exactly one of each."""
    vis, th = [], []
    for d in sorted(p for p in src.iterdir() if p.is_dir()):
        spec = _dir_spectrum(d.name)
        (vis if spec == "vis" else th if spec == "th" else []).append(d)
    return (vis[0], th[0]) if len(vis) == 1 and len(th) == 1 else (None, None)


def _items_from_pattern(files: Sequence[tuple[Path, PurePosixPath, Optional[str]]], regex: re.Pattern,
                        spectrum_map: Mapping[str, str], report: ImportReport,
                        variation_fn: Optional[Callable[[dict], str]]) -> list[_Item]:
    if "subject" not in regex.groupindex:
        raise ValueError(f"pattern {regex.pattern!r} needs a named group 'subject' (?P<subject>...)")
    items = []
    unmatched: list[str] = []
    for path, rel, spec in files:
        m = regex.search(str(rel))
        if not m:
            unmatched.append(str(rel))
            continue
        g = {k: v for k, v in m.groupdict().items() if v is not None}
        if g.get("spectrum") is not None:
            raw = g["spectrum"]
            spec = spectrum_map.get(raw) or spectrum_map.get(raw.lower()) or _spectrum_token(raw.lower())
            if spec is None:
                report.add(path, f"spectrum {raw!r} from the pattern is neither visible nor thermal")
                continue
        others = [f"{k}{g[k]}" if not g[k][:1].isalpha() else g[k]
                  for k in regex.groupindex if k not in ("subject", "variation", "spectrum") and k in g]
        if variation_fn is not None:
            variation = variation_fn(g)
        elif "variation" in g:
            variation = g["variation"]
        else:
            variation = "_".join(others) or rel.stem
        key_parts = [g["subject"]] + ([g["variation"]] if "variation" in g else []) + others
        items.append(_Item(path, rel, spec, subject=g["subject"], variation=variation,
                           key="_".join(key_parts), stem=rel.stem))
    if unmatched:
        report.n_ignored += len(unmatched)
        report.notes.append(f"{len(unmatched)} image(s) do not match the pattern and were ignored "
                            f"(e.g. {unmatched[0]})")
    return items


def import_paired(src: PathLike, dst: PathLike, *, vis_dir: Optional[PathLike] = None,
                  th_dir: Optional[PathLike] = None, pair_by: str = "name", pattern: Optional[str] = None,
                  spectrum_map: Optional[Mapping[str, str]] = None, registered: bool = True,
                  annotations: Optional[PathLike] = None, th_u16_format: str = "u16_raw",
                  bounds_margin: float = 0.0, overwrite: bool = False, preset: str = "paired",
                  order_labels: Optional[Callable[[int], tuple[str, str]]] = None,
                  variation_fn: Optional[Callable[[dict], str]] = None,
                  annotation_key: Optional[Callable[[Path], Optional[str]]] = None,
                  default_spectrum: Optional[str] = None,
                  progress: Optional[Callable[[int, int], None]] = None) -> ImportReport:
    """Import visible/thermal images from ``src`` into the dataset folder ``dst``.

    ``vis_dir``/``th_dir`` (absolute or relative to ``src``) name the two spectrum folders; without
    them, ``src``'s ``VIS``/``TH``-like sub-folders are used when there is one of each, else every
    image under ``src`` with its spectrum from a stem suffix or a folder name. ``pair_by`` is
    ``name``, ``order`` or ``pattern`` (see the module notes); a ``pattern`` alone implies
    ``pattern`` pairing of the whole source. ``registered`` marks pixel-registered pairs (one
    landmark file for both, same size required). ``default_spectrum`` (``vis``/``th``) is the
    spectrum of images that show none (a thermal-only dataset). ``order_labels(i) -> (subject, variation)``
    names the i-th pair under ``order`` pairing. Returns the :class:`ImportReport`.
    """
    src, dst = Path(src), Path(dst)
    if pair_by not in ("name", "order", "pattern"):
        raise ValueError(f"pair_by must be 'name', 'order' or 'pattern', got {pair_by!r}")
    if pair_by == "pattern" and not pattern:
        raise ValueError("pair_by='pattern' needs a pattern (a regex with named groups subject/variation/spectrum)")
    regex = None
    if pattern:
        try:
            regex = re.compile(pattern, re.IGNORECASE)
        except re.error as exc:
            raise ValueError(f"bad pattern {pattern!r}: {exc}") from None
        if "subject" not in regex.groupindex:
            raise ValueError(f"pattern {pattern!r} needs a named group 'subject' (?P<subject>...)")
    if (vis_dir is None) != (th_dir is None):
        raise ValueError("give both vis_dir and th_dir, or neither")
    if default_spectrum not in (None, "vis", "th"):
        raise ValueError(f"default_spectrum must be 'vis' or 'th', got {default_spectrum!r}")
    _prepare_dst(src, dst, overwrite)
    report = ImportReport(preset=preset, src=str(src), dst=str(dst))
    all_files = _walk(src, exclude=dst)
    index = AnnotationIndex(src, all_files, key=annotation_key, extra=_multi_annotations(annotations, report))

    # 1. images and their spectrum
    files: list[tuple[Path, PurePosixPath, Optional[str]]] = []
    if vis_dir is not None:
        roots = [(Path(src, vis_dir), "vis"), (Path(src, th_dir), "th")]  # type: ignore[arg-type]
    else:
        v, t = _spectrum_dirs(src)
        roots = [(v, "vis"), (t, "th")] if v is not None else [(src, None)]
    for root, spec in roots:
        if not root.is_dir():
            raise DatasetError(f"{root}: not a folder")
        for f in (all_files if root == src else _walk(root, exclude=dst)):
            if _is_image(f):
                rel = _rel(f, root)
                files.append((f, _rel(f, src) if regex is not None else rel, spec or _spectrum_of(rel)))
    if not files:
        report.notes.append(f"no images ({', '.join(IMAGE_EXTENSIONS)}) found under {src}")

    # 2. items with subject / variation / key
    if regex is not None:
        items = _items_from_pattern(files, regex, spectrum_map or {}, report, variation_fn)
    else:
        items = []
        for path, rel, spec in files:
            key, stem = _pair_key(rel)
            subject, variation = _guess_subject_variation(rel)
            items.append(_Item(path, rel, spec, subject=subject, variation=variation, key=key, stem=stem))
    if default_spectrum is not None:
        for it in items:
            it.spectrum = it.spectrum or default_spectrum
    unknown = [it for it in items if it.spectrum is None]
    for it in unknown:
        report.add(it.path, "cannot tell whether it is visible or thermal (no _vis/_th suffix, "
                            "VIS/TH folder or spectrum group in the pattern); left out")
    report.n_skipped += len(unknown)
    vis = [it for it in items if it.spectrum == "vis"]
    th = [it for it in items if it.spectrum == "th"]

    # 3. pairing
    pairs: list[tuple[Optional[_Item], Optional[_Item]]] = []
    if pair_by == "order":
        vis.sort(key=lambda it: natural_key(str(it.rel)))
        th.sort(key=lambda it: natural_key(str(it.rel)))
        if len(vis) != len(th):
            report.notes.append(f"{len(vis)} visible vs {len(th)} thermal images: pairing by order leaves "
                                f"{abs(len(vis) - len(th))} unpaired")
        for i in range(max(len(vis), len(th))):
            pairs.append((vis[i] if i < len(vis) else None, th[i] if i < len(th) else None))
    else:
        pairs = _pair_by_key(vis, th, report)
        pairs.sort(key=lambda vt: natural_key((vt[0] or vt[1]).key))  # type: ignore[union-attr]

    # 4. plans
    plans: list[PairPlan] = []
    for i, (v, t) in enumerate(pairs):
        lead = v or t
        assert lead is not None
        subject, variation, key = lead.subject, lead.variation, lead.key
        if pair_by == "order":
            if order_labels is not None:
                subject, variation = order_labels(i)
                key = f"{subject}_{variation}"
            elif regex is None:
                key = lead.key.replace("/", "_")
        if v is None or t is None:
            report.n_unpaired += 1
        stems = [it.stem for it in (v, t) if it is not None]
        pair_stems = list(dict.fromkeys(_stem_spectrum(s)[1] for s in stems))
        plans.append(PairPlan(
            subject=subject, variation=variation, key=key.replace("/", "_"),
            vis=v.path if v else None, th=t.path if t else None,
            ann_vis=index.find(v.path, spectrum="vis") if v else None,
            ann_th=index.find(t.path, spectrum="th") if t else None,
            ann_pair=_find_pair_annotation(index, v, t, pair_stems), registered=registered))
    for pl in plans:  # a file found for one image and also as "pair" annotation: count it once
        if pl.ann_pair is not None and any(a is not None and a.path == pl.ann_pair.path and
                                           a.points is None for a in (pl.ann_vis, pl.ann_th)):
            pl.ann_pair = None
    if report.n_unpaired:
        report.notes.append(f"{report.n_unpaired} image(s) have no partner of the other spectrum; "
                            "imported as single-spectrum records")
    return write_plans(plans, src, dst, report, th_u16_format=th_u16_format, bounds_margin=bounds_margin,
                       progress=progress)


def _find_pair_annotation(index: AnnotationIndex, v: Optional[_Item], t: Optional[_Item],
                          stems: Sequence[str]) -> Optional[Annotation]:
    for s in stems:
        for item in (v, t):
            if item is None:
                continue
            cand = item.path.with_name(s + item.path.suffix)
            a = index.find(cand)
            if a is not None:
                return a
    return None


def _pair_by_key(vis: list[_Item], th: list[_Item], report: ImportReport) -> list[tuple[Optional[_Item], Optional[_Item]]]:
    def group(items: list[_Item], attr: str) -> dict[str, list[_Item]]:
        out: dict[str, list[_Item]] = {}
        for it in items:
            out.setdefault(getattr(it, attr), []).append(it)
        return out

    pairs: list[tuple[Optional[_Item], Optional[_Item]]] = []
    for items in (vis, th):
        for k, its in group(items, "key").items():
            if len(its) > 1:
                report.add(its[1].path, f"same pair name {k!r} as {its[0].path} (same spectrum); "
                                        "the pair is ambiguous, both left out")
    dup = {id(it) for items in (vis, th) for its in group(items, "key").values() if len(its) > 1 for it in its}
    report.n_skipped += len(dup)
    vis = [it for it in vis if id(it) not in dup]
    th = [it for it in th if id(it) not in dup]
    tk = {it.key: it for it in th}
    left_v: list[_Item] = []
    used: set[int] = set()
    for v in vis:
        t = tk.get(v.key)
        if t is not None:
            pairs.append((v, t))
            used.add(id(t))
        else:
            left_v.append(v)
    left_t = [t for t in th if id(t) not in used]
    # leftovers: pair by bare stem when it is unique on both sides
    bv, bt = group(left_v, "stem"), group(left_t, "stem")
    for v in left_v:
        cands = bt.get(v.stem, [])
        if len(bv.get(v.stem, [])) == 1 and len(cands) == 1 and id(cands[0]) not in used:
            pairs.append((v, cands[0]))
            used.add(id(cands[0]))
        else:
            pairs.append((v, None))
    pairs += [(None, t) for t in left_t if id(t) not in used]
    return pairs


# ---------------------------------------------------------------------------------------------
# presets
# ---------------------------------------------------------------------------------------------
def import_eurecom(src: PathLike, dst: PathLike, *, pattern: Optional[str] = None, pair_by: Optional[str] = None,
                   n_variations: int = EURECOM_VARIATIONS, variation_names: Optional[Sequence[str]] = None,
                   **kwargs) -> ImportReport:
    """Eurecom VIS-TH paired faces (50 subjects x 21 variations, pixel-registered pairs).

    Default: ``pattern`` pairing with :data:`EURECOM_PATTERN`. With ``pair_by='order'`` the sorted
    visible and thermal lists are paired in order and labelled subject-major: pair ``i`` is
    subject ``i // n_variations + 1``, variation ``i % n_variations + 1`` (or
    ``variation_names[i % n_variations]``). The annotations (made on the visible images) serve both.
    """
    pair_by = pair_by or "pattern"
    if pair_by == "pattern":
        pattern = pattern or EURECOM_PATTERN
    if variation_names is not None and len(variation_names) != n_variations:
        raise ValueError(f"{len(variation_names)} variation names for {n_variations} variations")

    def labels(i: int) -> tuple[str, str]:
        s, v = divmod(i, n_variations)
        name = variation_names[v] if variation_names is not None else f"{v + 1:02d}"
        return f"{s + 1:03d}", name

    kwargs.setdefault("registered", True)
    return import_paired(src, dst, pair_by=pair_by, pattern=pattern if pair_by == "pattern" else None,
                         order_labels=labels if pair_by == "order" else None, preset="eurecom", **kwargs)


def _speakingfaces_variation(g: dict) -> str:
    return f"trial{g.get('trial', '')}_pos{g.get('pos', '')}"


def import_speakingfaces(src: PathLike, dst: PathLike, *, pattern: Optional[str] = None,
                         pair_by: Optional[str] = None, **kwargs) -> ImportReport:
    """SpeakingFaces: ``sub_{id}/trial_{n}/{rgb_image,thr_image}/{sub}_{trial}_{pos}_{frame}_{1|2}.png``.

    The last field says the spectrum (1 thermal, 2 visible); pairs share sub, trial, pos and frame.
    The variation is ``trial<n>_pos<p>``. The two cameras are not pixel-registered (``registered``
    defaults to False).
    """
    kwargs.setdefault("registered", False)
    kwargs.setdefault("spectrum_map", SPEAKINGFACES_SPECTRA)
    pair_by = pair_by or "pattern"
    return import_paired(src, dst, pair_by=pair_by,
                         pattern=(pattern or SPEAKINGFACES_PATTERN) if pair_by != "order" or pattern else None,
                         variation_fn=None if pattern else _speakingfaces_variation,
                         preset="speakingfaces", **kwargs)


ARL_CAMERA_VIS = ("vis", "rgb", "color", "colour", "basler", "visible")
ARL_CAMERA_TH = ("lwir", "thermal", "therm", "boson", "flir", "ir", "th")


def _camera_spectrum(camera: str) -> Optional[str]:
    c = camera.strip().lower()
    toks = _tokens(c)
    for names, spec in ((ARL_CAMERA_TH, "th"), (ARL_CAMERA_VIS, "vis")):
        if any(t in names for t in toks) or any(n in c for n in names if len(n) > 3):
            return spec
    return None


def import_arl_vtf(src: PathLike, dst: PathLike, *, metadata: Optional[PathLike] = None,
                   registered: bool = False, overwrite: bool = False, th_u16_format: str = "u16_raw",
                   bounds_margin: float = 0.0, annotations: Optional[PathLike] = None,
                   progress: Optional[Callable[[int, int], None]] = None) -> ImportReport:
    """ARL-VTF: ``metadata.csv`` with columns ``camera, condition, subid, filepath``.

    ``filepath`` is relative to the metadata file's folder (or absolute). Visible vs thermal comes
    from the camera name (``lwir``/``thermal``/``boson``... vs ``rgb``/``vis``/``basler``...).
    Within a subject and condition, images pair by file stem without camera/spectrum words, the
    rest by sorted order. The variation is the condition. Not registered by default.
    """
    src, dst = Path(src), Path(dst)
    meta = Path(metadata) if metadata is not None else src / "metadata.csv"
    _prepare_dst(src, dst, overwrite)
    report = ImportReport(preset="arl-vtf", src=str(src), dst=str(dst))
    if not meta.is_file():
        raise DatasetError(f"{meta}: no metadata.csv (ARL-VTF lists its images there)")
    try:
        text = meta.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{meta}: cannot read ({exc})") from exc
    reader = csv.DictReader(io.StringIO(text))
    cols = {c.strip().lower(): c for c in (reader.fieldnames or [])}
    need = {"camera", "condition", "subid", "filepath"}
    if not need <= set(cols):
        raise DatasetError(f"{meta}: missing columns {sorted(need - set(cols))} (has {reader.fieldnames})")
    all_files = _walk(src, exclude=dst)
    index = AnnotationIndex(src, all_files, extra=_multi_annotations(annotations, report))
    groups: dict[tuple[str, str], dict[str, list[_Item]]] = {}
    for line, row in enumerate(reader, start=2):
        cam, cond = row[cols["camera"]].strip(), row[cols["condition"]].strip()
        sub, fp = row[cols["subid"]].strip(), row[cols["filepath"]].strip()
        if not fp:
            report.add(f"{meta}:{line}", "empty filepath")
            continue
        path = Path(fp) if Path(fp).is_absolute() else meta.parent / fp
        spec = _camera_spectrum(cam)
        if spec is None:
            report.add(f"{meta}:{line}", f"camera {cam!r} is neither visible nor thermal; row left out")
            report.n_skipped += 1
            continue
        words = {t for t in _tokens(cam)} | VIS_TOKENS | TH_TOKENS
        bare = "_".join(t for t in _tokens(path.stem) if t not in words) or path.stem
        item = _Item(path, _rel(path, src), spec, subject=sub or "unknown", variation=cond or "default",
                     key=bare, stem=bare)
        groups.setdefault((item.subject, item.variation), {"vis": [], "th": []})[spec].append(item)
    plans: list[PairPlan] = []
    for (sub, cond), g in sorted(groups.items(), key=lambda kv: (natural_key(kv[0][0]), kv[0][1])):
        vis = sorted(g["vis"], key=lambda it: natural_key(str(it.rel)))
        th = sorted(g["th"], key=lambda it: natural_key(str(it.rel)))
        tk: dict[str, list[_Item]] = {}
        for t in th:
            tk.setdefault(t.key, []).append(t)
        pairs, lv = [], []
        used: set[int] = set()
        for v in vis:
            c = tk.get(v.key, [])
            if len(c) == 1 and id(c[0]) not in used:
                pairs.append((v, c[0]))
                used.add(id(c[0]))
            else:
                lv.append(v)
        lt = [t for t in th if id(t) not in used]
        if len(lv) == len(lt):
            pairs += list(zip(lv, lt))
        else:
            pairs += [(v, None) for v in lv] + [(None, t) for t in lt]
            report.n_unpaired += len(lv) + len(lt)
        for n, (v, t) in enumerate(pairs):
            lead = v or t
            plans.append(PairPlan(subject=sub, variation=cond, key=f"{_safe(cond)}_{_safe(lead.key)}",
                                  vis=v.path if v else None, th=t.path if t else None,
                                  ann_vis=index.find(v.path, spectrum="vis") if v else None,
                                  ann_th=index.find(t.path, spectrum="th") if t else None,
                                  registered=registered))
    if report.n_unpaired:
        report.notes.append(f"{report.n_unpaired} image(s) have no partner of the other spectrum; "
                            "imported as single-spectrum records")
    return write_plans(plans, src, dst, report, th_u16_format=th_u16_format, bounds_margin=bounds_margin,
                       progress=progress)


def import_sf_tl54(src: PathLike, dst: PathLike, **kwargs) -> ImportReport:
    """SF-TL54: thermal + visible face pairs annotated with 54 points in LabelMe JSON.

    Spectrum from folder names (``rgb``/``visible``/``thermal``/``ir``...) or stem suffixes; pairs by
    stem; each image's LabelMe file (same stem, found anywhere under the source, nearest wins) is
    mapped to 68 points (:func:`~dmsl_core.data.formats.map_54_to_68`; the 14 mouth points it lacks
    are missing). Each image keeps its own landmarks (``registered`` defaults to False).
    """
    kwargs.setdefault("registered", False)
    kwargs.setdefault("pair_by", "pattern" if kwargs.get("pattern") else "name")
    return import_paired(src, dst, preset="sf-tl54", **kwargs)


def _kopaczka_key(p: Path) -> Optional[str]:
    m = re.search(KOPACZKA_PATTERN, p.name, re.IGNORECASE)
    return m.group(0).lower() if m else _ann_stem(p)


def _kopaczka_variation(g: dict) -> str:
    return f"seq{g.get('seq', '')}"


def import_kopaczka(src: PathLike, dst: PathLike, *, pattern: Optional[str] = None, **kwargs) -> ImportReport:
    """Kopaczka et al. thermal faces: ``irface_subNNN_seqNN_frmNNNNN...`` images with ``.ljson``/``.pts``.

    Thermal only; an annotation belongs to the image whose ``irface_sub.._seq.._frm..`` prefix it
    shares. The variation is ``seq<NN>``.
    """
    if kwargs.pop("pair_by", "pattern") != "pattern":
        raise ValueError("kopaczka is thermal only: images are named by pattern, not paired by name or order")
    kwargs.setdefault("default_spectrum", "th")
    return import_paired(src, dst, pair_by="pattern", pattern=pattern or KOPACZKA_PATTERN, preset="kopaczka",
                         variation_fn=None if pattern else _kopaczka_variation,
                         annotation_key=_kopaczka_key, **kwargs)


PRESETS: dict[str, Callable[..., ImportReport]] = {
    "paired": import_paired,
    "eurecom": import_eurecom,
    "speakingfaces": import_speakingfaces,
    "arl-vtf": import_arl_vtf,
    "sf-tl54": import_sf_tl54,
    "kopaczka": import_kopaczka,
    "300w": import_300w,
}


def import_dataset(preset: str, src: PathLike, dst: PathLike, **kwargs) -> ImportReport:
    """Run the importer ``preset`` (a key of :data:`PRESETS`); options it does not take are errors."""
    fn = PRESETS.get(preset)
    if fn is None:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    return fn(src, dst, **kwargs)


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------
def add_import_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments of ``dmsl import``."""
    p.add_argument("src", metavar="SRC", help="source folder (never modified)")
    p.add_argument("dst", metavar="DST", help="destination dataset folder (manifest.csv, images, .pts)")
    p.add_argument("--preset", default="paired", choices=list(PRESETS),
                   help="dataset layout (default: paired = generic visible/thermal folders)")
    p.add_argument("--pattern", help="regex on the path relative to SRC with named groups "
                                     "subject, variation, spectrum (implies --pair-by pattern)")
    p.add_argument("--pair-by", choices=("name", "order", "pattern"), help="how visible and thermal images pair")
    p.add_argument("--vis-dir", help="visible image folder (relative to SRC or absolute)")
    p.add_argument("--th-dir", help="thermal image folder (relative to SRC or absolute)")
    p.add_argument("--annotations", help="a dlib .xml or .csv holding the landmarks of many images")
    p.add_argument("--metadata", help="arl-vtf: the metadata.csv (default SRC/metadata.csv)")
    reg = p.add_mutually_exclusive_group()
    reg.add_argument("--registered", dest="registered", action="store_true", default=None,
                     help="pairs are pixel-registered (one landmark file serves both images)")
    reg.add_argument("--not-registered", dest="registered", action="store_false",
                     help="pairs are not registered (each image keeps its own landmarks)")
    p.add_argument("--th-u16-format", default="u16_raw", choices=("u16_raw", "u16_ck"),
                   help="meaning of 16-bit thermal images (default u16_raw: uncalibrated counts)")
    p.add_argument("--crop", type=float, default=3.0,
                   help="300w: crop side in units of the face box's larger side (default 3)")
    p.add_argument("--face-size", type=float, default=200.0,
                   help="300w: shrink each crop so the face box's larger side is at most this many pixels "
                        "(default 200; 0 keeps full resolution)")
    p.add_argument("--force", action="store_true", help="write into DST even if it already has a manifest.csv")


def run_import_command(args: argparse.Namespace) -> int:
    """``dmsl import``: run the preset, print the summary; exit 1 when nothing was imported."""
    if args.preset == "300w":
        extra = [o for o, v in (("--pattern", args.pattern), ("--pair-by", args.pair_by), ("--vis-dir", args.vis_dir),
                                ("--th-dir", args.th_dir), ("--annotations", args.annotations),
                                ("--metadata", args.metadata), ("--registered", args.registered is not None)) if v]
        if extra:
            raise ValueError(f"{', '.join(extra)}: not used by --preset 300w (a .pts beside each image)")
        report = import_dataset("300w", args.src, args.dst, overwrite=args.force, crop=args.crop,
                                face_size=args.face_size or None)
        print(report.summary())
        return 0 if report.n_records else 1
    kw: dict = {"overwrite": args.force, "th_u16_format": args.th_u16_format}
    if args.registered is not None:
        kw["registered"] = args.registered
    if args.annotations:
        kw["annotations"] = args.annotations
    if args.preset == "arl-vtf":
        extra = [o for o, v in (("--pattern", args.pattern), ("--pair-by", args.pair_by),
                                ("--vis-dir", args.vis_dir), ("--th-dir", args.th_dir)) if v]
        if extra:
            raise ValueError(f"{', '.join(extra)}: not used by --preset arl-vtf (metadata.csv lists the images)")
        if args.metadata:
            kw["metadata"] = args.metadata
    else:
        if args.metadata:
            raise ValueError("--metadata is only for --preset arl-vtf")
        if args.pattern:
            kw["pattern"] = args.pattern
        pair_by = args.pair_by or ("pattern" if args.pattern else None)
        if pair_by:
            kw["pair_by"] = pair_by
        if args.vis_dir or args.th_dir:
            kw["vis_dir"], kw["th_dir"] = args.vis_dir, args.th_dir
    report = import_dataset(args.preset, args.src, args.dst, **kw)
    print(report.summary())
    return 0 if report.n_records else 1
