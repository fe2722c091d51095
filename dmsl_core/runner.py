"""The frame loop: a source through a :class:`~dmsl_core.stream.StreamProcessor`, driven by commands.

One loop for every front end (issue 18): ``dmsl run`` iterates :meth:`StreamRunner.events` to the
end; the app's Live tab iterates the same generator on its worker thread and sends commands into the
runner's :class:`CommandInbox` from the Qt thread (pause, step, seek, spectrum mode, stream options,
recording start/stop). The app keeps only display.

- **Live sources** (cameras, the paced demo) are read through :class:`LatestFrameGrabber` on a
  thread of their own: the loop processes the newest pair and counts the ones it never took.
  A live source that delivers nothing for ``stall_timeout_s`` ends the stream with an error.
- **Recorded sources** (video files, folders, the fast demo) are processed frame by frame; with
  ``pace=True`` at their frame rate (never catching up: a loop slower than real time re-anchors).
  ``reopen`` (a callable giving a fresh copy of the source) makes seeking back and playing again
  after the end possible; ``hold_at_end=True`` pauses at the end instead of finishing.
- **Paused is idle**: a paused loop blocks on the inbox (no polling) until a command or a stop
  arrives, so nothing is read, rendered or processed. Step processes one frame and pauses. A
  camera's grabber keeps only its newest frame meanwhile, so Play shows a fresh one.
- **Recording** (``record`` command): the exports are written by a
  :class:`~dmsl_core.export.Recorder` on a thread of its own behind a bounded queue; a live source's
  frames are dropped and counted when the disk cannot keep up, a file's are all written. A writer's
  error (a full disk) stops the recording, not the stream.

Events (:class:`StreamEvent`): ``started`` (info), ``result`` (result), ``state`` (info: paused,
ended), ``recording`` (info: active, paths, rows, dropped; on a failure ``failed`` and
``exception``), ``notice`` (text), ``error`` (error text and the exception), ``finished`` (stats).
Every command's effect is seen from the frame after it; the events are yielded on the loop's thread.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Optional

from .frames import FramePair
from .sources.base import SourceInfo
from .stream import FrameResult, StreamProcessor

log = logging.getLogger("dmsl.runner")


# ---- reading a live source ----------------------------------------------------------------------
class LatestFrameGrabber:
    """Reads a source on a thread and keeps only the newest pair; counts the pairs nobody took.

    A source whose ``info["on_demand"]`` is true (the demo: it renders the frame the wall clock is
    at when asked) is read at most one frame ahead of the consumer, so no frame is rendered only to
    be dropped; the frames it skipped (``source.skipped_frames``) count as dropped.
    """

    def __init__(self, source: Any, stop: Optional[threading.Event] = None) -> None:
        self.source = source
        self.on_demand = SourceInfo(getattr(source, "info", {}) or {}).on_demand
        self._replaced = 0
        self.stop_event = stop or threading.Event()
        self._cond = threading.Condition()
        self._pending: Optional[FramePair] = None
        self.received = 0
        self.dropped = 0
        self.taken = 0
        self.error: Optional[BaseException] = None
        self.finished = False
        self.last_frame_time = time.monotonic()
        self._thread: Optional[threading.Thread] = None

    def start(self) -> "LatestFrameGrabber":
        self._thread = threading.Thread(target=self._run, name="dmsl-grabber", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            for pair in self.source:
                with self._cond:
                    if self._pending is not None:
                        self._replaced += 1
                    self._pending = pair
                    self.received += 1
                    self._count_drops()
                    self.last_frame_time = time.monotonic()
                    self._cond.notify_all()
                    while self.on_demand and self._pending is not None and not self.stop_event.is_set():
                        self._cond.wait(0.1)
                if self.stop_event.is_set():
                    break
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer as an error event
            self.error = exc
        finally:
            with self._cond:
                self.finished = True
                self._cond.notify_all()

    def get(self, timeout: Optional[float] = None) -> Optional[FramePair]:
        """The newest pair not yet taken; None on timeout or when the source ended (see ``finished``)."""
        with self._cond:
            if self._pending is None and not self.finished:
                self._cond.wait(timeout)
            p, self._pending = self._pending, None
            if p is not None:
                self.taken += 1
                self._count_drops()
                self._cond.notify_all()  # an on-demand source may render the next frame now
            return p

    def _count_drops(self) -> None:
        self.dropped = self._replaced + int(getattr(self.source, "skipped_frames", 0) or 0)

    def stop(self, join_timeout: float = 2.0) -> None:
        self.stop_event.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(join_timeout)


# ---- what the loop reports ------------------------------------------------------------------------
@dataclass
class StreamStats:
    processed: int = 0
    received: int = 0
    dropped: int = 0
    reused: int = 0
    elapsed_s: float = 0.0
    process_s: float = 0.0     # time spent in StreamProcessor.process (the pipeline alone)
    switches: int = 0
    rate: float = 0.0          # results per second lately (smoothed; what a live view shows)
    position: int = 0          # the index of the last frame processed
    frames: Optional[int] = None           # the source's frame count, when it has one
    recording_rows: int = 0    # results the current (or last) recording wrote
    recording_dropped: int = 0  # results it dropped (its queue was full: the disk was slower)

    @property
    def fps(self) -> float:
        """End-to-end frames per second (source decoding/rendering included)."""
        return self.processed / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def pipeline_fps(self) -> float:
        """Frames per second of the per-frame pipeline alone (selector, models, smoothing, temperatures)."""
        return self.processed / self.process_s if self.process_s > 0 else 0.0

    def to_dict(self) -> dict:
        return {"processed": self.processed, "received": self.received, "dropped": self.dropped,
                "box_reused_frames": self.reused, "switches": self.switches,
                "elapsed_s": round(self.elapsed_s, 3), "fps": round(self.fps, 2),
                "pipeline_fps": round(self.pipeline_fps, 2)}


@dataclass
class StreamEvent:
    """``kind``: started (info), result (result), state (info), recording (info), notice (text),
    error (error text, exception), finished (stats)."""

    kind: str
    result: Optional[FrameResult] = None
    error: str = ""
    info: dict = field(default_factory=dict)
    stats: Optional[StreamStats] = None
    text: str = ""
    exception: Optional[BaseException] = None


# ---- commands -------------------------------------------------------------------------------------
STREAM_OPTIONS = ("smoothing", "reuse_box", "detector", "detect_every", "selector", "min_face")


class CommandInbox:
    """The commands a front end sends a running loop; thread-safe, never blocks the sender.

    The loop drains the inbox between frames (a paused loop waits on it). A front end may create the
    inbox before the loop exists (commands sent meanwhile wait) and hand it to :class:`StreamRunner`.
    """

    def __init__(self) -> None:
        self._q: "queue.Queue[tuple]" = queue.Queue()

    def put(self, *cmd: Any) -> None:
        self._q.put(tuple(cmd))

    def pause(self, paused: bool = True) -> None:
        self.put("pause", bool(paused))

    def play(self) -> None:
        self.put("pause", False)

    def step(self, frames: int = 1) -> None:
        """Process ``frames`` more frames, then stay paused (pauses a playing loop)."""
        self.put("step", max(1, int(frames)))

    def seek(self, index: int) -> None:
        """Go to frame ``index`` of a recorded source (and show it when paused)."""
        self.put("seek", int(index))

    def set_mode(self, mode: str) -> None:
        """The spectrum mode: auto | visible | thermal | both."""
        self.put("mode", str(mode))

    def configure(self, **options: Any) -> None:
        """Change stream options on the fly: smoothing, reuse_box, detector (a registered name or None
        for M_b's one face), detect_every, min_face, selector (a SelectorConfig or a dict of its thresholds)."""
        bad = sorted(set(options) - set(STREAM_OPTIONS))
        if bad:
            raise ValueError(f"unknown stream option(s) {', '.join(bad)} (known: {', '.join(STREAM_OPTIONS)})")
        self.put("configure", dict(options))

    def record(self, spec: Any) -> None:
        """Start recording (a :class:`~dmsl_core.export.RecordSpec`, or an ExportSet already open);
        a recording already running is finished first."""
        self.put("record", spec)

    def stop_recording(self) -> None:
        self.put("record", None)

    def wake(self) -> None:
        self.put("wake")

    def get(self, block: bool, timeout: Optional[float] = None) -> Optional[tuple]:
        try:
            return self._q.get(block, timeout) if block else self._q.get_nowait()
        except queue.Empty:
            return None


def selector_config(values: Any, mode: str = "auto"):
    """A :class:`~dmsl_core.spectrum.SelectorConfig` from a dict of its fields (unknown keys ignored;
    values it rejects give the defaults, with a warning) or a SelectorConfig; ``mode`` set."""
    import dataclasses

    from .spectrum import SelectorConfig
    if isinstance(values, SelectorConfig):
        cfg = dataclasses.replace(values)
    else:
        names = {f.name for f in dataclasses.fields(SelectorConfig)} - {"mode"}
        kw = {k: v for k, v in (values or {}).items() if k in names}
        try:
            cfg = SelectorConfig(**kw)
        except (TypeError, ValueError) as exc:
            log.warning("selector thresholds %s rejected (%s); using the defaults", kw, exc)
            cfg = SelectorConfig()
    cfg.mode = mode
    return cfg


# ---- the loop -------------------------------------------------------------------------------------
class _Stop(Exception):
    """Internal: the loop was asked to stop while waiting."""


class StreamRunner:
    """The frame loop over a source (see the module docstring).

    ``live=None`` follows ``source.info["live"]``. ``stall_timeout_s``: a live source that
    delivers nothing for this long ends the stream with an error event. ``pace``: a recorded source is
    processed at its frame rate (``info["fps"]``) while playing. ``reopen``: a callable giving a fresh
    copy of the source (seeking back, playing again after the end). ``hold_at_end``: at the end of a
    recorded source, pause and wait for Play / Step / Seek (which start again) instead of finishing;
    a source that ends before its first frame is then an error. ``start_paused``: show the first
    frame of a recorded source and wait (a live one waits for Play or Step). ``inbox``: where the
    commands come from (one is made when not given: :attr:`inbox`).
    """

    def __init__(self, source: Any, processor: StreamProcessor, max_frames: Optional[int] = None,
                 stop: Optional[threading.Event] = None, live: Optional[bool] = None,
                 stall_timeout_s: float = 5.0, *, pace: bool = False,
                 reopen: Optional[Callable[[], Any]] = None, hold_at_end: bool = False,
                 start_paused: bool = False, inbox: Optional[CommandInbox] = None) -> None:
        self.source = source
        self.processor = processor
        self.max_frames = max_frames
        self.stop_event = stop or threading.Event()
        info = SourceInfo(getattr(source, "info", {}) or {})
        self.live = info.live if live is None else live
        if self.live:
            processor.config.async_detect = True     # detection must not hold up a live source's frames
        self.stall_timeout_s = stall_timeout_s
        self.pace = bool(pace)
        self.reopen = reopen
        self.hold_at_end = bool(hold_at_end)
        self.inbox = inbox or CommandInbox()
        self.paused = bool(start_paused)
        self.ended = False
        self.stats = StreamStats(frames=info.frames)
        self.recorder = None
        self._out: list[StreamEvent] = []       # events made by commands, yielded before the next frame
        self._steps = 1 if (start_paused and not self.live) else 0   # paused at the start: show frame 0
        self._seek: Optional[int] = None
        self._t_last: Optional[float] = None

    # ---- the front end's side (any thread) ------------------------------------------------------------
    def stop(self) -> None:
        self.stop_event.set()
        self.inbox.wake()   # a paused loop waits on the inbox: let it see the stop

    @property
    def stopping(self) -> bool:
        return self.stop_event.is_set()

    # ---- commands (the loop's thread) -----------------------------------------------------------------
    def _drain(self, block: bool) -> None:
        """Apply the queued commands; ``block``: wait (without polling) for the first one."""
        while not self.stopping:
            cmd = self.inbox.get(block)
            if cmd is None:
                return
            block = False
            self._apply(cmd)

    def _set_paused(self, paused: bool, **extra: Any) -> None:
        if paused != self.paused or extra:
            self.paused = paused
            self._out.append(StreamEvent("state", info={"paused": paused, "ended": self.ended, **extra}))

    def _apply(self, cmd: tuple) -> None:
        kind = cmd[0]
        proc = self.processor
        if kind == "pause":
            if not cmd[1] and self.ended:
                self._restart()
            self._set_paused(bool(cmd[1]))
            if not self.paused:
                self._steps = 0        # Play drops the steps not taken yet
        elif kind == "step":
            if self.ended:
                self._restart()
            self._steps += int(cmd[1])
            self._set_paused(True)
        elif kind == "seek":
            if self.live:
                self._out.append(StreamEvent("notice", text="a live source cannot seek"))
                return
            if self.ended:
                self._restart()
            self._seek = int(cmd[1])
        elif kind == "mode":
            proc.set_mode(cmd[1])
        elif kind == "configure":
            for k, v in cmd[1].items():
                if k == "selector":
                    proc.selector.config = selector_config(v, proc.config.mode)
                elif k == "detect_every":
                    proc.config.detect_every = max(1, int(v))
                elif k in ("smoothing", "reuse_box"):
                    # stills carry nothing from one image to the next
                    setattr(proc.config, k, bool(v) and not proc.config.still_images)
                else:
                    # the detector: the processor builds its trackers when it is first used (a tracker
                    # left from before starts again: the frame it saw last is not the previous one)
                    setattr(proc.config, k, v)
        elif kind == "record":
            self._close_recording()
            if cmd[1] is not None:
                self._open_recording(cmd[1])

    # ---- recording --------------------------------------------------------------------------------------
    def _open_recording(self, spec: Any) -> None:
        from .export import ExportSet, Recorder, open_exports
        info = getattr(self.source, "info", {}) or {}
        try:
            exports = spec if isinstance(spec, ExportSet) else open_exports(spec.paths(), info)
        except Exception as exc:  # noqa: BLE001 - reported as an event; the stream goes on
            self._out.append(StreamEvent("recording", info={"active": False, "failed": "start"}, exception=exc,
                                         error=str(exc)))
            return
        self.recorder = Recorder(exports, drop_when_full=self.live)
        self.stats.recording_rows = self.stats.recording_dropped = 0
        self._out.append(StreamEvent("recording", info={"active": True, "rows": 0,
                                                        "paths": [str(w.path) for w in exports.writers]}))

    def _close_recording(self) -> None:
        rec, self.recorder = self.recorder, None
        if rec is None:
            return
        try:
            paths = rec.close()          # the queued frames are written first
            self.stats.recording_rows, self.stats.recording_dropped = rec.rows, rec.dropped
            self._out.append(StreamEvent("recording", info={"active": False, "paths": [str(p) for p in paths],
                                                            "rows": rec.rows, "dropped": rec.dropped}))
        except Exception as exc:  # noqa: BLE001
            self._out.append(StreamEvent("recording", info={"active": False, "failed": "finish"}, exception=exc,
                                         error=str(exc)))

    def _record(self, result: FrameResult) -> None:
        rec = self.recorder
        if rec is None:
            return
        rec.write(result)
        self.stats.recording_rows, self.stats.recording_dropped = rec.rows, rec.dropped
        if rec.error is not None:       # a full disk stops the recording, not the stream
            self.recorder = None
            try:
                rec.close()
            except Exception:  # noqa: BLE001 - the writer's error, reported below
                pass
            self._out.append(StreamEvent("recording", info={"active": False, "failed": "write"},
                                         exception=rec.error, error=str(rec.error)))

    # ---- recorded sources: position, seeking, the end ------------------------------------------------
    def _reopen(self) -> None:
        if self.reopen is None:
            raise RuntimeError("this source cannot be read again (no reopen given)")
        try:
            self.source.close()
        except Exception:  # noqa: BLE001
            pass
        self.source = None
        self.source = self.reopen()
        self._it, self._pos = iter(self.source), 0
        self.processor.reset()

    def _restart(self) -> None:
        """After the end: from the first frame again."""
        self.ended = False
        self._reopen()
        self._anchor()

    def _anchor(self) -> None:
        self._t_anchor, self._i_anchor = time.monotonic(), self._pos

    def _do_seek(self, target: int) -> None:
        target = max(0, int(target))
        if self.stats.frames:
            target = min(target, self.stats.frames - 1)
        if target < self._pos:
            if self.reopen is None:
                self._out.append(StreamEvent("notice", text="this source cannot seek back"))
                return
            self._reopen()
        while self._pos < target and not self.stopping:
            if next(self._it, None) is None:
                break
            self._pos += 1
        if self.paused:
            self._steps = max(self._steps, 1)   # paused: show the frame sought
        self._anchor()

    def _next_recorded(self) -> Optional[FramePair]:
        pair = next(self._it, None)
        if pair is None:
            return None
        self._pos += 1
        fps = SourceInfo(getattr(self.source, "info", {}) or {}).fps or 0.0
        if self.pace and fps > 0 and not self.paused:
            delay = self._t_anchor + (self._pos - 1 - self._i_anchor) / fps - time.monotonic()
            if delay > 0 and self.stop_event.wait(delay):
                raise _Stop
            if delay < -0.5:   # slower than real time: re-anchor, never try to catch up
                self._t_anchor, self._i_anchor = time.monotonic(), self._pos - 1
        return pair

    def _at_end(self) -> bool:
        """The recorded source ended; True when the loop should finish."""
        if self.hold_at_end and self._pos == 0 and not self.stats.processed:   # not "opening…" for ever
            from .sources import SourceError
            skipped = getattr(self.source, "skipped", [])
            raise SourceError(f"{getattr(self.source, 'uri', 'source')}: the source ended without giving a frame"
                              + (f" ({len(skipped)} unreadable, skipped: {'; '.join(skipped[:3])})" if skipped else ""))
        if not self.hold_at_end or self.reopen is None:
            return True
        self.ended = True
        self._steps = 0
        self._out.append(StreamEvent("notice", text="end of the source - seek or press Play to start again"))
        self._set_paused(True, ended=True)
        return False

    # ---- the loop -------------------------------------------------------------------------------------
    def _pairs(self) -> Iterator[tuple[FramePair, int, int]]:
        """(pair, received so far, dropped so far), between which the commands are applied."""
        if self.live:
            yield from self._live_pairs()
        else:
            yield from self._recorded_pairs()

    def _idle(self) -> bool:
        return self.ended or (self.paused and self._steps == 0)

    def _recorded_pairs(self) -> Iterator[tuple[FramePair, int, int]]:
        self._it, self._pos = iter(self.source), 0
        self._anchor()
        while not self.stopping:
            if self._out:
                yield None, 0, 0  # events (the end, a notice) go out before the loop waits
            idle = self._idle()
            self._drain(block=idle)
            yield None, 0, 0      # the commands' events go out before the frame they affect
            if self.stopping:
                return
            if self._seek is not None:
                target, self._seek = self._seek, None
                self._do_seek(target)
            if self._idle():
                continue
            was_paused = self.paused
            pair = self._next_recorded()
            if pair is None:
                if self._at_end():
                    return
                continue
            if was_paused:
                self._steps -= 1
                self._anchor()
            yield pair, self._pos, 0

    def _live_pairs(self) -> Iterator[tuple[FramePair, int, int]]:
        grabber = LatestFrameGrabber(self.source, self.stop_event).start()
        awake = time.monotonic()       # when the loop last stopped waiting (the stall clock starts there)
        try:
            while not self.stopping:
                if self._out:
                    yield None, grabber.received, grabber.dropped
                idle = self._idle()
                self._drain(block=idle)
                if idle:
                    awake = time.monotonic()
                yield None, grabber.received, grabber.dropped
                if self.stopping or self._idle():
                    continue   # paused: wait for the next command; nothing is taken or processed
                pair = grabber.get(timeout=0.05)
                if pair is None:
                    if grabber.finished:
                        pair = grabber.get(timeout=0)
                        if pair is None:
                            break
                    elif time.monotonic() - max(grabber.last_frame_time, awake) > self.stall_timeout_s:
                        raise TimeoutError(f"{getattr(self.source, 'uri', 'source')}: no frame for "
                                           f"{self.stall_timeout_s:g} s (camera stalled or disconnected?). "
                                           "Open it again when it is back.")
                    else:
                        continue
                if self.paused:
                    self._steps -= 1
                yield pair, grabber.received, grabber.dropped
            if grabber.error is not None and not self.stopping:
                raise grabber.error
        finally:
            grabber.stop(join_timeout=0.5)
            self.stats.received, self.stats.dropped = grabber.received, grabber.dropped

    def _flush(self) -> Iterator[StreamEvent]:
        while self._out:
            yield self._out.pop(0)

    def events(self) -> Iterator[StreamEvent]:
        """Run the loop, yielding events; always ends with a ``finished`` event."""
        yield StreamEvent("started", info=dict(getattr(self.source, "info", {}) or {}))
        if self.paused:
            yield StreamEvent("state", info={"paused": True, "ended": False})
        t0 = time.perf_counter()
        error, exception = "", None
        try:
            for pair, received, dropped in self._pairs():
                yield from self._flush()
                if pair is None:
                    continue
                tp = time.perf_counter()
                res = self.processor.process(pair, dropped=dropped)
                now = time.perf_counter()
                st = self.stats
                st.process_s += now - tp
                st.processed += 1
                st.received = max(st.received, received)
                st.dropped = dropped
                st.position = pair.index
                st.elapsed_s = now - t0
                inst = 1.0 / max(1e-6, (now - self._t_last) if self._t_last is not None else (now - tp))
                st.rate = inst if st.rate == 0 else 0.85 * st.rate + 0.15 * inst
                self._t_last = now
                self._record(res)
                yield StreamEvent("result", result=res)
                yield from self._flush()
                if self.max_frames is not None and st.processed >= self.max_frames:
                    break
        except _Stop:
            pass
        except (KeyboardInterrupt, GeneratorExit):
            raise
        except BaseException as exc:  # noqa: BLE001 - a failing source or model ends the stream with its text
            log.warning("stream ended with an error: %s", exc)
            error, exception = (str(exc) or type(exc).__name__), exc
        finally:
            self.processor.close()
        self._close_recording()
        yield from self._flush()
        self.stats.elapsed_s = time.perf_counter() - t0
        self.stats.reused = self.processor.n_reused
        self.stats.switches = self.processor.selector.switches
        if error:
            yield StreamEvent("error", error=error, exception=exception, stats=self.stats)
        yield StreamEvent("finished", stats=self.stats)

    def run(self, on_result: Optional[Callable[[FrameResult], None]] = None,
            on_error: Optional[Callable[[str], None]] = None,
            on_event: Optional[Callable[[StreamEvent], None]] = None) -> StreamStats:
        """Run to the end with callbacks; returns the statistics."""
        for ev in self.events():
            if on_event is not None:
                on_event(ev)
            if ev.kind == "result" and on_result is not None and ev.result is not None:
                on_result(ev.result)
            elif ev.kind == "error" and on_error is not None:
                on_error(ev.error)
        return self.stats
