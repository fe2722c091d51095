"""What file and folder names mean: image extensions, the natural sort order, and the words that say
which spectrum (visible or thermal) a file, a folder or a camera is.

This is the one home of that vocabulary; the importers (:mod:`dmsl_core.data.importers`), the
frame sources (:mod:`dmsl_core.sources`) and the tools read it from here.

Spectrum words are compared case-insensitively, whole words only: a name is cut into words at
``_``, ``-``, ``.`` and spaces (``face_thermal_01`` -> ``face``, ``thermal``, ``01``).
"""
from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Iterable, Optional

__all__ = ["IMAGE_EXTENSIONS", "PHOTO_EXTENSIONS", "VIS_WORDS", "TH_WORDS", "natural_key", "is_image_file",
           "name_words", "word_spectrum", "stem_spectrum", "spectrum_from_name", "strip_spectrum", "dir_spectrum",
           "label_spectrum", "spectrum_dirs"]

#: Extensions of the image files the project reads (:func:`dmsl_core.data.imageio.read_image`): 8/16-bit
#: PNG, TIFF and PGM/PPM, JPEG, BMP, and float temperatures in ``.npy``.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".npy", ".pgm", ".ppm")
#: Extensions of visible photos (8-bit colour: the 300-W layout's images).
PHOTO_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")

#: Words that mean "visible" in a file, folder or camera name.
VIS_WORDS = frozenset({"vis", "visible", "rgb", "color", "colour", "vi"})
#: Words that mean "thermal" in a file, folder or camera name.
TH_WORDS = frozenset({"th", "thr", "thermal", "ir", "lwir", "therm", "infrared"})
#: Whole folder names, too short to be words of longer names, that name a spectrum (``vis/`` + ``t/``).
_SHORT_DIR_NAMES = {"t": "th"}

_SPLIT = re.compile(r"[_\-. ]+")
_TRAILING_WORD = re.compile(r"[_\-. ]([A-Za-z]+)$")


def natural_key(s: object) -> tuple:
    """Sort key that orders embedded numbers numerically (``s2`` < ``s10``), letters case-insensitively."""
    return tuple((0, int(t), t) if t.isdigit() else (1, 0, t.lower()) for t in re.split(r"(\d+)", str(s)) if t)


def is_image_file(path: Path) -> bool:
    """An image by its extension (:data:`IMAGE_EXTENSIONS`), not a hidden file."""
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def name_words(name: str) -> list[str]:
    """The lower-case words of a name (split at ``_``, ``-``, ``.`` and spaces)."""
    return [t for t in _SPLIT.split(name.lower()) if t]


def word_spectrum(word: str) -> Optional[str]:
    """``"vis"`` / ``"th"`` for a word of :data:`VIS_WORDS` / :data:`TH_WORDS` (any case), else None."""
    w = word.lower()
    if w in VIS_WORDS:
        return "vis"
    if w in TH_WORDS:
        return "th"
    return None


def _one_spectrum(words: Iterable[str]) -> Optional[str]:
    found = {s for s in (word_spectrum(t) for t in words) if s}
    return found.pop() if len(found) == 1 else None


def stem_spectrum(stem: str) -> tuple[Optional[str], str]:
    """(spectrum, stem without it) from a trailing ``_vis``/``-th``... marker in a file stem."""
    m = _TRAILING_WORD.search(stem)
    if m:
        spec = word_spectrum(m.group(1))
        if spec:
            return spec, stem[: m.start()]
    return None, stem


def spectrum_from_name(name: str) -> Optional[str]:
    """``"th"`` / ``"vis"`` when the words of a file name (its stem: ``face_thermal_01``, ``0001-IR``,
    ``rgb_007``) name one spectrum - the vocabulary of :data:`VIS_WORDS` / :data:`TH_WORDS` -, else None
    (no spectrum word, or words of both)."""
    return _one_spectrum(name_words(PurePosixPath(name).stem))


def strip_spectrum(stem: str) -> str:
    """A file stem without its trailing spectrum marker (``0012_vis`` -> ``0012``, ``a-IR`` -> ``a``)."""
    return stem_spectrum(stem)[1] or stem


def dir_spectrum(name: str) -> Optional[str]:
    """Spectrum of a folder named ``VIS``, ``thermal``, ``rgb_image``, ``thr_image``, ``t``... (None if unclear)."""
    short = _SHORT_DIR_NAMES.get(name.lower())
    return short if short else _one_spectrum(name_words(name))


def label_spectrum(text: str, vis_extra: Iterable[str] = (), th_extra: Iterable[str] = ()) -> Optional[str]:
    """Spectrum of a free-form label (a camera name ``lwir_boson``, a recording's file stem ``th_IR``).

    Thermal first: a word of the label is a thermal word (:data:`TH_WORDS` plus ``th_extra``, e.g. camera
    models), or the label contains one longer than three letters (``flirthermal``); then the same for
    visible. None when neither.
    """
    c = text.strip().lower()
    words = name_words(c)
    for names, spec in ((TH_WORDS | set(th_extra), "th"), (VIS_WORDS | set(vis_extra), "vis")):
        if any(t in names for t in words) or any(n in c for n in names if len(n) > 3):
            return spec
    return None


def spectrum_dirs(root: Path) -> tuple[Optional[Path], Optional[Path]]:
    """(visible, thermal) sub-folders of ``root`` (by :func:`dir_spectrum`), when there is exactly one of each."""
    vis, th = [], []
    if root.is_dir():
        for d in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            spec = dir_spectrum(d.name)
            (vis if spec == "vis" else th if spec == "th" else []).append(d)
    return (vis[0], th[0]) if len(vis) == 1 and len(th) == 1 else (None, None)
