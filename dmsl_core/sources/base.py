"""The frame-source interface, the URI parser and the common error type."""
from __future__ import annotations

import abc
import logging
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Optional
from urllib.parse import parse_qsl

import cv2
import numpy as np

from ..data.imageio import pixel_problem
from ..frames import FramePair

log = logging.getLogger("dmsl.sources")

#: Seconds opening a source may take (a video file, a camera) before it is given up with an error:
#: a FIFO with no writer, a hung camera driver or a dead network share block ``open()`` forever.
#: The URI option ``open_timeout=S`` overrides it.
OPEN_TIMEOUT_S = 15.0


class SourceError(RuntimeError):
    """A source that cannot be opened or that failed while streaming; the message names it."""


@dataclass
class SourceURI:
    """A parsed source URI: ``scheme:target?key=value&...`` (see :mod:`dmsl_core.sources`)."""

    scheme: str
    target: str
    options: dict[str, str] = field(default_factory=dict)
    text: str = ""

    def opt(self, key: str, default: Any = None) -> Any:
        return self.options.get(key, default)

    def opt_float(self, key: str, default: Optional[float] = None) -> Optional[float]:
        v = self.options.get(key)
        if v is None or v == "":
            return default
        try:
            return float(v)
        except ValueError:
            raise SourceError(f"{self.text}: option {key}={v!r} is not a number") from None

    def opt_int(self, key: str, default: Optional[int] = None) -> Optional[int]:
        v = self.opt_float(key, None)
        return default if v is None else int(round(v))

    def opt_bool(self, key: str, default: bool = False) -> bool:
        v = self.options.get(key)
        if v is None:
            return default
        v = v.strip().lower()
        if v in ("1", "true", "yes", "on", ""):
            return True
        if v in ("0", "false", "no", "off"):
            return False
        raise SourceError(f"{self.text}: option {key}={v!r} is not a yes/no value")

    def opt_size(self, key: str, default: Optional[tuple[int, int]] = None,
                 max_side: int = 16384) -> Optional[tuple[int, int]]:
        """``WIDTHxHEIGHT``; each side 1..``max_side`` (a size no camera has is refused, not allocated)."""
        v = self.options.get(key)
        if not v:
            return default
        try:
            w, h = (int(s) for s in v.lower().split("x"))
        except ValueError:
            raise SourceError(f"{self.text}: option {key}={v!r} is not a WIDTHxHEIGHT size") from None
        if w <= 0 or h <= 0:
            raise SourceError(f"{self.text}: option {key}={v!r} must be positive")
        if w > max_side or h > max_side:
            raise SourceError(f"{self.text}: option {key}={v!r} is too large (at most {max_side} pixels a side)")
        return w, h


def call_with_timeout(fn: Callable[[], Any], timeout_s: Optional[float], what: str,
                      cancel: Optional[Callable[[], None]] = None, on_late: Optional[Callable[[Any], None]] = None) -> Any:
    """``fn()`` on a helper thread, waited for at most ``timeout_s`` seconds (None or <= 0: no limit).

    Past the limit a :class:`SourceError` naming ``what`` is raised, ``cancel()`` is called (to unblock the
    call where the backend can) and ``on_late(result)`` releases what ``fn`` returns if it ever finishes.
    The helper thread is a daemon: a call blocked in the kernel (a FIFO's ``open``) cannot keep the
    process alive.
    """
    if timeout_s is None or timeout_s <= 0:
        return fn()
    box: dict[str, Any] = {}
    lock = threading.Lock()

    def target() -> None:
        try:
            r = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            box["error"] = exc
            return
        with lock:
            if box.get("abandoned"):
                if on_late is not None:
                    try:
                        on_late(r)
                    except Exception:  # noqa: BLE001 - best effort
                        pass
                return
            box["result"] = r

    t = threading.Thread(target=target, name=f"dmsl-open {what}", daemon=True)
    t.start()
    t.join(timeout_s)
    with lock:
        if "result" not in box and "error" not in box:
            box["abandoned"] = True
    if box.get("abandoned"):
        if cancel is not None:
            try:
                cancel()
            except Exception:  # noqa: BLE001 - best effort
                pass
        raise SourceError(f"{what}: opening did not finish within {timeout_s:g} s (a FIFO with no writer, a hung "
                          f"device or network share?); given up (option open_timeout=S sets the limit)")
    if "error" in box:
        raise box["error"]
    return box.get("result")


# Schemes the parser recognises (a bare path is anything else).
KNOWN_SCHEMES = ("demo", "pair", "sbs", "video", "folder", "cam", "cams", "lepton", "boson", "tc001", "fake")


def parse_uri(text: str) -> SourceURI:
    """Split ``scheme:target?opts`` (``scheme://target`` works too). Unknown scheme -> ``path``."""
    s = str(text).strip()
    if not s:
        raise SourceError("empty source URI")
    scheme, rest = "path", s
    head, sep, tail = s.partition(":")
    if sep and head.lower() in KNOWN_SCHEMES:
        scheme, rest = head.lower(), tail
        if rest.startswith("//"):
            rest = rest[2:]
    elif s.lower() in KNOWN_SCHEMES:  # "demo" alone
        scheme, rest = s.lower(), ""
    if scheme == "cams":  # the options belong to the two camera URIs inside
        return SourceURI(scheme=scheme, target=rest, options={}, text=s)
    target, q, query = rest.rpartition("?") if "?" in rest else (rest, "", "")
    options = {k.strip().lower(): v.strip() for k, v in parse_qsl(query, keep_blank_values=True)} if q else {}
    return SourceURI(scheme=scheme, target=target, options=options, text=s)


class SourceInfo(dict):
    """What a source says about itself: a JSON-able dict (written into exports as it is, keys in the
    order the source set them) with typed read access to the keys every source has or may have.

    Every source: ``kind``, ``uri``, ``fps`` (None if unknown), ``frames`` (count; None for live or
    unbounded sources), ``live`` (frames arrive in real time and may be dropped by a slow consumer:
    cameras, the paced demo), ``pairing`` (how visible and thermal frames are paired, in words),
    ``spectra`` (a tuple of "vis" / "th"), ``radiometric`` (thermal comes with degrees C). Some
    sources add ``on_demand`` (rendered when asked: the demo), ``homography`` (a thermal-to-visible
    mapping is known), ``skipped`` (unreadable frames left out), ``th_unusable`` (thermal images no
    landmarks can come from), ``th_stale`` (a dual camera's thermal frame repeated), and their own
    keys (``sync``, ``layout``, ...: read them with ``info.get``).
    """

    @property
    def kind(self) -> str:
        return str(self.get("kind") or "")

    @property
    def uri(self) -> str:
        return str(self.get("uri") or "")

    @property
    def fps(self) -> Optional[float]:
        v = self.get("fps")
        return float(v) if v else None

    @property
    def frames(self) -> Optional[int]:
        v = self.get("frames")
        return int(v) if v is not None else None

    @property
    def live(self) -> bool:
        return bool(self.get("live"))

    @property
    def on_demand(self) -> bool:
        return bool(self.get("on_demand"))

    @property
    def spectra(self) -> tuple[str, ...]:
        return tuple(self.get("spectra") or ())

    @property
    def radiometric(self) -> bool:
        return bool(self.get("radiometric"))

    @property
    def pairing(self) -> str:
        return str(self.get("pairing") or "")

    @property
    def still(self) -> bool:
        """Independent still images (a folder of images, a single image), not video: nothing carries
        from one frame to the next (no smoothing, no box reuse, a detection on every image)."""
        return self.kind in ("dataset", "folders") or self.get("frames") == 1


class FrameSource(abc.ABC):
    """An iterable of :class:`~dmsl_core.frames.FramePair`; a context manager; ``close()`` is idempotent.

    ``info`` is a :class:`SourceInfo` (a copy: a dict with typed accessors; the keys are listed there).
    """

    kind: str = "source"
    seekable: bool = False   # recorded sources: :meth:`start_at` skips to a frame without decoding those before

    def __init__(self, uri: str = "") -> None:
        self.uri = uri
        self._start = 0
        self._closed = False
        self._lock = threading.Lock()
        self._info: dict[str, Any] = {"kind": self.kind, "uri": uri, "fps": None, "frames": None,
                                      "live": False, "pairing": "", "spectra": (), "radiometric": False}
        self.homography_th_to_vis: Optional[np.ndarray] = None
        #: "file: reason" of every frame left out because its file could not be read (the stream went on)
        self.skipped: list[str] = []

    def _skip(self, reason: str) -> None:
        """Record a frame left out (an unreadable image in a folder): counted, named, logged."""
        self.skipped.append(reason)
        self._info["skipped"] = len(self.skipped)
        log.warning("%s: skipped a frame: %s", self.uri, reason)

    def _unusable_thermal(self, pair: FramePair, why: str) -> None:
        """A thermal image no landmarks can come from (all NaN): dropped from the pair, said once per
        stream with the frame, counted in ``info["th_unusable"]`` (``meta["th_problem"]`` on the pair)."""
        n = int(self._info.get("th_unusable", 0)) + 1
        self._info["th_unusable"] = n
        name = (pair.meta.get("files") or {}).get("th") or ""
        pair.meta["th_problem"] = why
        pair.th, pair.th_celsius = None, None
        if n == 1:
            log.warning("%s frame %d%s: the thermal image is not used: %s (later ones are counted in "
                        "info['th_unusable'])", self.uri, pair.index, f" ({name})" if name else "", why)

    @property
    def info(self) -> SourceInfo:
        return SourceInfo(self._info)

    @property
    def live(self) -> bool:
        return bool(self._info.get("live"))

    @abc.abstractmethod
    def _frames(self) -> Iterator[FramePair]:
        """Yield the frames (subclasses); the base adds the homography and checks ``closed``."""

    def __iter__(self) -> Iterator[FramePair]:
        if self._closed:
            raise SourceError(f"{self.uri}: source is closed")
        for pair in self._frames():
            if self._closed:
                return
            if pair.th is not None and (why := pixel_problem(pair.th if pair.th_celsius is None else pair.th_celsius)):
                self._unusable_thermal(pair, why)
            if pair.homography_th_to_vis is None and self.homography_th_to_vis is not None:
                pair.homography_th_to_vis = self.homography_th_to_vis
            if not pair.source:
                pair.source = self.uri
            yield pair

    def start_at(self, index: int) -> None:
        """Begin the iteration at frame ``index`` (frames keep their absolute ``index`` and ``t``).
        Only recorded sources (folders, videos, image sequences) can; others raise :class:`SourceError`."""
        if not self.seekable:
            raise SourceError(f"{self.uri}: a {self.kind} source cannot start at frame {index} "
                              f"(only folders, videos and image sequences can)")
        if int(index) < 0:
            raise SourceError(f"{self.uri}: cannot start at frame {index}")
        self._start = int(index)

    def set_homography(self, h: Optional[np.ndarray]) -> None:
        """Attach a thermal->visible homography (from a rig calibration) to every pair."""
        self.homography_th_to_vis = None if h is None else np.asarray(h, dtype=np.float64).reshape(3, 3)
        self._info["homography"] = self.homography_th_to_vis is not None

    def _release(self) -> None:  # noqa: B027 - optional: most sources hold nothing to free
        """Free resources (subclasses)."""

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._release()

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> "FrameSource":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:  # noqa: BLE001 - a finaliser never raises
            pass


def gray_u8(img: np.ndarray) -> np.ndarray:
    """A BGR/RGB/grey 8-bit frame -> HxW uint8 (thermal videos are stored as colour by most encoders)."""
    if img.ndim == 3:
        if img.shape[2] == 1:
            return np.ascontiguousarray(img[:, :, 0])
        return cv2.cvtColor(img[:, :, :3], cv2.COLOR_BGR2GRAY)
    return img
