"""Live cameras: a small backend interface, a factory, frame decoders for thermal cores, camera sources.

Backends (``backend=`` option of a camera URI; ``opencv`` by default):

``opencv``  :class:`OpenCVBackend` - ``cv2.VideoCapture`` (V4L2 / MSMF / AVFoundation); raw 16-bit
            modes set ``CAP_PROP_CONVERT_RGB`` off and ask for the Y16 / YUYV fourcc.
``fake``    :class:`FakeBackend` - renders the synthetic demo and encodes it exactly as the real
            device would (Lepton Y16 centi-kelvin with telemetry rows, Boson counts, TC001 double-height
            YUYV, RGB); ``frames=N`` makes it "disconnect" after N frames, ``fail_open=1`` makes
            opening fail, ``hang_open=1`` makes opening block (a hung driver) until closed,
            ``freeze=N`` makes it deliver frame N-1 again and again after N frames (a frozen core). Tests use it to run the very same :class:`CameraSource` code path.

A new backend (GenICam, a vendor SDK) is one module: subclass :class:`CameraBackend` and call
:func:`register_backend`.

Decoders turn a raw frame into (vis, th, th_celsius):

``rgb``     visible webcam / HDMI capture card (BGR from OpenCV -> RGB)
``gray``    an 8-bit thermal picture through a capture card (no temperatures)
``lepton``  PureThermal (Lepton): Y16 centi-kelvin, C = raw / 100 - 273.15; telemetry rows dropped
``boson``   Boson: Y16 raw counts (no temperatures) - ``tlinear=1`` when the camera outputs
            T-linear centi-kelvin (C = raw / 100 - 273.15)
``tc001``   TOPDON TC001 / InfiRay P2 Pro: a 256x384 YUYV frame, upper half the picture, lower half
            raw 16-bit little-endian, C = raw / 64 - 273.15
"""
from __future__ import annotations

import abc
import logging
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Optional

import cv2
import numpy as np

from ..frames import FramePair
from .base import OPEN_TIMEOUT_S, FrameSource, SourceError, SourceURI, call_with_timeout, gray_u8

log = logging.getLogger("dmsl.sources.cameras")


@dataclass
class CameraMode:
    """What to ask the device for."""

    decoder: str = "rgb"                 # rgb | gray | lepton | boson | tc001
    width: Optional[int] = None
    height: Optional[int] = None
    fps: Optional[float] = None
    fourcc: Optional[str] = None         # e.g. "Y16 ", "YUYV", "MJPG"
    raw: bool = False                    # CAP_PROP_CONVERT_RGB off
    options: dict[str, str] = field(default_factory=dict)


class CameraBackend(abc.ABC):
    """open / read / close one camera. ``read`` returns a frame or None when none came (lost device)."""

    name = "backend"

    @abc.abstractmethod
    def open(self, device: str, mode: CameraMode) -> None:
        """Open ``device``; raise :class:`SourceError` naming it when that fails."""

    @abc.abstractmethod
    def read(self) -> Optional[np.ndarray]:
        """The next raw frame (blocking until it arrives), or None when the device gave nothing."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the device (idempotent)."""

    def describe(self) -> dict[str, Any]:
        return {}


_BACKENDS: dict[str, Callable[[], CameraBackend]] = {}


def register_backend(name: str, factory: Callable[[], CameraBackend]) -> None:
    """Make a backend available to camera URIs as ``backend=name``."""
    _BACKENDS[name] = factory


def create_backend(name: str) -> CameraBackend:
    try:
        return _BACKENDS[name]()
    except KeyError:
        raise SourceError(f"unknown camera backend {name!r}; known: {', '.join(sorted(_BACKENDS))}") from None


def list_backends() -> list[str]:
    return sorted(_BACKENDS)


# ---- OpenCV ------------------------------------------------------------------------------------
class OpenCVBackend(CameraBackend):
    name = "opencv"

    def __init__(self) -> None:
        self.cap: Optional[cv2.VideoCapture] = None
        self.device = ""
        self.mode = CameraMode()

    def open(self, device: str, mode: CameraMode) -> None:
        self.device, self.mode = device, mode
        target: Any = int(device) if device.lstrip("-").isdigit() else device
        api_name = mode.options.get("api", "")
        api = getattr(cv2, f"CAP_{api_name.upper()}", None) if api_name else None
        if api is None:
            api = cv2.CAP_V4L2 if (sys.platform.startswith("linux") and isinstance(target, int)) else cv2.CAP_ANY
        if isinstance(target, int) and sys.platform.startswith("linux"):
            import os
            if not os.path.exists(f"/dev/video{target}"):
                raise SourceError(f"camera {device}: no such device (/dev/video{target} does not exist)")
        cap = cv2.VideoCapture(target, api)
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"camera {device}: OpenCV could not open it (no such device, in use, or no permission)")
        if mode.fourcc:
            cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*mode.fourcc.ljust(4)[:4]))
        if mode.width:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, mode.width)
        if mode.height:
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, mode.height)
        if mode.fps:
            cap.set(cv2.CAP_PROP_FPS, mode.fps)
        if mode.raw:
            cap.set(cv2.CAP_PROP_CONVERT_RGB, 0)
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        self.cap = cap

    def read(self) -> Optional[np.ndarray]:
        if self.cap is None:
            return None
        ok, frame = self.cap.read()
        return frame if ok and frame is not None and frame.size else None

    def close(self) -> None:
        if self.cap is not None:
            self.cap.release()
            self.cap = None

    def describe(self) -> dict[str, Any]:
        if self.cap is None:
            return {}
        return {"width": int(self.cap.get(cv2.CAP_PROP_FRAME_WIDTH)), "height": int(self.cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
                "fps": float(self.cap.get(cv2.CAP_PROP_FPS) or 0) or None, "api": self.cap.getBackendName()}


# ---- fake (synthetic) --------------------------------------------------------------------------
LEPTON_TELEMETRY_ROWS = 2


def encode_lepton(celsius: np.ndarray, telemetry_rows: int = LEPTON_TELEMETRY_ROWS) -> np.ndarray:
    raw = np.clip(np.round((celsius + 273.15) * 100.0), 0, 65535).astype(np.uint16)
    if telemetry_rows:
        tele = np.full((telemetry_rows, raw.shape[1]), 0xABCD, np.uint16)
        raw = np.vstack([raw, tele])
    return raw


def encode_tc001(celsius: np.ndarray) -> np.ndarray:
    """A (2H, W, 2) uint8 TC001 frame: YUYV picture on top, little-endian raw (C + 273.15) * 64 below."""
    raw = np.clip(np.round((celsius + 273.15) * 64.0), 0, 65535).astype(np.uint16)
    lo, hi = (raw & 0xFF).astype(np.uint8), (raw >> 8).astype(np.uint8)
    c = celsius.astype(np.float32)
    y = np.clip((c - c.min()) / max(1e-6, float(c.max() - c.min())) * 235 + 16, 0, 255).astype(np.uint8)
    top = np.stack([y, np.full_like(y, 128)], axis=2)
    return np.concatenate([top, np.stack([lo, hi], axis=2)], axis=0)


def encode_boson(celsius: np.ndarray, tlinear: bool = False) -> np.ndarray:
    if tlinear:
        return np.clip(np.round((celsius + 273.15) * 100.0), 0, 65535).astype(np.uint16)
    return np.clip(np.round(8000 + (celsius - 20.0) * 60.0), 0, 65535).astype(np.uint16)


class FakeBackend(CameraBackend):
    """A synthetic camera showing the demo scene, encoded like the device the decoder expects."""

    name = "fake"

    def __init__(self) -> None:
        self.scene = None
        self.i = 0
        self.limit: Optional[int] = None
        self.fps = 30.0
        self.realtime = True
        self._t0 = 0.0
        self.mode = CameraMode()
        self.device = ""
        self.opened = False
        self.freeze: Optional[int] = None
        self._last_raw: Optional[np.ndarray] = None
        self._closing = threading.Event()

    def open(self, device: str, mode: CameraMode) -> None:
        from .demo import DemoScene
        o = mode.options
        if o.get("fail_open", "0") not in ("0", "", "false"):
            raise SourceError(f"camera {device}: no such device (fake backend asked to fail)")
        if o.get("hang_open", "0") not in ("0", "", "false"):
            self._closing.wait()  # a driver that never answers: only close() (the timeout) ends the wait
            raise SourceError(f"camera {device}: opening was abandoned")
        self.freeze = int(o["freeze"]) if o.get("freeze") else None
        defaults = {"lepton": (160, 120), "boson": (320, 256), "tc001": (256, 192)}
        w, h = defaults.get(mode.decoder, (mode.width or 160, mode.height or 128))
        self.fps = float(mode.fps or 30.0)
        self.limit = int(o["frames"]) if o.get("frames") else None
        self.realtime = o.get("realtime", "1") not in ("0", "false", "no")
        self.scene = DemoScene(size=(w, h), fps=self.fps, cycle=float(o.get("cycle", 20.0)),
                               seed=int(o.get("seed", 0) or 0) + (0 if not device.isdigit() else int(device)))
        self.mode, self.device, self.i, self.opened = mode, device, 0, True
        self._t0 = time.monotonic()

    def read(self) -> Optional[np.ndarray]:
        if not self.opened or self.scene is None:
            return None
        if self.limit is not None and self.i >= self.limit:
            return None  # the camera "disappeared"
        if self.realtime:
            delay = self._t0 + self.i / self.fps - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        if self.freeze is not None and self.i >= self.freeze and self._last_raw is not None:
            self.i += 1
            return self._last_raw.copy()  # a frozen core: the same picture, again and again
        self._last_raw = self._encode(self.scene.pair(self.i))
        self.i += 1
        return self._last_raw

    def _encode(self, p) -> np.ndarray:
        d = self.mode.decoder
        if d == "lepton":
            return encode_lepton(p.th_celsius)
        if d == "boson":
            return encode_boson(p.th_celsius, self.mode.options.get("tlinear", "0") not in ("0", ""))
        if d == "tc001":
            return encode_tc001(p.th_celsius)
        if d == "gray":
            c = p.th_celsius
            g = np.clip((c - 20.0) / 20.0 * 255, 0, 255).astype(np.uint8)
            return cv2.cvtColor(g, cv2.COLOR_GRAY2BGR)
        return cv2.cvtColor(p.vis, cv2.COLOR_RGB2BGR)

    def close(self) -> None:
        self.opened = False
        self._closing.set()


register_backend("opencv", OpenCVBackend)
register_backend("fake", FakeBackend)


# ---- decoders ----------------------------------------------------------------------------------
def as_u16(frame: np.ndarray, shape: Optional[tuple[int, int]] = None) -> np.ndarray:
    """A Y16 frame as HxW uint16, whether OpenCV gave (H, W) uint16, (H, W, 2) bytes or a flat byte buffer."""
    f = np.asarray(frame)
    if f.dtype == np.uint16:
        return f[:, :, 0] if f.ndim == 3 else f
    if f.dtype == np.uint8:
        if f.ndim == 3 and f.shape[2] == 2:
            return f[:, :, 0].astype(np.uint16) | (f[:, :, 1].astype(np.uint16) << 8)
        if shape is not None and f.size == shape[0] * shape[1] * 2:
            return np.frombuffer(f.tobytes(), dtype="<u2").reshape(shape)
    raise SourceError(f"expected a raw 16-bit frame, got {f.dtype} {f.shape} (is CONVERT_RGB off / Y16 selected?)")


def lepton_to_celsius(raw: np.ndarray) -> np.ndarray:
    """PureThermal / Lepton radiometric Y16: centi-kelvin -> degrees C."""
    return raw.astype(np.float32) / 100.0 - 273.15


def tc001_to_celsius(raw: np.ndarray) -> np.ndarray:
    """TC001 / P2 Pro raw 16-bit -> degrees C (raw / 64 - 273.15)."""
    return raw.astype(np.float32) / 64.0 - 273.15


def strip_lepton_telemetry(raw: np.ndarray, where: str = "footer") -> np.ndarray:
    """Drop telemetry rows: 122 -> 120 rows (Lepton 3.x), 63 -> 60 (Lepton 2.x); others untouched."""
    h = raw.shape[0]
    image_h = {122: 120, 63: 60}.get(h, h)
    n = h - image_h
    if n <= 0 or where == "none":
        return raw
    return raw[n:] if where == "header" else raw[:image_h]


def decode_tc001(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(picture RGB, raw u16, celsius) of a TC001 frame ((2H, W, 2) bytes or a flat buffer of 256x384)."""
    f = np.asarray(frame)
    if f.dtype == np.uint8 and f.ndim == 2 and f.shape[0] == 1:
        f = f.reshape(384, 256, 2) if f.size == 384 * 256 * 2 else f
    if f.dtype != np.uint8 or f.ndim != 3 or f.shape[2] != 2:
        raise SourceError(f"TC001: expected a (384, 256, 2) YUYV frame with CONVERT_RGB off, got {f.dtype} {f.shape}")
    h = f.shape[0] // 2
    top, bottom = f[:h], f[h:2 * h]
    picture = cv2.cvtColor(np.ascontiguousarray(top), cv2.COLOR_YUV2RGB_YUYV)
    raw = bottom[:, :, 0].astype(np.uint16) | (bottom[:, :, 1].astype(np.uint16) << 8)
    return picture, raw, tc001_to_celsius(raw)


DECODERS = ("rgb", "gray", "lepton", "boson", "tc001")


def decode(frame: np.ndarray, mode: CameraMode) -> tuple[Optional[np.ndarray], Optional[np.ndarray], Optional[np.ndarray], dict]:
    """(vis, th, th_celsius, extra meta) of a raw frame."""
    d = mode.decoder
    if d == "rgb":
        if frame.ndim == 2:
            return cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB), None, None, {}
        return cv2.cvtColor(frame[:, :, :3], cv2.COLOR_BGR2RGB), None, None, {}
    if d == "gray":
        return None, gray_u8(frame), None, {}
    if d == "lepton":
        raw = strip_lepton_telemetry(as_u16(frame), mode.options.get("telemetry", "footer"))
        return None, raw, lepton_to_celsius(raw), {}
    if d == "boson":
        raw = as_u16(frame)
        tl = mode.options.get("tlinear", "0") not in ("0", "", "false")
        return None, raw, (lepton_to_celsius(raw) if tl else None), {}
    if d == "tc001":
        pic, raw, c = decode_tc001(frame)
        return None, raw, c, {"th_picture": pic}
    raise SourceError(f"unknown camera decoder {d!r}; known: {', '.join(DECODERS)}")


# Per-kind defaults (fourcc, raw, spectrum).
KIND_MODES = {
    "cam": ("rgb", None, False),
    "lepton": ("lepton", "Y16 ", True),
    "boson": ("boson", "Y16 ", True),
    "tc001": ("tc001", "YUYV", True),
}


class CameraSource(FrameSource):
    """One live camera. Errors while streaming end the iteration with :class:`SourceError`.

    ``max_misses`` consecutive empty reads mean the camera is gone.
    """

    kind = "camera"

    def __init__(self, device: str, mode: CameraMode, backend: str | CameraBackend = "opencv", uri: str = "",
                 max_misses: int = 3) -> None:
        super().__init__(uri or f"cam:{device}")
        self.device, self.mode = device, mode
        self.backend = create_backend(backend) if isinstance(backend, str) else backend
        self.max_misses = max_misses
        # raises SourceError naming the camera; a driver that blocks is given up after open_timeout s
        call_with_timeout(lambda: self.backend.open(device, mode),
                          SourceURI("", "", mode.options, f"camera {device}").opt_float("open_timeout", OPEN_TIMEOUT_S),
                          f"camera {device} ({self.backend.name})", cancel=self.backend.close)
        spectrum = "vis" if mode.decoder == "rgb" else "th"
        self.spectrum = spectrum
        self._info.update(live=True, fps=mode.fps, frames=None, spectra=(spectrum,),
                          radiometric=mode.decoder in ("lepton", "tc001") or (
                              mode.decoder == "boson" and mode.options.get("tlinear", "0") not in ("0", "")),
                          pairing=f"single live camera {device} ({mode.decoder}, backend {self.backend.name})",
                          backend=self.backend.name, decoder=mode.decoder, **self.backend.describe())

    def _frames(self) -> Iterator[FramePair]:
        t0 = time.monotonic()
        i, misses = 0, 0
        while not self._closed:
            try:
                frame = self.backend.read()
            except Exception as exc:  # noqa: BLE001 - a backend failure ends the stream with its text
                raise SourceError(f"camera {self.device} ({self.backend.name}): read failed: {exc}") from exc
            if self._closed:
                return
            if frame is None:
                misses += 1
                if misses >= self.max_misses:
                    raise SourceError(f"camera {self.device} ({self.backend.name}): stopped delivering frames "
                                      f"after {i} frames (disconnected?)")
                time.sleep(0.01)
                continue
            misses = 0
            vis, th, c, extra = decode(frame, self.mode)
            yield FramePair(vis=vis, th=th, th_celsius=c, t=time.monotonic() - t0, index=i, source=self.uri,
                            meta={"files": {"vis": "", "th": ""}, **extra})
            i += 1

    def _release(self) -> None:
        self.backend.close()


class DualCameraSource(FrameSource):
    """Two live cameras (one visible, one thermal) combined as one pair.

    The visible camera is the clock: each visible frame pairs with the newest thermal frame
    (read on its own thread). Either camera failing ends the stream with its error.

    A thermal camera that stops delivering *new* frames (a hung driver whose ``read`` blocks, or a
    frozen core repeating one picture bit for bit - real sensor noise never does) is noticed: once
    the newest new thermal frame is older than ``stale_after_s`` (the thermal camera's ``stale=S``
    option; default the larger of 1 s and 5 of its frame periods) visible frames are no longer
    paired with it (``th`` None, ``meta["th_stale_s"]`` its age), a warning names the camera, and
    ``info["th_stale"]`` is True; pairing resumes when a new frame arrives.
    """

    kind = "cameras"

    def __init__(self, vis: CameraSource, th: CameraSource, uri: str = "") -> None:
        super().__init__(uri)
        if vis.spectrum != "vis" or th.spectrum != "th":
            vis.close(), th.close()
            raise SourceError(f"{uri}: the first camera must be visible and the second thermal")
        self.vis_cam, self.th_cam = vis, th
        self._latest: Optional[FramePair] = None
        self._latest_at = 0.0        # time.monotonic() when the newest *new* thermal frame arrived
        self._error: Optional[BaseException] = None
        self._thread: Optional[threading.Thread] = None
        self.first_frame_timeout_s = 2.0
        th_fps = th.info.get("fps") or 0.0
        stale = SourceURI("", "", th.mode.options, th.uri).opt_float("stale")
        self.stale_after_s = float(stale) if stale else max(1.0, 5.0 / th_fps if th_fps else 1.0)
        self.stale_events = 0        # how many times the thermal camera was found frozen
        self._info.update(live=True, fps=vis.info.get("fps"), frames=None, spectra=("vis", "th"),
                          radiometric=th.info.get("radiometric", False), th_stale=False,
                          pairing=f"latest: each frame of {vis.uri} with the newest frame of {th.uri} "
                                  f"(unpaired once it is {self.stale_after_s:g} s old)")

    def _pump(self) -> None:
        prev: Optional[np.ndarray] = None
        try:
            for p in self.th_cam:
                if prev is not None and p.th is not None and p.th.shape == prev.shape and np.array_equal(p.th, prev):
                    continue  # the same picture again: not a new frame
                prev = p.th
                self._latest, self._latest_at = p, time.monotonic()
                self._first.set()
        except BaseException as exc:  # noqa: BLE001 - reported on the visible thread
            self._error = exc
        finally:
            self._first.set()

    def _frames(self) -> Iterator[FramePair]:
        self._first = threading.Event()
        self._latest_at = time.monotonic()
        self._thread = threading.Thread(target=self._pump, name="dmsl-thermal-camera", daemon=True)
        self._thread.start()
        self._first.wait(self.first_frame_timeout_s)  # start with a thermal frame when one comes soon
        stale = False
        for i, v in enumerate(self.vis_cam):
            if self._error is not None:
                raise SourceError(str(self._error)) from self._error
            t = self._latest
            age = time.monotonic() - self._latest_at
            if age > self.stale_after_s:
                if not stale:
                    self.stale_events += 1
                    log.warning("%s: the thermal camera %s delivered no new frame for %.1f s (frozen or hung?); "
                                "visible frames go unpaired until it does", self.uri, self.th_cam.uri, age)
                stale, t = True, None
            elif stale:
                log.warning("%s: the thermal camera %s delivers new frames again", self.uri, self.th_cam.uri)
                stale = False
            self._info["th_stale"] = stale
            meta = {"files": {"vis": "", "th": ""}, "th_index": None if t is None else t.index}
            if stale:
                meta["th_stale_s"] = round(age, 3)
            yield FramePair(vis=v.vis, th=None if t is None else t.th, th_celsius=None if t is None else t.th_celsius,
                            t=v.t, index=i, source=self.uri, meta=meta)
        if self._error is not None:
            raise SourceError(str(self._error)) from self._error

    def _release(self) -> None:
        self.vis_cam.close()
        self.th_cam.close()
        if self._thread is not None:
            self._thread.join(timeout=2.0)


def camera_from_uri(u: SourceURI, kind: Optional[str] = None, default_spectrum: str = "vis") -> CameraSource:
    """A :class:`CameraSource` for ``cam:`` / ``lepton:`` / ``boson:`` / ``tc001:`` URIs."""
    kind = kind or u.scheme
    decoder, fourcc, raw = KIND_MODES[kind]
    if kind == "cam" and u.opt("spectrum", default_spectrum) in ("th", "thermal"):
        decoder = "gray"
    size = u.opt_size("size")
    mode = CameraMode(decoder=decoder, width=size[0] if size else None, height=size[1] if size else None,
                      fps=u.opt_float("fps"), fourcc=u.opt("fourcc", fourcc), raw=u.opt_bool("raw", raw),
                      options=dict(u.options))
    device = u.target or "0"
    return CameraSource(device, mode, backend=u.opt("backend", "opencv"), uri=u.text)
