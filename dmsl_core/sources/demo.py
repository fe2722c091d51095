"""The synthetic live demo: a generated head that turns, talks and gets occluded, while the room
light fades to dark and back once per cycle.

``demo:?fps=25&size=320x256&seed=0&cycle=20&realtime=1&frames=N&rig=0``

- ``realtime=1`` paces frames at ``fps`` (a live source; a slow consumer drops frames; when
  rendering itself is slower than ``fps`` the scene still runs in real time and frame indices
  are skipped, counted in ``source.skipped_frames``);
  ``realtime=0`` yields them as fast as they render (headless runs, tests); timestamps are
  ``index / fps`` either way.
- ``cycle``: seconds of one script cycle. Light: full for the first 30 %, fades to dark over
  30-45 %, dark 45-60 %, back up 60-75 %, full to the end. Talking, head turns and two short
  occlusions (a hand, glasses) run through the cycle.
- ``rig=1``: the thermal image is shifted/scaled like a side-by-side dual-sensor rig and each
  pair carries the thermal->visible homography; ``rig=0`` (default): pixel-registered.
- ``render=process|thread``: where the frames are drawn. ``process`` (the default of a paced demo)
  draws them in a child process, one frame ahead, as a camera's frames come from its driver: the
  renderer is ~20 ms of Python per frame and, in this process, it held the interpreter lock against
  the pipeline and the window (on 2 cores the app then drew 23-24 of the demo's 25 fps). ``thread``
  (the default with ``realtime=0``: headless runs and tests get frames as fast as they render)
  draws them on the consuming thread. A child that cannot start falls back to ``thread``, logged.
- Ground truth goes into ``meta["landmarks_gt"]`` (visible pixels), ``meta["landmarks_gt_th"]``
  (thermal pixels) and ``meta["state"]`` (the scripted state).

Only :func:`render_state` depends on the face renderer (:mod:`dmsl_core.data.synth`); without it
a small built-in drawing stands in.
"""
from __future__ import annotations

import logging
import math
import os
import pickle
import queue
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from typing import Iterator, Optional

import cv2
import numpy as np

from ..frames import FramePair
from .base import FrameSource, SourceError

log = logging.getLogger("dmsl.sources")


@dataclass
class DemoState:
    """The scripted state of the demo at one instant (plain floats, renderer-independent)."""

    t: float = 0.0
    yaw: float = 0.0
    pitch: float = 0.0
    roll: float = 0.0
    talking: float = 0.0        # 0..1 amount of talking
    mouth_open: float = 0.0     # 0..1
    occlusion: str = ""         # "", "hand", "glasses"
    light: float = 1.0          # 0 (dark) .. 1 (full)
    dx: float = 0.0             # head offset, fraction of frame width
    dy: float = 0.0
    th_dx: float = 0.0          # thermal misregistration (rig=1): shift in pixels, scale
    th_dy: float = 0.0
    th_scale: float = 1.0


def light_level(t: float, cycle: float) -> float:
    """Room light over the cycle: 1, fade to 0, dark, back to 1 (cosine ramps)."""
    p = (t % cycle) / cycle
    if p < 0.30 or p >= 0.75:
        return 1.0
    if p < 0.45:
        return 0.5 + 0.5 * math.cos(math.pi * (p - 0.30) / 0.15)
    if p < 0.60:
        return 0.0
    return 0.5 - 0.5 * math.cos(math.pi * (p - 0.60) / 0.15)


def script_state(t: float, cycle: float = 20.0, seed: int = 0) -> DemoState:
    """The demo's timeline: head turns, talking, occlusions now and then, the light fading and back."""
    ph = (seed * 0.6180339887) % 1.0 * 2 * math.pi
    p = (t % cycle) / cycle
    talking = 1.0 if (0.05 <= p < 0.28 or 0.62 <= p < 0.95) else 0.0
    mouth = talking * (0.5 + 0.5 * math.sin(2 * math.pi * 3.3 * t + ph)) ** 2
    occl = "hand" if 0.15 <= p < 0.21 else ("glasses" if 0.80 <= p < 0.88 else "")
    return DemoState(
        t=t,
        yaw=30.0 * math.sin(2 * math.pi * t / (cycle / 2.5) + ph),
        pitch=8.0 * math.sin(2 * math.pi * t / 6.1 + ph),
        roll=6.0 * math.sin(2 * math.pi * t / 8.3 + 2 * ph),
        talking=talking, mouth_open=mouth, occlusion=occl, light=light_level(t, cycle),
        dx=0.04 * math.sin(2 * math.pi * t / 9.7 + ph), dy=0.03 * math.sin(2 * math.pi * t / 7.9),
    )


@dataclass
class DemoFrame:
    vis: np.ndarray                 # HxWx3 uint8 RGB
    th_celsius: np.ndarray          # HxW float32
    landmarks: np.ndarray           # (68, 2) visible pixels
    homography_th_to_vis: Optional[np.ndarray] = None


# ---- rendering: the only part that depends on the face renderer -----------------------------
_RENDERER_CACHE: dict = {}


def render_state(state: DemoState, size: tuple[int, int], seed: int, index: int) -> DemoFrame:
    """Render one demo frame; uses :mod:`dmsl_core.data.synth` when present, else a simple drawing."""
    try:
        from ..data import synth  # noqa: WPS433 - optional, written in parallel
    except ImportError:
        synth = None
    if synth is not None and hasattr(synth, "FaceRenderer"):
        return _render_synth(synth, state, size, seed, index)
    return _render_simple(state, size, seed, index)


_OCCLUSION_NAMES = {"hand": "hand_mouth", "glasses": "glasses"}


def _render_synth(synth, state: DemoState, size: tuple[int, int], seed: int, index: int) -> DemoFrame:
    key = ("synth", size, seed)
    if key not in _RENDERER_CACHE:
        _RENDERER_CACHE.clear()
        try:
            renderer = synth.FaceRenderer(size=size, jpeg=False)  # a live camera: no JPEG artefacts
        except TypeError:
            renderer = synth.FaceRenderer(size=size)
        _RENDERER_CACHE[key] = (renderer, synth.make_identity(seed, 0))
    renderer, identity = _RENDERER_CACHE[key]
    occ = _OCCLUSION_NAMES.get(state.occlusion)
    fs = synth.FaceState(yaw=state.yaw, pitch=state.pitch, roll=state.roll, mouth_open=state.mouth_open,
                         occlusions=frozenset([occ]) if occ else frozenset(), light=state.light,
                         cx=0.5 + state.dx, cy=0.5 + state.dy, scale=0.5,
                         th_dx=state.th_dx, th_dy=state.th_dy, th_scale=state.th_scale)
    f = renderer.render(identity, fs, np.random.default_rng([seed, index]))
    H = getattr(f, "homography_th_to_vis", None)
    return DemoFrame(vis=f.vis, th_celsius=np.asarray(f.th_celsius, np.float32),
                     landmarks=np.asarray(f.landmarks, float), homography_th_to_vis=None if H is None else np.asarray(H, float))


def _template() -> np.ndarray:
    """A rough mean 68-point face in a unit box (x right, y down), z = depth for yaw."""
    pts = []
    for k in range(17):                                   # jaw
        a = math.pi * k / 16
        pts.append((0.5 - 0.5 * math.cos(a), 0.25 + 0.75 * math.sin(a), 0.0))
    for k in range(5):
        pts.append((0.12 + 0.07 * k, 0.08 - 0.04 * math.sin(math.pi * k / 4), 0.25))   # right brow
    for k in range(5):
        pts.append((0.60 + 0.07 * k, 0.04 + 0.04 * math.sin(math.pi * (k + 4) / 4 - math.pi), 0.25))
    for k in range(4):
        pts.append((0.5, 0.25 + 0.1 * k, 0.3 + 0.1 * k))  # nose ridge
    for k in range(5):
        pts.append((0.40 + 0.05 * k, 0.62 + 0.02 * (1 - abs(k - 2) / 2), 0.45))  # nose base
    for cx in (0.30, 0.70):                               # eyes
        for k in range(6):
            a = math.pi + 2 * math.pi * k / 6
            pts.append((cx + 0.09 * math.cos(a), 0.30 + 0.035 * math.sin(a), 0.2))
    for k in range(12):                                   # outer lips
        a = math.pi + 2 * math.pi * k / 12
        pts.append((0.5 + 0.18 * math.cos(a), 0.80 + 0.06 * math.sin(a), 0.3))
    for k in range(8):                                    # inner lips
        a = math.pi + 2 * math.pi * k / 8
        pts.append((0.5 + 0.11 * math.cos(a), 0.80 + 0.02 * math.sin(a), 0.3))
    return np.array(pts, dtype=np.float64)


_TEMPLATE = _template()


def _render_simple(state: DemoState, size: tuple[int, int], seed: int, index: int) -> DemoFrame:
    w, h = size
    rng = np.random.default_rng([seed, index])
    side = 0.5 * min(w, h)
    cx, cy = w * (0.5 + state.dx), h * (0.5 + state.dy)
    tp = _TEMPLATE.copy()
    tp[60:68, 1] += (tp[60:68, 1] > 0.80) * 0.08 * state.mouth_open
    tp[54:59, 1] += 0.08 * state.mouth_open * 0.8
    yaw = math.radians(state.yaw)
    x = (tp[:, 0] - 0.5) * math.cos(yaw) + tp[:, 2] * math.sin(yaw) * 0.5
    y = tp[:, 1] - 0.5 + math.radians(state.pitch) * tp[:, 2] * 0.5
    r = math.radians(state.roll)
    xr, yr = x * math.cos(r) - y * math.sin(r), x * math.sin(r) + y * math.cos(r)
    pts = np.stack([cx + xr * side, cy + yr * side], axis=1)
    # visible
    L = float(state.light)
    bg = np.linspace(90, 150, w, dtype=np.float32)[None, :, None] * np.array([0.9, 1.0, 1.1], np.float32)
    vis = np.broadcast_to(bg, (h, w, 3)).copy()
    th = np.full((h, w), 22.0, np.float32)
    center = (int(cx), int(cy + 0.05 * side))
    axes = (int(side * 0.55 * (0.85 + 0.15 * math.cos(yaw))), int(side * 0.68))
    cv2.ellipse(vis, center, axes, state.roll, 0, 360, (205, 160, 130), -1)
    cv2.ellipse(th, center, axes, state.roll, 0, 360, 34.0, -1)
    for a, b in ((36, 42), (42, 48)):
        c = pts[a:b].mean(axis=0)
        cv2.ellipse(vis, (int(c[0]), int(c[1])), (max(1, int(0.06 * side)), max(1, int(0.025 * side))), state.roll,
                    0, 360, (40, 30, 30), -1)
    for i in (39, 42):
        cv2.circle(th, (int(pts[i, 0]), int(pts[i, 1])), max(1, int(0.03 * side)), 36.0, -1)
    cv2.fillPoly(vis, [pts[48:60].astype(np.int32)], (150, 50, 60))
    cv2.fillPoly(th, [pts[48:60].astype(np.int32)], 35.0)
    cv2.circle(th, (int(pts[30, 0]), int(pts[30, 1])), max(1, int(0.04 * side)), 31.5, -1)
    for a, b in ((17, 22), (22, 27), (27, 31), (31, 36)):
        cv2.polylines(vis, [pts[a:b].astype(np.int32)], False, (90, 60, 40), max(1, int(side / 60)))
    if state.occlusion == "hand":
        p0 = pts[48:60].mean(axis=0)
        cv2.ellipse(vis, (int(p0[0]), int(p0[1])), (int(0.3 * side), int(0.18 * side)), 10, 0, 360, (215, 170, 140), -1)
        cv2.ellipse(th, (int(p0[0]), int(p0[1])), (int(0.3 * side), int(0.18 * side)), 10, 0, 360, 33.0, -1)
    elif state.occlusion == "glasses":
        for a, b in ((36, 42), (42, 48)):
            c = pts[a:b].mean(axis=0).astype(int)
            cv2.circle(vis, (int(c[0]), int(c[1])), int(0.11 * side), (20, 20, 20), max(1, int(side / 40)))
            cv2.circle(th, (int(c[0]), int(c[1])), int(0.11 * side), 27.0, -1)
    vis = vis * (0.03 + 0.97 * L) + rng.normal(0, 2.0, (h, w, 1)).astype(np.float32)
    vis = np.clip(vis, 0, 255).astype(np.uint8)
    th = cv2.GaussianBlur(th, (0, 0), max(0.8, side / 60)) + rng.normal(0, 0.05, (h, w)).astype(np.float32)
    H = None
    if state.th_dx or state.th_dy or state.th_scale != 1.0:
        # thermal pixel -> visible pixel: scale about the centre, then shift
        c = np.array([w / 2, h / 2])
        k = state.th_scale
        H = np.array([[k, 0, (1 - k) * c[0] + state.th_dx], [0, k, (1 - k) * c[1] + state.th_dy], [0, 0, 1.0]])
        th = cv2.warpPerspective(th, np.linalg.inv(H), (w, h), borderMode=cv2.BORDER_REPLICATE)
    return DemoFrame(vis=vis, th_celsius=th.astype(np.float32), landmarks=pts, homography_th_to_vis=H)


# ---- the source --------------------------------------------------------------------------------
RIG_MISREGISTRATION = {"th_dx": -10.0, "th_dy": 6.0, "th_scale": 0.94}


class DemoScene:
    """Renders the scripted demo frame by frame (shared by the demo source and the fake camera)."""

    def __init__(self, size: tuple[int, int] = (320, 256), fps: float = 25.0, cycle: float = 20.0,
                 seed: int = 0, rig: bool = False) -> None:
        if fps <= 0 or cycle <= 0:
            raise SourceError("demo: fps and cycle must be positive")
        self.size, self.fps, self.cycle, self.seed, self.rig = size, float(fps), float(cycle), int(seed), rig

    def state(self, index: int) -> DemoState:
        st = script_state(index / self.fps, self.cycle, self.seed)
        if self.rig:
            for k, v in RIG_MISREGISTRATION.items():
                setattr(st, k, v)
        return st

    def pair(self, index: int, source: str = "demo") -> FramePair:
        st = self.state(index)
        f = render_state(st, self.size, self.seed, index)
        H = f.homography_th_to_vis
        registered = H is None or np.allclose(H, np.eye(3))
        gt_th = f.landmarks.copy()
        if not registered:
            q = np.hstack([f.landmarks, np.ones((68, 1))]) @ np.linalg.inv(H).T
            gt_th = q[:, :2] / q[:, 2:3]
        th_c = f.th_celsius.astype(np.float32)
        th_u16 = np.clip(np.round((th_c + 273.15) * 100.0), 0, 65535).astype(np.uint16)
        return FramePair(vis=f.vis, th=th_u16, th_celsius=th_c, t=index / self.fps, index=index,
                         source=source, homography_th_to_vis=None if registered else np.asarray(H, float),
                         registered=registered,
                         meta={"landmarks_gt": f.landmarks, "landmarks_gt_th": gt_th, "state": asdict(st),
                               "files": {"vis": "", "th": ""}})


#: Seconds the render process may take to start (an interpreter, the renderer imported, one frame
#: drawn; past it the demo renders on its own thread) and for any later frame (past it: an error).
RENDER_START_TIMEOUT_S = 30.0
RENDER_FRAME_TIMEOUT_S = 10.0
#: A frame asked for more than this long before its consumer came for it (a pause) is not shown.
RENDER_STALE_S = 0.5


def _render_child_main() -> None:
    """The render process (``python -c "...; _render_child_main()"``): the scene's options, then frame
    indices, arrive pickled on stdin; ``("ready", pid)`` and then ``(index, FramePair | error text)``
    leave pickled on stdout. Ends on ``None`` or when stdin closes (the parent ended)."""
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)                     # anything printed goes to stderr, never into the frame stream
    inp = sys.stdin.buffer
    try:
        cv2.setNumThreads(1)          # one core's worth: the pipeline and the window have the rest
    except Exception:  # noqa: BLE001 - a best-effort setting
        pass

    def send(obj) -> bool:
        try:
            pickle.dump(obj, out, protocol=pickle.HIGHEST_PROTOCOL)
            out.flush()
            return True
        except (BrokenPipeError, OSError):
            return False

    try:
        scene = DemoScene(**pickle.load(inp))
        scene.pair(0)                 # imports and warms the renderer before saying ready
    except Exception as exc:  # noqa: BLE001 - said to the parent, which falls back to its own thread
        send(("failed", f"{type(exc).__name__}: {exc}"))
        return
    if not send(("ready", os.getpid())):
        return
    while True:
        try:
            index = pickle.load(inp)
        except (EOFError, OSError, pickle.UnpicklingError):
            return
        if index is None:
            return
        try:
            frame = scene.pair(int(index))
        except Exception as exc:  # noqa: BLE001 - sent back and raised there, with the frame
            frame = f"{type(exc).__name__}: {exc}"
        if not send((int(index), frame)):
            return


_CHILD_CODE = "from dmsl_core.sources.demo import _render_child_main; _render_child_main()"


class _RenderProcess:
    """A child process that renders the demo's frames (see ``render=process`` in the module doc).

    A plain interpreter running only this module (not ``multiprocessing``: its spawn would import
    the parent's ``__main__`` - the whole app, 3.8 s and 340 MB - where this child needs 0.3 s and
    75 MB). A reader thread turns its stdout into a queue, so waiting for a frame can time out and
    notice the source closing."""

    def __init__(self, scene_kwargs: dict) -> None:
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env = dict(os.environ)
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env["OMP_NUM_THREADS"] = "1"
        self.proc = subprocess.Popen([sys.executable, "-c", _CHILD_CODE], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, env=env, close_fds=True)
        self.requested = 0       # frames asked for (each is rendered once)
        self._lock = threading.Lock()
        self._ended = False
        self._inbox: "queue.Queue" = queue.Queue()
        self._reader = threading.Thread(target=self._read, name="dmsl-demo-render-reader", daemon=True)
        self._reader.start()
        try:
            self._send(dict(scene_kwargs))
            msg = self._get(RENDER_START_TIMEOUT_S, lambda: False)
            if msg is None or msg[0] != "ready":
                raise SourceError(msg[1] if msg is not None and msg[0] == "failed"
                                  else "the render process did not say it was ready")
        except BaseException:
            self.close()
            raise

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def _read(self) -> None:
        stream = self.proc.stdout
        try:
            while True:
                self._inbox.put(pickle.load(stream))
        except Exception:  # noqa: BLE001 - EOF (the child ended) or a broken stream: said as EOF
            self._inbox.put(_EOF)

    def _send(self, obj) -> None:
        try:
            pickle.dump(obj, self.proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError, ValueError) as exc:
            raise SourceError(f"demo: the render process ended (exit code {self.proc.poll()}): {exc}") from None

    def _get(self, limit: float, closed):
        end = time.monotonic() + limit
        while True:
            if closed() or self._ended:
                return None
            try:
                msg = self._inbox.get(timeout=0.05)
            except queue.Empty:
                if time.monotonic() > end:
                    raise SourceError(f"demo: the render process sent no frame in {limit:.0f} s") from None
                continue
            if msg is _EOF:
                if closed() or self._ended:
                    return None
                try:
                    self.proc.wait(2.0)          # for its exit code; a child that closed its stdout
                except subprocess.TimeoutExpired:  # but lives on still ends the stream with this error
                    pass
                raise SourceError(f"demo: the render process ended (exit code {self.proc.poll()})")
            return msg

    def request(self, index: int) -> None:
        if self._ended:
            return
        self.requested += 1
        self._send(int(index))

    def receive(self, closed) -> Optional[tuple[int, FramePair]]:
        """The next rendered frame; None when ``closed()`` turns true while waiting."""
        msg = self._get(RENDER_FRAME_TIMEOUT_S, closed)
        if msg is None:
            return None
        index, out = msg
        if isinstance(out, str):
            raise SourceError(f"demo frame {index}: rendering failed: {out}")
        return index, out

    def close(self) -> None:
        with self._lock:
            if self._ended:
                return
            self._ended = True
        try:
            self._send(None)
            self.proc.stdin.close()
        except (SourceError, OSError, ValueError):
            pass
        try:
            self.proc.wait(2.0)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(2.0)
        self.proc.stdout.close()


_EOF = object()


class DemoSource(FrameSource):
    """The synthetic demo as a frame source (see the module docstring for the options)."""

    kind = "demo"

    def __init__(self, uri: str = "demo", size: tuple[int, int] = (320, 256), fps: float = 25.0,
                 cycle: float = 20.0, seed: int = 0, realtime: bool = True, frames: Optional[int] = None,
                 rig: bool = False, render: Optional[str] = None) -> None:
        super().__init__(uri)
        self.scene = DemoScene(size=size, fps=fps, cycle=cycle, seed=seed, rig=rig)
        render = render or ("process" if realtime else "thread")
        if render not in ("process", "thread"):
            raise SourceError(f"{uri}: render={render!r}: use 'process' or 'thread'")
        self.render = render
        self._worker: Optional[_RenderProcess] = None
        self.realtime, self.n_frames = realtime, frames
        self.skipped_frames = 0  # realtime: frames not rendered because rendering was slower than fps
        self._info.update(fps=fps, frames=frames, live=realtime, on_demand=realtime, spectra=("vis", "th"),
                          radiometric=True,
                          pairing="demo: rendered together (pixel-registered)" if not rig else
                          "demo: rendered together, thermal offset by a rig homography",
                          cycle=cycle, size=size, render=render)

    def _start_worker(self) -> Optional[_RenderProcess]:
        try:
            if getattr(sys, "frozen", False):   # a bundled app's executable is the app, not an interpreter
                raise SourceError("a frozen app has no interpreter to start")
            sc = self.scene
            return _RenderProcess(dict(size=sc.size, fps=sc.fps, cycle=sc.cycle, seed=sc.seed, rig=sc.rig))
        except Exception as exc:  # noqa: BLE001 - no interpreter to start (a frozen app), a broken one
            log.warning("%s: the render process did not start (%s): rendering on this thread", self.uri, exc)
            self.render = "thread"
            self._info["render"] = "thread"
            return None

    def _frames(self) -> Iterator[FramePair]:
        worker = self._start_worker() if self.render == "process" else None
        if worker is None:
            yield from self._frames_here()
            return
        self._worker = worker
        try:
            yield from self._frames_from(worker)
        finally:
            self._worker = None
            worker.close()

    def _frames_here(self) -> Iterator[FramePair]:
        start = time.monotonic()
        i = 0
        while not self._closed and (self.n_frames is None or i < self.n_frames):
            if self.realtime:
                now = time.monotonic()
                due = int((now - start) * self.scene.fps)  # the frame the wall clock is at
                if due > i:  # rendering is slower than fps: skip ahead so the scene runs in real time
                    self.skipped_frames += due - i
                    i = due
                    if self.n_frames is not None and i >= self.n_frames:
                        return
                delay = start + i / self.scene.fps - now
                if delay > 0:
                    time.sleep(delay)
            yield self.scene.pair(i, self.uri)
            i += 1

    def _frames_from(self, worker: _RenderProcess) -> Iterator[FramePair]:
        """Frames from the render process. As a frame is handed on, the next one is asked for, so it
        renders while this one is processed: the frame after the one the clock is at (frames the
        clock passed meanwhile are skipped, as a camera's are, and counted in ``skipped_frames``).
        A frame is handed on at its time, or late when it rendered late; one asked for before the
        consumer held the stream (a pause) is dropped."""
        closed = lambda: self._closed  # noqa: E731
        fps, n = self.scene.fps, self.n_frames
        start: Optional[float] = None
        last = -1

        def ask() -> Optional[int]:
            nxt = last + 1
            if self.realtime and start is not None:
                nxt = max(nxt, int((time.monotonic() - start) * fps) + 1)
                self.skipped_frames += nxt - (last + 1)
            if n is not None and nxt >= n:
                return None
            worker.request(nxt)
            return nxt

        pending = ask()
        while pending is not None and not self._closed:
            if start is not None and self.realtime:
                late = time.monotonic() - (start + pending / fps)
                if late > RENDER_STALE_S:     # asked for before a pause: of the past, not shown
                    if worker.receive(closed) is None:
                        return
                    pending = ask()
                    continue
                if late < 0:
                    time.sleep(-late)
            got = worker.receive(closed)
            if got is None:
                return
            last, pair = got
            if start is None:  # the clock starts with the first frame (the child's start-up is not late)
                start = time.monotonic() - last / fps
            pending = ask()
            pair.source = self.uri
            yield pair

    def _release(self) -> None:
        w = self._worker  # closed here too: a source closed while its generator waits at a yield
        if w is not None:
            w.close()
