"""The pairing engine: folders of visible/thermal face images (+ annotations) -> a DMSL dataset folder.

The destination is the project's dataset folder (see :mod:`.folder`)::

    DST/manifest.csv
    DST/images/<subject>/<key>_vis.<ext>, <key>_th.<ext>   (copied byte for byte: 16-bit stays 16-bit)
    DST/landmarks/<subject>/<key>.pts                       (68 points, 54-point files mapped to 68)
    DST/landmarks/<subject>/<key>_th.pts                    (thermal's own file, when it has one)

The source is only read, never modified. Every file that cannot be used (unreadable image, a
landmark file that cannot be parsed or has neither 68 nor 54 points, a point outside its image,
a registered pair whose two images differ in size) is reported with the reason and the import
goes on; :class:`~.common.ImportReport` holds the counts and the list of problems.

What happens to a bad file:

- unreadable image: that image is left out (its partner, if any, is still imported);
- bad landmark file or points outside the image: the images are imported without landmarks
  (consumers such as :func:`.folder.load_samples` skip unannotated images);
- registered pair of different sizes: the whole pair is left out (one landmark file cannot serve
  both images).

Pairing (:func:`import_paired`: the generic ``paired`` preset, used by the others):

- ``name``: by file stem with the spectrum marker removed (``s01_v03_vis.png`` <-> ``s01_v03_th.png``;
  spectrum from a stem suffix such as ``_vis``/``_rgb``/``_th``/``_thr``/``_ir``, or from a folder
  named like ``VIS``/``rgb_image``/``thermal``: the words of :mod:`dmsl_core.data.names`). Leftovers are paired by bare stem when unique.
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

import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable, Iterable, Mapping, Optional, Sequence, Union

import numpy as np

from ..folder import TH_FORMATS, DatasetError, PairRecord, write_manifest
from ..formats import AnnotationError, read_csv_landmarks, read_dlib_xml, read_landmarks, to_68
from ..imageio import read_image
from ..names import (IMAGE_EXTENSIONS, TH_WORDS, VIS_WORDS, dir_spectrum, is_image_file, natural_key,
                     spectrum_dirs, stem_spectrum, word_spectrum)
from ..pts import write_pts
from .common import ImportReport, _prepare_dst, _reason, _safe

__all__ = ["Annotation", "PairPlan", "AnnotationIndex", "Item", "import_paired", "write_plans", "walk_files",
           "rel_path", "annotation_stem", "multi_annotations", "IMAGE_EXTENSIONS", "SIDE_ANNOTATION_EXTENSIONS",
           "VIS_TOKENS", "TH_TOKENS"]

PathLike = Union[str, os.PathLike]

SIDE_ANNOTATION_EXTENSIONS = (".pts", ".ljson", ".json")
#: the spectrum words (:data:`dmsl_core.data.names.VIS_WORDS` / ``TH_WORDS``), by their older names
VIS_TOKENS = VIS_WORDS
TH_TOKENS = TH_WORDS
_ANN_SUFFIXES = ("_landmarks", "_landmark", "_lms", "_lm", "_pts", "_ann", "_annotation", "_shape")


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


def _spectrum_of(rel: PurePosixPath) -> Optional[str]:
    spec, _ = stem_spectrum(rel.stem)
    if spec:
        return spec
    for part in reversed(rel.parts[:-1]):
        spec = dir_spectrum(part)
        if spec:
            return spec
    return None


def _pair_key(rel: PurePosixPath) -> tuple[str, str]:
    """(key with path, bare stem) without the spectrum markers of file stem and folders."""
    _, stem = stem_spectrum(rel.stem)
    dirs = [d for d in rel.parts[:-1] if dir_spectrum(d) is None]
    return "/".join(dirs + [stem]), stem


def _guess_subject_variation(rel: PurePosixPath) -> tuple[str, str]:
    _, stem = stem_spectrum(rel.stem)
    dirs = [d for d in rel.parts[:-1] if dir_spectrum(d) is None]
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


def walk_files(root: Path, exclude: Optional[Path] = None) -> list[Path]:
    """Every file under ``root`` (sorted, hidden files and folders left out), the folder ``exclude`` skipped."""
    out = []
    excl = exclude.resolve() if exclude is not None else None
    for dirpath, dirnames, filenames in os.walk(root):
        d = Path(dirpath)
        if excl is not None:
            dirnames[:] = [n for n in dirnames if (d / n).resolve() != excl]
        dirnames[:] = sorted(n for n in dirnames if not n.startswith("."))
        out += [d / f for f in sorted(filenames) if not f.startswith(".")]
    return out


def rel_path(path: Path, root: Path) -> PurePosixPath:
    """``path`` relative to ``root`` with ``/`` separators (its name alone when it is not under ``root``)."""
    try:
        return PurePosixPath(path.relative_to(root).as_posix())
    except ValueError:
        return PurePosixPath(path.name)


# ---------------------------------------------------------------------------------------------
# annotation look-up
# ---------------------------------------------------------------------------------------------
def annotation_stem(p: Path) -> str:
    """The image stem an annotation file belongs to (``face.png.pts``, ``face_lm.ljson`` -> ``face``)."""
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
        self._key = key or annotation_stem
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
                cands = [c for c in cands if _spectrum_of(rel_path(c, self._root)) in (None, spectrum)]
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


def multi_annotations(path: Optional[PathLike], report: ImportReport) -> dict[str, Annotation]:
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
class Item:
    """One source image on its way to a pair: file, path relative to the source, spectrum and names."""

    path: Path
    rel: PurePosixPath
    spectrum: Optional[str]
    subject: str = ""
    variation: str = ""
    key: str = ""
    stem: str = ""


def _items_from_pattern(files: Sequence[tuple[Path, PurePosixPath, Optional[str]]], regex: re.Pattern,
                        spectrum_map: Mapping[str, str], report: ImportReport,
                        variation_fn: Optional[Callable[[dict], str]]) -> list[Item]:
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
            spec = spectrum_map.get(raw) or spectrum_map.get(raw.lower()) or word_spectrum(raw)
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
        items.append(Item(path, rel, spec, subject=g["subject"], variation=variation,
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
    all_files = walk_files(src, exclude=dst)
    index = AnnotationIndex(src, all_files, key=annotation_key, extra=multi_annotations(annotations, report))

    # 1. images and their spectrum
    files: list[tuple[Path, PurePosixPath, Optional[str]]] = []
    if vis_dir is not None:
        roots = [(Path(src, vis_dir), "vis"), (Path(src, th_dir), "th")]  # type: ignore[arg-type]
    else:
        v, t = spectrum_dirs(src)  # top-level VIS/TH-like folders, one of each
        roots = [(v, "vis"), (t, "th")] if v is not None else [(src, None)]
    for root, spec in roots:
        if not root.is_dir():
            raise DatasetError(f"{root}: not a folder")
        for f in (all_files if root == src else walk_files(root, exclude=dst)):
            if is_image_file(f):
                rel = rel_path(f, root)
                files.append((f, rel_path(f, src) if regex is not None else rel, spec or _spectrum_of(rel)))
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
            items.append(Item(path, rel, spec, subject=subject, variation=variation, key=key, stem=stem))
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
    pairs: list[tuple[Optional[Item], Optional[Item]]] = []
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
        pair_stems = list(dict.fromkeys(stem_spectrum(s)[1] for s in stems))
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


def _find_pair_annotation(index: AnnotationIndex, v: Optional[Item], t: Optional[Item],
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


def _pair_by_key(vis: list[Item], th: list[Item], report: ImportReport) -> list[tuple[Optional[Item], Optional[Item]]]:
    def group(items: list[Item], attr: str) -> dict[str, list[Item]]:
        out: dict[str, list[Item]] = {}
        for it in items:
            out.setdefault(getattr(it, attr), []).append(it)
        return out

    pairs: list[tuple[Optional[Item], Optional[Item]]] = []
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
    left_v: list[Item] = []
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
