"""Image-folder sources: the project's dataset folder (manifest.csv) and plain paired folders."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator, Optional

import cv2
import numpy as np

from ..data.folder import DatasetError, PairRecord, read_manifest, thermal_to_celsius
from ..data.imageio import ImageReadError, read_image
from ..data.names import natural_key, spectrum_dirs, spectrum_from_name, strip_spectrum
from ..frames import FramePair
from .base import FrameSource, SourceError
from .video import IMAGE_EXTS, auto_th_format, list_images, spectrum_from_pixels


def _read(path: Optional[Path]) -> Optional[np.ndarray]:
    if path is None:
        return None
    try:
        return read_image(path)
    except ImageReadError as exc:
        raise SourceError(str(exc)) from exc


def _as_vis(img: Optional[np.ndarray], path) -> Optional[np.ndarray]:
    """A visible frame as HxWx3 uint8 (grey 8/16-bit expanded); a float image is refused naming the file."""
    if img is None:
        return None
    if img.dtype.kind == "f":
        raise SourceError(f"{path}: a {img.dtype} image cannot be a visible frame (expected 8-bit colour or grey)")
    if img.ndim == 2:
        img = cv2.cvtColor(img if img.dtype == np.uint8 else (img >> 8).astype(np.uint8), cv2.COLOR_GRAY2RGB)
    elif img.shape[2] > 3:
        img = np.ascontiguousarray(img[:, :, :3])
    if img.dtype != np.uint8:
        img = (img >> 8).astype(np.uint8)
    return img


class DatasetFolderSource(FrameSource):
    """The pairs of a dataset folder (see :mod:`dmsl_core.data.folder`) in manifest order.

    Ground-truth landmarks go to ``meta["landmarks_gt"]`` (visible) and ``meta["landmarks_gt_th"]``.
    """

    kind = "dataset"
    seekable = True

    def __init__(self, root: str | os.PathLike, uri: str = "", fps: Optional[float] = None) -> None:
        super().__init__(uri or str(root))
        try:
            self.records: list[PairRecord] = read_manifest(root)
        except DatasetError as exc:
            raise SourceError(str(exc)) from exc
        self.root = Path(root)
        has_v = any(r.vis for r in self.records)
        has_t = any(r.th for r in self.records)
        fmts = {r.th_format for r in self.records if r.th}
        self._info.update(frames=len(self.records), fps=fps,
                          spectra=tuple(s for s, ok in (("vis", has_v), ("th", has_t)) if ok),
                          radiometric=bool(fmts) and fmts <= {"u16_ck", "f32_c"},
                          pairing=f"dataset: the rows of {self.root / 'manifest.csv'}")
        self.fps = fps

    def _frames(self) -> Iterator[FramePair]:
        for i, rec in enumerate(self.records):
            if i < self._start:
                continue
            if self._closed:
                return
            try:   # an unreadable image is left out (counted, named) and the stream goes on
                vis = _as_vis(_read(rec.abspath(rec.vis)), rec.abspath(rec.vis))
                th = _read(rec.abspath(rec.th))
            except (SourceError, ValueError) as exc:
                self._skip(str(exc))
                continue
            if th is not None and th.ndim == 3:
                th = cv2.cvtColor(th, cv2.COLOR_RGB2GRAY)
            meta: dict = {"files": {"vis": rec.vis, "th": rec.th}, "subject": rec.subject, "variation": rec.variation}
            try:
                lm = rec.landmarks_for("vis")
                if lm is not None:
                    meta["landmarks_gt"] = lm
                lt = rec.landmarks_for("th")
                if lt is not None:
                    meta["landmarks_gt_th"] = lt
            except ValueError:
                pass
            yield FramePair(vis=vis, th=th, th_celsius=None if th is None else thermal_to_celsius(th, rec.th_format),
                            t=(i / self.fps if self.fps else float(i)), index=i, source=self.uri,
                            registered=rec.registered, meta=meta)


def find_pair_dirs(root: Path) -> Optional[tuple[Path, Path]]:
    """(visible dir, thermal dir) when ``root`` holds one folder of each, e.g. ``vis/`` + ``th/`` (or
    visible/thermal, rgb/ir, rgb_image/thr_image: :func:`dmsl_core.data.names.spectrum_dirs`)."""
    v, t = spectrum_dirs(root)
    return (v, t) if v is not None and t is not None else None


class PairedFolderSource(FrameSource):
    """Two folders of images paired by file stem (``pair=name``, default) or by sorted order (``pair=order``).

    Stems may differ by a spectrum suffix: ``0001_vis.png`` pairs with ``0001_th.tiff``.
    """

    kind = "folders"
    seekable = True

    def __init__(self, vis_dir: str | os.PathLike, th_dir: str | os.PathLike, uri: str = "",
                 pair: str = "name", th_format: Optional[str] = None, fps: Optional[float] = None,
                 registered: bool = True) -> None:
        super().__init__(uri)
        vd, td = Path(vis_dir), Path(th_dir)
        for d in (vd, td):
            if not d.is_dir():
                raise SourceError(f"{d}: not a folder")
        vf, tf = list_images(vd), list_images(td)
        if not vf and not tf:
            raise SourceError(f"{vd} and {td}: no image files")
        self.th_format, self.fps, self.registered = th_format, fps, registered
        if pair == "order":
            n = max(len(vf), len(tf))
            self.pairs = [(vf[i] if i < len(vf) else None, tf[i] if i < len(tf) else None) for i in range(n)]
            rule = f"order: the i-th file of {vd} <-> the i-th file of {td}"
        elif pair == "name":
            def key(p: Path) -> str:
                return strip_spectrum(p.stem).lower()
            tmap = {key(p): p for p in tf}
            vmap = {key(p): p for p in vf}
            keys = sorted(set(vmap) | set(tmap), key=natural_key)
            self.pairs = [(vmap.get(k), tmap.get(k)) for k in keys]
            matched = sum(1 for a, b in self.pairs if a is not None and b is not None)
            rule = f"name: files of {vd} and {td} with the same stem ({matched} of {len(self.pairs)} matched)"
        else:
            raise SourceError(f"{uri}: pair={pair!r}; use name or order")
        self._info.update(frames=len(self.pairs), fps=fps, spectra=("vis", "th"), pairing=rule,
                          radiometric=th_format in ("u16_ck", "f32_c") or any(
                              b is not None and b.suffix.lower() == ".npy" for _, b in self.pairs[:1]))

    def _frames(self) -> Iterator[FramePair]:
        for i, (vp, tp) in enumerate(self.pairs):
            if i < self._start:
                continue
            if self._closed:
                return
            try:   # an unreadable image is left out (counted, named) and the stream goes on
                vis = _as_vis(_read(vp), vp)
                th = _read(tp)
            except SourceError as exc:
                self._skip(str(exc))
                continue
            if th is not None and th.ndim == 3:
                th = cv2.cvtColor(th, cv2.COLOR_RGB2GRAY)
            c = None if th is None else thermal_to_celsius(th, auto_th_format(th, self.th_format))
            yield FramePair(vis=vis, th=th, th_celsius=c, t=(i / self.fps if self.fps else float(i)), index=i,
                            source=self.uri, registered=self.registered,
                            meta={"files": {"vis": vp.name if vp else "", "th": tp.name if tp else ""}})


class ImageFolderSource(FrameSource):
    """A plain folder of images (no manifest, no vis/ + th/ sub-folders), each image in its own spectrum.

    The spectrum of a file comes from its name when a word of it says one
    (:func:`~dmsl_core.data.names.spectrum_from_name`: ``face_thermal.png``, ``0001_IR.tiff``,
    ``rgb_03.jpg``), else from its pixels (:func:`~dmsl_core.sources.video.spectrum_from_pixels`:
    colour -> visible; grey, 16-bit or float -> thermal), decided when the file is read. Files whose names
    differ only by the spectrum marker (``0001_vis.png`` + ``0001_th.png``) make one pair; every other file
    is a pair with one side. :meth:`paths` gives the files of pair ``i`` by spectrum.
    """

    kind = "images"
    seekable = True

    def __init__(self, root: str | os.PathLike, uri: str = "", th_format: Optional[str] = None,
                 fps: Optional[float] = None) -> None:
        super().__init__(uri or str(root))
        self.root = Path(root)
        files = list_images(self.root)
        if not files:
            raise SourceError(f"{self.root}: no image files ({', '.join(IMAGE_EXTS)})")
        self.th_format, self.fps = th_format, fps
        groups: dict[str, dict[str, Path]] = {}
        self.entries: list[dict[str, Path]] = []     # spectrum ("vis" / "th" / "?" = by pixels) -> file
        for p in files:
            spec = spectrum_from_name(p.name)
            if spec is None:
                self.entries.append({"?": p})
                continue
            g = groups.get(strip_spectrum(p.stem).lower())
            if g is not None and spec not in g:
                g[spec] = p
            else:
                g = {spec: p}
                groups[strip_spectrum(p.stem).lower()] = g
                self.entries.append(g)
        named = {s for e in self.entries for s in e if s != "?"}
        if any("?" in e for e in self.entries):   # the first unnamed file's pixels stand for the others
            for e in self.entries:
                if "?" in e:
                    try:
                        named.add(spectrum_from_pixels(_read(e["?"])))
                        break
                    except SourceError:
                        continue  # unreadable: its frame is skipped (and named) when the stream reaches it
        n_pairs = sum(1 for e in self.entries if len(e) == 2)
        self._info.update(frames=len(self.entries), fps=fps, spectra=tuple(s for s in ("vis", "th") if s in named),
                          radiometric=th_format in ("u16_ck", "f32_c"),
                          pairing=(f"images: each file of {self.root} in the spectrum its name or pixels say"
                                   + (f"; {n_pairs} pair(s) by name" if n_pairs else "")))

    def paths(self, i: int) -> dict[str, str]:
        """Spectrum -> file of pair ``i`` (``"?"`` for a file whose spectrum its pixels will say)."""
        return {s: str(p) for s, p in self.entries[i].items()} if 0 <= i < len(self.entries) else {}

    def _frames(self) -> Iterator[FramePair]:
        for i, e in enumerate(self.entries):
            if i < self._start:
                continue
            if self._closed:
                return
            try:   # an unreadable image is left out (counted, named) and the stream goes on
                if "?" in e:
                    img = _read(e["?"])
                    spec = spectrum_from_pixels(img)
                    e[spec] = e.pop("?")
                    imgs = {spec: img}
                    if spec not in self._info["spectra"]:
                        self._info["spectra"] = tuple(s for s in ("vis", "th")
                                                      if s in self._info["spectra"] or s == spec)
                else:
                    imgs = {s: _read(p) for s, p in e.items()}
                vis, th = _as_vis(imgs.get("vis"), e.get("vis")), imgs.get("th")
            except SourceError as exc:
                self._skip(str(exc))
                continue
            c = None
            if th is not None:
                if th.ndim == 3:
                    th = cv2.cvtColor(th[:, :, :3], cv2.COLOR_RGB2GRAY)
                c = thermal_to_celsius(th, auto_th_format(th, self.th_format))
                if c is not None:
                    self._info["radiometric"] = True
            yield FramePair(vis=vis, th=th, th_celsius=c, t=(i / self.fps if self.fps else float(i)), index=i,
                            source=self.uri, registered=False,
                            meta={"files": {"vis": e["vis"].name if "vis" in e else "",
                                            "th": e["th"].name if "th" in e else ""}})
