"""Frame sources: everything that yields :class:`~dmsl_core.frames.FramePair` records.

One URI names a source in the CLI (``dmsl run --source URI``), the GUI's "open" box and saved
settings. Grammar: ``scheme:target?key=value&key=value`` (``scheme://target`` also works; a
target holding ``|`` or ``+`` must be quoted in a shell)::

    demo                                  the synthetic live demo (a head that turns, talks, gets
    demo:?fps=25&size=320x256&seed=0&cycle=20&realtime=1&frames=N&rig=0&render=process
                                          occluded; the light fades to dark and back each cycle)
    pair:VIS.mp4|TH.mp4                   two recordings (Duo Pro R style); TH may be a video or a
    pair:VIS.mp4|TIFF_DIR?sync=ratio      folder of 16-bit TIFF / PNG / .npy frames
         sync=ratio                       visible frame i <-> thermal frame round(n_th * i / n_vis) (default)
         sync=time                        nearest thermal frame in time (needs both frame rates)
         sync=offset&offset=5             thermal frame i + 5; offset=120ms shifts the thermal clock
         fps=30&th_fps=9                  frame rates for image sequences (or to override a file's)
         th_format=u16_ck|u16_raw|f32_c|u8  thermal units (16-bit default u16_raw: counts, no degrees)
    sbs:FILE.mp4?layout=lr                one composite video split in halves: lr (visible left),
                                          rl, tb (visible top), bt
    video:FILE.mp4?spectrum=vis           one spectrum only (spectrum=th for a thermal video or sequence)
    folder:DIR                            a dataset folder (manifest.csv), a folder with vis/ + th/
                                          sub-folders (paired by file stem, pair=order to pair by
                                          position), or a plain folder of images: each one in the
                                          spectrum its name (_vis / _thermal / IR...) or its pixels
                                          (colour: visible; grey / 16-bit: thermal) say, x_vis + x_th
                                          paired; spectrum=vis|th reads all as one sequence
    folder:VIS_DIR|TH_DIR?pair=name       two folders paired by file stem or order
    cam:0?spectrum=vis&size=640x480&fps=30  a webcam / HDMI capture card (spectrum=th: 8-bit thermal)
    lepton:0?telemetry=footer             PureThermal Lepton, Y16 centi-kelvin (C = raw/100 - 273.15)
    boson:0?tlinear=0                     FLIR Boson, Y16 counts (tlinear=1: centi-kelvin)
    tc001:0                               TOPDON TC001 / P2 Pro (256x384 YUYV, C = raw/64 - 273.15)
    cams:0+lepton:1                       two cameras as one pair (first visible, second thermal;
                                          a bare number is cam:N, or cam:N?spectrum=th in second place)
    fake:lepton?frames=100&fps=30         a fake camera (cam, lepton, boson, tc001) on the fake backend
    PATH                                  a bare path, guessed: a folder as folder:, a video as
                                          video: (thermal if the name says thermal/ir/lwir), an image
                                          as a one-frame source

Options every source takes: ``calib=RIG.json`` (a calibration from ``dmsl calibrate``: the
thermal->visible homography is attached to every pair); ``open_timeout=S`` (videos and cameras: opening
that takes longer - a FIFO with no writer, a hung driver - is an error; default 15 s); camera URIs take ``backend=opencv|fake``,
``device`` as the target (index or /dev path), ``size=WxH``, ``fps=``, ``fourcc=``.

:func:`open_source` is the factory. A source is iterable, has ``info`` (kind, fps, frames, live,
pairing rule, spectra, radiometric) and ``close()``, and is a context manager.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from ..data.names import label_spectrum, name_words
from .base import KNOWN_SCHEMES, OPEN_TIMEOUT_S, FrameSource, SourceError, SourceInfo, SourceURI, parse_uri
from .cameras import (CameraBackend, CameraMode, CameraSource, DualCameraSource, FakeBackend, OpenCVBackend,
                      camera_from_uri, create_backend, decode, decode_tc001, lepton_to_celsius, list_backends,
                      register_backend, strip_lepton_telemetry, tc001_to_celsius)
from .demo import DemoScene, DemoSource, DemoState, light_level, script_state
from .folders import DatasetFolderSource, ImageFolderSource, PairedFolderSource, find_pair_dirs
from .video import (IMAGE_EXTS, VIDEO_EXTS, PairSource, SequenceReader, SingleSource, SplitSource, VideoReader,
                    open_reader, split_frame, spectrum_from_pixels)

__all__ = [
    "FrameSource", "SourceError", "SourceInfo", "SourceURI", "parse_uri", "open_source", "KNOWN_SCHEMES",
    "CameraBackend", "CameraMode", "CameraSource", "DualCameraSource", "FakeBackend", "OpenCVBackend",
    "register_backend", "create_backend", "list_backends", "decode", "decode_tc001", "lepton_to_celsius",
    "tc001_to_celsius", "strip_lepton_telemetry", "DemoScene", "DemoSource", "DemoState", "script_state",
    "light_level", "DatasetFolderSource", "ImageFolderSource", "PairedFolderSource", "PairSource", "SplitSource", "SingleSource",
    "VideoReader", "SequenceReader", "split_frame", "SCHEMES",
]

SCHEMES: dict[str, str] = {
    "demo": "synthetic live demo (head turns, talks, occlusions, light fades to dark and back)",
    "pair": "two recordings, visible|thermal (videos or image sequences), synced by ratio, time or offset",
    "sbs": "one composite video split into visible and thermal halves (layout=lr|rl|tb|bt)",
    "video": "one spectrum only: a visible or thermal video / image sequence (spectrum=vis|th)",
    "folder": "dataset folder (manifest.csv), vis/ + th/ folders, or a folder of images (each in the spectrum its name or pixels say)",
    "cam": "webcam or HDMI capture card through OpenCV (spectrum=vis|th)",
    "lepton": "PureThermal Lepton, raw Y16 centi-kelvin, telemetry rows dropped",
    "boson": "FLIR Boson, raw Y16 counts (tlinear=1 for centi-kelvin)",
    "tc001": "TOPDON TC001 / InfiRay P2 Pro (256x384 YUYV, raw/64 - 273.15)",
    "cams": "two cameras as one pair: cams:VIS+TH (each a camera URI or index)",
    "fake": "a fake camera on the fake backend: fake:cam|lepton|boson|tc001",
}

def _split_two(target: str, uri: str, what: str) -> tuple[str, str]:
    parts = target.split("|")
    if len(parts) != 2 or not all(parts):
        raise SourceError(f"{uri}: expected {what} as A|B (two paths separated by |)")
    return parts[0], parts[1]


def _open_timeout(u: SourceURI) -> float:
    return u.opt_float("open_timeout", OPEN_TIMEOUT_S)


def _guess_spectrum(path: Path) -> str:
    """A recording's spectrum from its file name (``th_IR.mp4``, ``lwir_0001``, ``rec_t.mp4``: a thermal
    word of :mod:`dmsl_core.data.names`, or the word ``t``), visible otherwise."""
    return "th" if label_spectrum(path.stem) == "th" or "t" in name_words(path.stem) else "vis"   # rec_t.mp4 too


def _demo(u: SourceURI, realtime: Optional[bool]) -> DemoSource:
    size = u.opt_size("size", (320, 256), max_side=4096)
    rt = u.opt_bool("realtime", True) if realtime is None or "realtime" in u.options else realtime
    frames = u.opt_int("frames")
    return DemoSource(u.text, size=size, fps=u.opt_float("fps", 25.0), cycle=u.opt_float("cycle", 20.0),
                      seed=u.opt_int("seed", 0), realtime=rt, frames=frames, rig=u.opt_bool("rig", False),
                      render=u.opt("render") or None)


def _folder(u: SourceURI, path: str) -> FrameSource:
    if "|" in path:
        a, b = _split_two(path, u.text, "two folders")
        return PairedFolderSource(a, b, uri=u.text, pair=u.opt("pair", "name"), th_format=u.opt("th_format"),
                                  fps=u.opt_float("fps"), registered=u.opt_bool("registered", True))
    p = Path(path)
    if not p.exists():
        raise SourceError(f"{p}: no such folder")
    if not p.is_dir():
        raise SourceError(f"{p}: not a folder")
    if (p / "manifest.csv").exists():
        return DatasetFolderSource(p, uri=u.text, fps=u.opt_float("fps"))
    dirs = find_pair_dirs(p)
    if dirs is not None:
        return PairedFolderSource(dirs[0], dirs[1], uri=u.text, pair=u.opt("pair", "name"),
                                  th_format=u.opt("th_format"), fps=u.opt_float("fps"),
                                  registered=u.opt_bool("registered", True))
    spectrum = u.opt("spectrum")
    if spectrum is None:  # each image in the spectrum its name or its pixels say
        return ImageFolderSource(p, uri=u.text, th_format=u.opt("th_format"), fps=u.opt_float("fps"))
    reader = SequenceReader.from_folder(p, fps=u.opt_float("fps"))
    reader.color = spectrum == "vis"
    return SingleSource(reader, spectrum, uri=u.text, th_format=u.opt("th_format"))


def _build(u: SourceURI, realtime: Optional[bool]) -> FrameSource:
    s = u.scheme
    if s == "demo":
        return _demo(u, realtime)
    if s == "pair":
        a, b = _split_two(u.target, u.text, "a visible and a thermal recording")
        vis = open_reader(a, "vis", fps=u.opt_float("fps"), open_timeout=_open_timeout(u))
        try:
            th = open_reader(b, "th", fps=u.opt_float("th_fps") or (u.opt_float("fps") if Path(b).is_dir() else None),
                             open_timeout=_open_timeout(u))
        except BaseException:
            vis.close()
            raise
        try:
            return PairSource(vis, th, uri=u.text, sync=u.opt("sync", "ratio"), offset=u.opt("offset"),
                              th_format=u.opt("th_format"), registered=u.opt_bool("registered", False))
        except BaseException:
            vis.close(), th.close()
            raise
    if s == "sbs":
        reader = open_reader(u.target, "vis", fps=u.opt_float("fps"), open_timeout=_open_timeout(u))
        return SplitSource(reader, layout=u.opt("layout", "lr"), uri=u.text, registered=u.opt_bool("registered", False))
    if s == "video":
        p = Path(u.target)
        spectrum = u.opt("spectrum") or _guess_spectrum(p)
        if spectrum not in ("vis", "th"):
            raise SourceError(f"{u.text}: spectrum={spectrum!r}; use vis or th")
        return SingleSource(open_reader(p, spectrum, fps=u.opt_float("fps"), open_timeout=_open_timeout(u)),
                            spectrum, uri=u.text, th_format=u.opt("th_format"))
    if s == "folder":
        return _folder(u, u.target)
    if s in ("cam", "lepton", "boson", "tc001"):
        return camera_from_uri(u)
    if s == "fake":
        kind = u.target or "cam"
        if kind not in ("cam", "lepton", "boson", "tc001"):
            raise SourceError(f"{u.text}: fake camera kind {kind!r}; use cam, lepton, boson or tc001")
        opts = dict(u.options, backend="fake")
        return camera_from_uri(SourceURI(kind, u.opt("device", "0"), opts, u.text), kind=kind)
    if s == "cams":
        parts = u.target.split("+")
        if len(parts) != 2 or not all(parts):
            raise SourceError(f"{u.text}: expected two cameras as cams:VIS+TH (e.g. cams:0+lepton:1)")
        subs = []
        for k, part in enumerate(parts):
            pu = parse_uri(part if not part.strip().isdigit() else
                           (f"cam:{part}" if k == 0 else f"cam:{part}?spectrum=th"))
            if pu.scheme not in ("cam", "lepton", "boson", "tc001", "fake"):
                raise SourceError(f"{u.text}: {part!r} is not a camera")
            try:
                subs.append(_build(pu, realtime))
            except BaseException:
                for c in subs:
                    c.close()
                raise
        return DualCameraSource(subs[0], subs[1], uri=u.text)  # type: ignore[arg-type]
    # a bare path
    p = Path(u.target)
    if p.is_dir():
        return _folder(u, u.target)
    if not p.exists():
        known = ", ".join(KNOWN_SCHEMES)
        raise SourceError(f"{u.target}: no such file or folder (and not a source URI; schemes: {known})")
    ext = p.suffix.lower()
    if ext in VIDEO_EXTS or ext in IMAGE_EXTS:
        spectrum = u.opt("spectrum") or _guess_spectrum(p)
        if ext in IMAGE_EXTS and u.opt("spectrum") is None:  # one image: colour -> visible, else thermal
            reader = SequenceReader([p], fps=None, name=str(p), color=None)
            first = reader.get(0)
            spectrum = u.opt("spectrum") or spectrum_from_pixels(first)
            reader.color = spectrum == "vis"
            return SingleSource(reader, spectrum, uri=u.text, th_format=u.opt("th_format"))
        return SingleSource(open_reader(p, spectrum, fps=u.opt_float("fps"), open_timeout=_open_timeout(u)),
                            spectrum, uri=u.text, th_format=u.opt("th_format"))
    raise SourceError(f"{p}: not a video, image or folder this program can read")


def open_source(uri: str, realtime: Optional[bool] = None, homography: Optional[np.ndarray] = None) -> FrameSource:
    """Open the source a URI names (see the module docstring for the syntax).

    ``realtime`` overrides the demo's pacing when the URI does not set it (``dmsl run`` passes
    False: headless runs go as fast as they can). ``homography`` (thermal->visible 3x3) or the
    URI option ``calib=RIG.json`` attach a rig calibration to every pair.
    """
    u = parse_uri(uri)
    src = _build(u, realtime)
    calib = u.opt("calib")
    if calib:
        from ..registration import Calibration
        try:
            homography = Calibration.load(calib).H_th_to_vis
        except BaseException:
            src.close()
            raise
    if homography is not None:
        src.set_homography(homography)
    return src
