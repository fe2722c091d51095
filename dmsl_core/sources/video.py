"""Recorded sources: video files, 16-bit TIFF / PNG / ``.npy`` sequences, pairs of them, split frames.

Pairing rules of :class:`PairSource` (visible frame ``i`` is the master clock):

``ratio``   thermal frame ``j = min(round(n_th * i / n_vis), n_th - 1) + offset`` (flirpy's rule for a FLIR Duo:
            both recordings span the same time, whatever their frame rates and lengths)
``time``    ``j = round((i / fps_vis + offset_s) * fps_th)``: the nearest thermal frame in time;
            ``offset`` in ms (``offset=120ms``) shifts the thermal clock
``offset``  ``j = i + offset`` frames (same rates), or like ``time`` when the offset is in ms

Thermal frames outside the recording pair with ``th=None``.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterator, Optional, Sequence

import cv2
import numpy as np

from ..data.folder import thermal_to_celsius
from ..data.imageio import ImageReadError, read_image
from ..data.names import IMAGE_EXTENSIONS, natural_key
from ..frames import FramePair
from .base import OPEN_TIMEOUT_S, FrameSource, SourceError, call_with_timeout, gray_u8

VIDEO_EXTS = (".mp4", ".mov", ".avi", ".mkv", ".m4v", ".mpg", ".mpeg", ".wmv", ".webm", ".seq")
IMAGE_EXTS = IMAGE_EXTENSIONS  # the image files a sequence or folder source reads (dmsl_core.data.names)


def list_images(folder: Path) -> list[Path]:
    """The image files of ``folder`` (not hidden), in natural order of their names."""
    return sorted((p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS
                   and not p.name.startswith(".")), key=lambda p: (natural_key(p.name), p.name))


class FrameReader:
    """Random-ish access to the frames of one recording (video file or image sequence)."""

    name: str = ""
    fps: Optional[float] = None
    count: int = 0

    def get(self, j: int) -> Optional[np.ndarray]:  # pragma: no cover - interface
        raise NotImplementedError

    def file_name(self, j: int) -> str:
        return self.name

    def close(self) -> None:
        pass


def _not_a_file(p: Path) -> str:
    """'' for a regular file (or a symlink to one), else what it is ("a FIFO (named pipe)", ...)."""
    import stat
    try:
        mode = p.stat().st_mode
    except OSError:
        return ""   # the open below names the problem
    for test, what in ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISDIR, "a folder")):
        if test(mode):
            return what
    return ""


class VideoReader(FrameReader):
    """Frames of a video file through OpenCV, read sequentially (seeks only when going back).

    Returns RGB uint8 (``color=True``) or HxW uint8 grey.
    """

    def __init__(self, path: str | os.PathLike, color: bool = True, open_timeout: Optional[float] = OPEN_TIMEOUT_S) -> None:
        p = Path(path)
        if not p.exists():
            raise SourceError(f"{p}: no such video file")
        kind = _not_a_file(p)
        if kind:
            # OpenCV's FFmpeg backend would block in open() on a FIFO, holding a process-wide lock: an
            # open abandoned at the timeout then hangs every later video opened or written in the process
            raise SourceError(f"{p}: is {kind}, not a video file (a video source is read and seeked like a "
                              f"file; record the stream to a file first)")
        self.path = p
        self.name = p.name
        self.color = color
        self._pos = 0               # index of the next frame read() returns
        self._last_j = -1
        self._last: Optional[np.ndarray] = None
        # opening blocks on a FIFO with no writer or a hung share: bounded, then an error naming the file
        self.cap, self.fps, self.count, first = call_with_timeout(
            self._probe, open_timeout, str(p), on_late=lambda r: r[0].release())
        self._pos, self._last_j, self._last = 1, 0, self._convert(first)

    def _probe(self) -> tuple:
        """(capture, fps, frame count, first frame) - or SourceError when it cannot give a frame."""
        p = self.path
        cap = cv2.VideoCapture(str(p))
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"{p}: OpenCV cannot open this video (corrupt or unsupported codec)")
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        if count <= 0:  # some containers do not say; count by decoding
            n = 0
            while cap.grab():
                n += 1
            count = n
            cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
        if count <= 0:
            cap.release()
            raise SourceError(f"{p}: the video has no frames")
        ok, first = cap.read()
        if not ok or first is None or not first.size:  # a header that promises frames the data does not hold
            cap.release()
            raise SourceError(f"{p}: the video decodes to no frame (its header claims {count}; the data is "
                              f"corrupt, cut off or in a codec this OpenCV lacks)")
        return cap, (fps if 0 < fps < 1000 else None), count, first

    def _convert(self, bgr: np.ndarray) -> np.ndarray:
        if self.color:
            if bgr.ndim == 2:
                return cv2.cvtColor(bgr, cv2.COLOR_GRAY2RGB)
            return cv2.cvtColor(bgr[:, :, :3], cv2.COLOR_BGR2RGB)
        return gray_u8(bgr)

    def get(self, j: int) -> Optional[np.ndarray]:
        if j < 0 or j >= self.count:
            return None
        if j == self._last_j:
            return self._last
        if j < self._pos or j - self._pos > 250:
            self.cap.set(cv2.CAP_PROP_POS_FRAMES, j)
            self._pos = j
        while self._pos < j:
            if not self.cap.grab():
                return None
            self._pos += 1
        ok, frame = self.cap.read()
        if not ok or frame is None:
            self.count = min(self.count, j)  # the header over-counted
            return None
        self._pos = j + 1
        self._last_j, self._last = j, self._convert(frame)
        return self._last

    def close(self) -> None:
        self.cap.release()


class SequenceReader(FrameReader):
    """An image sequence: a folder (natural sort) or an explicit list of files."""

    def __init__(self, files: Sequence[Path], fps: Optional[float] = None, name: str = "",
                 color: Optional[bool] = None) -> None:
        if not files:
            raise SourceError(f"{name or 'image sequence'}: no image files")
        self.files = list(files)
        self.count = len(self.files)
        self.fps = fps
        self.name = name or str(Path(self.files[0]).parent)
        self.color = color

    @classmethod
    def from_folder(cls, folder: str | os.PathLike, fps: Optional[float] = None,
                    color: Optional[bool] = None) -> "SequenceReader":
        d = Path(folder)
        if not d.is_dir():
            raise SourceError(f"{d}: not a folder")
        files = list_images(d)
        if not files:
            raise SourceError(f"{d}: no image files ({', '.join(IMAGE_EXTS)})")
        return cls(files, fps=fps, name=str(d), color=color)

    def get(self, j: int) -> Optional[np.ndarray]:
        if j < 0 or j >= self.count:
            return None
        try:
            img = read_image(self.files[j])
        except ImageReadError as exc:
            raise SourceError(str(exc)) from exc
        if self.color is False and img.ndim == 3:
            img = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
        if self.color is True and img.ndim == 2:
            if img.dtype != np.uint8:
                raise SourceError(f"{self.files[j]}: a {img.dtype} grey image cannot be a visible frame")
            img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
        return img

    def file_name(self, j: int) -> str:
        return Path(self.files[j]).name if 0 <= j < self.count else ""


def open_reader(path: str | os.PathLike, spectrum: str, fps: Optional[float] = None,
                open_timeout: Optional[float] = OPEN_TIMEOUT_S) -> FrameReader:
    """A reader for a video file, a folder of images, or a single image file (a video that does not
    open within ``open_timeout`` seconds is an error)."""
    p = Path(path)
    color = spectrum == "vis"
    if p.is_dir():
        return SequenceReader.from_folder(p, fps=fps, color=color)
    if not p.exists():
        raise SourceError(f"{p}: no such file or folder")
    if p.suffix.lower() in IMAGE_EXTS:
        return SequenceReader([p], fps=fps, name=str(p), color=color)
    r = VideoReader(p, color=color, open_timeout=open_timeout)
    if fps:
        r.fps = fps
    return r


def spectrum_from_pixels(img: Optional[np.ndarray]) -> str:
    """The spectrum an image's pixels say when nothing else does: colour (3 channels, 8-bit) ->
    ``"vis"``; one channel (grey), 16-bit or float -> ``"th"``."""
    if img is None:
        return "th"
    return "vis" if img.ndim == 3 and img.dtype == np.uint8 else "th"


def auto_th_format(img: np.ndarray, given: Optional[str]) -> str:
    if given:
        return given
    if img.dtype == np.uint16:
        return "u16_raw"
    if img.dtype == np.float32 or img.dtype == np.float64:
        return "f32_c"
    return "u8"


def thermal_fields(img: Optional[np.ndarray], th_format: Optional[str]) -> tuple[Optional[np.ndarray], Optional[np.ndarray]]:
    """(th, th_celsius) for a thermal frame read from a file."""
    if img is None:
        return None, None
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    fmt = auto_th_format(img, th_format)
    return img, thermal_to_celsius(img, fmt)


def parse_offset(text: Optional[str], uri: str) -> tuple[float, str]:
    """``"5"`` -> (5, "frames"); ``"120ms"`` -> (120, "ms"); ``"-0.5s"`` -> (-500, "ms")."""
    if text is None or text == "":
        return 0.0, "frames"
    m = re.fullmatch(r"\s*([-+]?\d+(?:\.\d+)?)\s*(ms|s|f|frames?)?\s*", text)
    if not m:
        raise SourceError(f"{uri}: offset {text!r} is not a number of frames (5) or a time (120ms, 0.5s)")
    v, unit = float(m.group(1)), (m.group(2) or "frames")
    if unit == "s":
        return v * 1000.0, "ms"
    if unit == "ms":
        return v, "ms"
    return v, "frames"


class PairSource(FrameSource):
    """Two recordings (visible + thermal) paired frame by frame; see the module doc for the rules."""

    kind = "pair"
    seekable = True

    def __init__(self, vis: FrameReader, th: FrameReader, uri: str = "", sync: str = "ratio",
                 offset: str | None = None, th_format: Optional[str] = None, registered: bool = False) -> None:
        super().__init__(uri)
        if sync not in ("ratio", "time", "offset"):
            raise SourceError(f"{uri}: sync={sync!r}; use ratio, time or offset")
        self.vis, self.th = vis, th
        self.th_format = th_format
        self.registered = registered
        off, unit = parse_offset(offset, uri)
        if unit == "ms" and sync == "offset":
            sync = "time"
        if sync == "time":
            if unit == "frames" and off:
                raise SourceError(f"{uri}: with sync=time give the offset as a time (e.g. offset=120ms)")
            for r in (vis, th):
                if not r.fps:
                    raise SourceError(f"{r.name}: frame rate unknown; sync=time needs one (add fps=/th_fps=)")
        elif unit == "ms":
            raise SourceError(f"{uri}: with sync={sync} give the offset in frames (offset=5)")
        self.sync, self.offset, self.offset_unit = sync, off, unit
        nv, nt = vis.count, th.count
        if sync == "ratio":
            rule = f"ratio: visible frame i <-> thermal frame min(round({nt} * i / {nv}), {nt - 1})"
            if off:
                rule += f" {off:+g}"
        elif sync == "time":
            rule = (f"time: visible frame i at i/{vis.fps:g} s <-> nearest thermal frame at {th.fps:g} fps"
                    + (f", thermal clock shifted by {off:+g} ms" if off else ""))
        else:
            rule = f"offset: visible frame i <-> thermal frame i {int(off):+d}"
        rule += (f" (visible {nv} frames @ {vis.fps or '?'} fps: {vis.name}; "
                 f"thermal {nt} frames @ {th.fps or '?'} fps: {th.name})")
        self._info.update(fps=vis.fps, frames=nv, pairing=rule, spectra=("vis", "th"), sync=sync,
                          vis_frames=nv, th_frames=nt, vis_fps=vis.fps, th_fps=th.fps)

    def thermal_index(self, i: int) -> int:
        """The thermal frame paired with visible frame ``i``."""
        if self.sync == "ratio":
            # round() can reach n_th on the last visible frames: clamp to the last thermal frame
            return min(int(round(self.th.count * i / self.vis.count)), self.th.count - 1) + int(self.offset)
        if self.sync == "time":
            return int(round((i / float(self.vis.fps) + self.offset / 1000.0) * float(self.th.fps)))
        return int(i + self.offset)

    def _frames(self) -> Iterator[FramePair]:
        fps = self.vis.fps or 0.0
        i = self._start
        while i < self.vis.count and not self._closed:
            j = self.thermal_index(i)
            try:
                v = self.vis.get(i)
                if v is None:
                    break
                t_raw = self.th.get(j) if 0 <= j < self.th.count else None
            except SourceError as exc:  # an unreadable image of a sequence: the pair is left out, named
                if not isinstance(self.vis, SequenceReader) and not isinstance(self.th, SequenceReader):
                    raise
                self._skip(str(exc))
                i += 1
                continue
            th, c = thermal_fields(t_raw, self.th_format)
            if c is not None:
                self._info["radiometric"] = True
            yield FramePair(vis=v, th=th, th_celsius=c, t=(i / fps if fps else float(i)), index=i,
                            source=self.uri, registered=self.registered,
                            meta={"files": {"vis": self.vis.file_name(i), "th": self.th.file_name(j) if th is not None else ""},
                                  "frame_index": {"vis": i, "th": j}})
            i += 1

    def _release(self) -> None:
        self.vis.close()
        self.th.close()


LAYOUTS = {"lr": ("vis", "th", 1), "rl": ("th", "vis", 1), "tb": ("vis", "th", 0), "bt": ("th", "vis", 0)}


def split_frame(frame: np.ndarray, layout: str) -> tuple[np.ndarray, np.ndarray]:
    """(vis, th) halves of a composite frame; ``layout`` lr (visible left), rl, tb (visible top) or bt."""
    if layout not in LAYOUTS:
        raise SourceError(f"layout={layout!r}; use lr, rl, tb or bt")
    first, _, axis = LAYOUTS[layout]
    n = frame.shape[axis] // 2
    a = frame[:, :n] if axis == 1 else frame[:n]
    b = frame[:, n:2 * n] if axis == 1 else frame[n:2 * n]
    return (a, b) if first == "vis" else (b, a)


def _reader_frames(src: FrameSource) -> Iterator[tuple[int, float, np.ndarray]]:
    """(index, time in s, frame) of ``src.reader`` until it ends, fails to decode or ``src`` closes."""
    fps = src.reader.fps or 0.0
    for i in range(src._start, src.reader.count):
        if src._closed:
            return
        try:
            f = src.reader.get(i)
        except SourceError as exc:
            if not isinstance(src.reader, SequenceReader):
                raise
            src._skip(str(exc))  # one unreadable image of a sequence: left out, named, the stream goes on
            continue
        if f is None:
            return
        yield i, (i / fps if fps else float(i)), f


class SplitSource(FrameSource):
    """One composite video (or image sequence) whose frames hold visible and thermal side by side or stacked."""

    kind = "split"
    seekable = True

    def __init__(self, reader: FrameReader, layout: str = "lr", uri: str = "", registered: bool = False) -> None:
        super().__init__(uri)
        if layout not in LAYOUTS:
            raise SourceError(f"{uri}: layout={layout!r}; use lr (visible left), rl, tb (visible top) or bt")
        self.reader, self.layout, self.registered = reader, layout, registered
        where = {"lr": "visible left, thermal right", "rl": "thermal left, visible right",
                 "tb": "visible top, thermal bottom", "bt": "thermal top, visible bottom"}[layout]
        self._info.update(fps=reader.fps, frames=reader.count, spectra=("vis", "th"), layout=layout,
                          pairing=f"split: each frame of {reader.name} halved ({where})")

    def _frames(self) -> Iterator[FramePair]:
        for i, ts, f in _reader_frames(self):
            if f.ndim == 2:
                f = cv2.cvtColor(f, cv2.COLOR_GRAY2RGB)
            v, t = split_frame(f, self.layout)
            yield FramePair(vis=np.ascontiguousarray(v), th=cv2.cvtColor(np.ascontiguousarray(t), cv2.COLOR_RGB2GRAY),
                            t=ts, index=i, source=self.uri, registered=self.registered,
                            meta={"files": {"vis": self.reader.file_name(i), "th": self.reader.file_name(i)}})

    def _release(self) -> None:
        self.reader.close()


class SingleSource(FrameSource):
    """One spectrum only: a visible or a thermal video / image sequence."""

    kind = "single"
    seekable = True

    def __init__(self, reader: FrameReader, spectrum: str, uri: str = "", th_format: Optional[str] = None) -> None:
        super().__init__(uri)
        if spectrum not in ("vis", "th"):
            raise SourceError(f"{uri}: spectrum={spectrum!r}; use vis or th")
        self.reader, self.spectrum, self.th_format = reader, spectrum, th_format
        self._info.update(fps=reader.fps, frames=reader.count, spectra=(spectrum,),
                          pairing=f"single: {'visible' if spectrum == 'vis' else 'thermal'} only ({reader.name})")

    def _frames(self) -> Iterator[FramePair]:
        for i, t, f in _reader_frames(self):
            name = self.reader.file_name(i)
            if self.spectrum == "vis":
                if f.ndim == 2:
                    f = cv2.cvtColor(f if f.dtype == np.uint8 else (f / max(1, f.max()) * 255).astype(np.uint8),
                                     cv2.COLOR_GRAY2RGB)
                yield FramePair(vis=f, th=None, t=t, index=i, source=self.uri, meta={"files": {"vis": name, "th": ""}})
            else:
                th, c = thermal_fields(f, self.th_format)
                if c is not None:
                    self._info["radiometric"] = True
                yield FramePair(vis=None, th=th, th_celsius=c, t=t, index=i, source=self.uri,
                                meta={"files": {"vis": "", "th": name}})

    def _release(self) -> None:
        self.reader.close()
