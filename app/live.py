"""The live loop off the Qt thread: model loading, frame pulling, DMSL, recording.

:class:`LiveWorker` runs on its own QThread. It opens the source, pulls frames (a live source
through :class:`~dmsl_core.stream.LatestFrameGrabber`, so only the newest pair is processed and
the rest are counted as dropped; a file frame by frame, paced at its frame rate), runs
:class:`~dmsl_core.stream.StreamProcessor` and hands each result to the recording
(:class:`dmsl_core.export.Recorder`: the export writers on a thread of their own, behind a bounded
queue; a live source's frames are dropped and counted when the disk cannot keep up).

The window never gets a queue of frames: each result goes into a one-slot *mailbox*; the worker
emits ``frame_ready`` only when the window has taken the previous one (``take_latest``), and a
result overwritten before the window took it is counted as a display drop.

Commands from the window (mode, pause, step, seek, recording, selector thresholds) go through a
thread-safe queue the loop drains between frames; nothing the window calls blocks on the model.

Paused is idle: the loop blocks on that queue (no polling) until a command or a stop arrives, so
nothing is processed, and an on-demand source (the demo) renders nothing. A camera's reader thread
(the grabber) keeps only its newest frame meanwhile, so Play shows a fresh one.
"""
from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from PySide6 import QtCore

from .workers import Worker, explain

log = logging.getLogger("dmsl.app.live")

MODE_TO_CORE = {"auto": "auto", "visible": "visible", "thermal": "thermal", "both": "both"}


# ---- the model ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelSpec:
    weights: str = ""            # "" = shipped default
    fallback_config: str = "dmsl-compact"
    device: str = "auto"
    threads: int = 0
    tta: str = ""                # test-time augmentation: "" = the model card's, "none", "flip-final", "flip"
    refine: str = ""             # box refinement: "" = the model card's, "mb", "landmarks", "both"


@dataclass
class LoadedModel:
    predictor: Any
    name: str
    device: str                  # in words ("CPU, 2 threads", "NVIDIA H200")
    note: str = ""               # shown to the user (e.g. "no shipped model: untrained weights")
    untrained: bool = False
    card: dict = field(default_factory=dict)
    source: str = ""


_MODEL_CACHE: dict[ModelSpec, LoadedModel] = {}
_MODEL_LOCK = threading.Lock()


def load_model(spec: ModelSpec) -> LoadedModel:
    """The predictor a spec names; falls back to untrained weights (with a note) when the shipped
    default is missing or the chosen weights cannot be loaded, so the window always works."""
    from dmsl_core.device import describe_device, resolve_device
    from dmsl_core.models.weights import WeightsError
    from dmsl_core.pipeline import Predictor
    from dmsl_core.threads import configure as configure_threads

    with _MODEL_LOCK:
        if spec in _MODEL_CACHE:
            return _MODEL_CACHE[spec]
        # the pipeline's threads beside the window's GUI thread (dmsl_core/threads.py: measured)
        configure_threads(int(spec.threads) if spec.threads and spec.threads > 0 else None, busy_beside=1)
        note = ""
        try:
            device = resolve_device(spec.device)
        except ValueError as exc:  # unknown or absent device (e.g. cuda on a CPU-only machine)
            device = resolve_device("cpu")
            note = f"{exc}; running on the CPU instead - choose the device in Settings"
        try:
            pred = Predictor.from_weights(spec.weights or None, device=device, tta=spec.tta or None,
                                          refine=spec.refine or None)
            pred.apply_measured_speed_option()
            untrained = bool(pred.card.get("untrained"))
        except WeightsError as exc:
            note = (note + ". ") if note else ""
            if spec.weights:
                note += f"bad weights ({exc}); showing untrained {spec.fallback_config} weights - choose weights in Settings"
            else:
                note += (f"no shipped model: showing untrained {spec.fallback_config} weights "
                        "(landmarks are meaningless) - choose weights in Settings")
            pred = Predictor.untrained(spec.fallback_config, device=device)
            if spec.tta:
                pred.set_tta(spec.tta)
            if spec.refine:
                pred.set_refine(spec.refine)
            untrained = True
        name = pred.name + (" (untrained)" if untrained else "")
        lm = LoadedModel(predictor=pred, name=name, device=f"{device.type.upper()}: {describe_device(device)}"
                         if device.type != "cpu" else describe_device(device), note=note, untrained=untrained,
                         card=dict(pred.card), source=str(pred.source))
        _MODEL_CACHE.clear()  # one model in memory at a time
        _MODEL_CACHE[spec] = lm
        return lm


def face_detector_available(notify=None) -> bool:
    """Whether the "auto" face detector can run here (it needs dlib); ``notify(text)`` says why not."""
    try:
        from dmsl_core.detection import detector_available
        ok = detector_available("auto")
    except Exception as exc:  # noqa: BLE001 - a broken detector install falls back to one face
        log.warning("face detector unavailable: %s", exc)
        ok = False
    if not ok and notify is not None:
        notify("no face detector here (install dlib): one face per frame (M_b) - Settings > Faces")
    return ok


def cached_model() -> Optional[LoadedModel]:
    with _MODEL_LOCK:
        return next(iter(_MODEL_CACHE.values()), None)


# ---- recording -------------------------------------------------------------------------------------
@dataclass
class RecordSpec:
    folder: str
    stem: str
    csv: bool = True
    jsonl: bool = False
    video: bool = True

    def paths(self) -> dict[str, Path]:
        d = Path(self.folder)
        out = {}
        if self.csv:
            out["csv"] = d / f"{self.stem}.csv"
        if self.jsonl:
            out["jsonl"] = d / f"{self.stem}.jsonl"
        if self.video:
            out["video"] = d / f"{self.stem}.mp4"
        return out


def recording_stem(uri: str) -> str:
    import re
    base = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(uri.split("?")[0].split("|")[0].split(":")[-1] or "demo").stem or "demo")
    return f"{base[:40] or 'stream'}_{time.strftime('%Y%m%d-%H%M%S')}"


# ---- the worker ------------------------------------------------------------------------------------
@dataclass
class LiveOptions:
    mode: str = "auto"
    smoothing: bool = True
    selector: dict = field(default_factory=dict)
    reuse_box: bool = False
    faces: str = "every"                 # "every": face detector + tracking; "one": M_b's single face
    detect_every: int = 10               # with faces="every": frames between face detections
    realtime: Optional[bool] = None      # None: the source decides (the demo is paced)
    max_frames: Optional[int] = None
    start_paused: bool = False
    stall_timeout_s: float = 5.0


@dataclass
class LiveStats:
    processed: int = 0
    received: int = 0
    dropped: int = 0             # frames the source produced that were never processed
    display_dropped: int = 0     # results the window never drew (it was busy)
    fps: float = 0.0             # processing rate (smoothed)
    position: int = 0
    frames: Optional[int] = None
    recording_rows: int = 0
    recording_dropped: int = 0      # results the recorder dropped (its queue was full: the disk was slower)


class LiveWorker(Worker):
    frame_ready = QtCore.Signal()
    opened = QtCore.Signal(object)          # source info dict
    model_ready = QtCore.Signal(object)     # LoadedModel
    recording = QtCore.Signal(object)       # {"paths": [...], "active": bool, "rows": n} or {"error": text}
    notice = QtCore.Signal(str)             # a passing message (status bar)
    state = QtCore.Signal(object)           # {"paused": bool}

    def __init__(self, uri: str, model: ModelSpec, options: Optional[LiveOptions] = None) -> None:
        super().__init__()
        self.uri = uri
        self.model_spec = model
        self.options = options or LiveOptions()
        self._cmds: "queue.Queue[tuple]" = queue.Queue()
        self._mail_lock = threading.Lock()
        self._latest = None
        self._waiting_for_ui = False
        self.stats = LiveStats()
        self.paused = self.options.start_paused
        self.info: dict = {}
        self.model: Optional[LoadedModel] = None
        self._exports = None
        self._record_paths: list[Path] = []
        self.source = None

    # ---- the window's side (any thread) ---------------------------------------------------------
    def command(self, *cmd: Any) -> None:
        self._cmds.put(cmd)

    def stop(self) -> None:
        super().stop()
        self._cmds.put(("wake",))   # a paused loop blocks on the queue: let it see the stop

    def set_mode(self, mode: str) -> None:
        self.command("mode", mode)

    def set_paused(self, paused: bool) -> None:
        self.command("pause", bool(paused))

    def step(self) -> None:
        self.command("step")

    def seek(self, index: int) -> None:
        self.command("seek", int(index))

    def start_recording(self, spec: RecordSpec) -> None:
        self.command("record", spec)

    def stop_recording(self) -> None:
        self.command("record", None)

    def take_latest(self):
        """The newest result (or None) - called by the window when it is ready to draw."""
        with self._mail_lock:
            r, self._latest = self._latest, None
            self._waiting_for_ui = False
            return r

    def _post(self, result) -> None:
        with self._mail_lock:
            if self._latest is not None:
                self.stats.display_dropped += 1
            self._latest = result
            notify = not self._waiting_for_ui
            self._waiting_for_ui = True
        if notify:
            self.frame_ready.emit()

    # ---- the loop (worker thread) ------------------------------------------------------------
    def work(self) -> Any:
        from dmsl_core.sources import open_source

        self.notice.emit(f"loading model… ({self.model_spec.device})")
        self.model = load_model(self.model_spec)
        self.model_ready.emit(self.model)
        self.check_stop()
        self.notice.emit(f"opening {self.uri}…")
        self.source = open_source(self.uri, realtime=self.options.realtime)
        try:
            self.info = dict(self.source.info)
            self.stats.frames = self.info.get("frames")
            self.opened.emit(self.info)
            self.check_stop()
            processor = self._make_processor()
            try:
                if self.source.live:
                    self._run_live(processor)
                else:
                    self._run_file(processor)
            finally:
                processor.close()
        finally:
            self._close_recording()
            src, self.source = self.source, None
            if src is not None:
                try:
                    src.close()
                except Exception:  # noqa: BLE001
                    pass
        return dataclasses.asdict(self.stats)

    def _make_processor(self):
        from dmsl_core.stream import StreamConfig, StreamProcessor

        o = self.options
        still = self.info.get("kind") in ("dataset", "folders") or self.info.get("frames") == 1
        cfg = StreamConfig(mode=MODE_TO_CORE.get(o.mode, "auto"), selector=self._selector_config(o.selector),
                           smoothing=bool(o.smoothing and not still), reuse_box=bool(o.reuse_box and not still),
                           detector=self._detector_for(o.faces), detect_every=max(1, int(o.detect_every)),
                           still_images=still, async_detect=bool(getattr(self.source, "live", False)))
        return StreamProcessor(self.model.predictor, cfg)

    def _detector_for(self, faces: str) -> Optional[str]:
        """The StreamConfig detector for the Faces setting: "auto" for every face, None for M_b's one face
        (also when no face detector is installed here, with a notice)."""
        if faces != "every":
            return None
        return "auto" if face_detector_available(self.notice.emit) else None

    @staticmethod
    def _selector_config(values: dict):
        from dmsl_core.spectrum import SelectorConfig
        names = {f.name for f in dataclasses.fields(SelectorConfig)} - {"mode"}
        kw = {k: v for k, v in (values or {}).items() if k in names}
        try:
            return SelectorConfig(**kw)
        except (TypeError, ValueError) as exc:
            log.warning("selector thresholds %s rejected (%s); using the defaults", kw, exc)
            return SelectorConfig()

    # commands --------------------------------------------------------------------------------------
    def _drain(self, processor, block: bool = False) -> dict:
        """Apply queued commands; returns {"step": n, "seek": i or None}. ``block``: wait (without
        polling) for the first command - a paused loop; :meth:`stop` sends one too."""
        out = {"step": 0, "seek": None}
        while True:
            try:
                cmd = self._cmds.get() if block else self._cmds.get_nowait()
            except queue.Empty:
                return out
            block = False
            self._apply(cmd, processor, out)

    def _apply(self, cmd: tuple, processor, out: dict) -> None:
        kind = cmd[0]
        if kind == "mode":
            processor.set_mode(MODE_TO_CORE.get(cmd[1], "auto"))
            self.options.mode = cmd[1]
        elif kind == "pause":
            self.paused = cmd[1]
            self.state.emit({"paused": self.paused})
        elif kind == "step":
            out["step"] += 1
            if not self.paused:
                self.paused = True
                self.state.emit({"paused": True})
        elif kind == "seek":
            out["seek"] = cmd[1]
        elif kind == "selector":
            cfg = self._selector_config(cmd[1])
            cfg.mode = processor.config.mode
            processor.selector.config = cfg
        elif kind == "smoothing":
            processor.config.smoothing = bool(cmd[1])
        elif kind == "reuse_box":
            processor.config.reuse_box = bool(cmd[1])
        elif kind == "faces":
            # the processor builds its trackers when the detector is first used: setting it is enough (a
            # tracker left from before starts again: the frame it saw last is not the previous one)
            processor.config.detector = self._detector_for(cmd[1])
            self.options.faces = cmd[1]
        elif kind == "detect_every":
            processor.config.detect_every = max(1, int(cmd[1]))
            self.options.detect_every = processor.config.detect_every
        elif kind == "record":
            if cmd[1] is None:
                self._close_recording()
            else:
                self._open_recording(cmd[1])

    def _open_recording(self, spec: RecordSpec) -> None:
        from dmsl_core.export import CSVExporter, ExportSet, JSONLExporter, Recorder, VideoExporter

        self._close_recording()
        writers = []
        paths = spec.paths()
        try:
            if not paths:
                raise ValueError("nothing to record: tick CSV, JSON or video in Settings > Recording")
            Path(spec.folder).mkdir(parents=True, exist_ok=True)
            for kind, p in paths.items():
                if kind == "csv":
                    writers.append(CSVExporter(p))
                elif kind == "jsonl":
                    writers.append(JSONLExporter(p, info=_jsonable(self.info)))
                else:
                    writers.append(VideoExporter(p, fps=self.info.get("fps") or 25.0, spectra=self.info.get("spectra")))
        except Exception as exc:  # noqa: BLE001
            for w in writers:
                try:
                    w.abort()  # nothing published (no header-only file)
                except Exception:  # noqa: BLE001
                    pass
            self.recording.emit({"active": False, "error": f"cannot start recording: {explain(exc)}"})
            return
        # written on the recorder's own thread (a bounded queue): a live source's frames are dropped and
        # counted when the disk cannot keep up, a file's all written (dmsl_core.export.Recorder)
        self._exports = Recorder(ExportSet(writers), drop_when_full=bool(getattr(self.source, "live", False)))
        self._record_paths = list(paths.values())
        self.stats.recording_rows = 0
        self.stats.recording_dropped = 0
        self.recording.emit({"active": True, "paths": [str(p) for p in self._record_paths], "rows": 0})

    def _close_recording(self) -> None:
        ex, self._exports = self._exports, None
        if ex is None:
            return
        try:
            paths = ex.close()          # the queued frames are written first
            self.stats.recording_rows, self.stats.recording_dropped = ex.rows, ex.dropped
            self.recording.emit({"active": False, "paths": [str(p) for p in paths], "rows": ex.rows,
                                 "dropped": ex.dropped})
        except Exception as exc:  # noqa: BLE001
            self.recording.emit({"active": False, "error": f"recording could not be finished: {explain(exc)}"})

    def _record(self, result) -> None:
        rec = self._exports
        if rec is None:
            return
        rec.write(result)
        self.stats.recording_rows, self.stats.recording_dropped = rec.rows, rec.dropped
        if rec.error is not None:       # a full disk stops the recording, not the stream
            self._exports = None
            try:
                rec.close()
            except Exception:  # noqa: BLE001 - the writer's error, reported below
                pass
            self.recording.emit({"active": False, "error": f"recording stopped: {explain(rec.error)}"})

    # processing ---------------------------------------------------------------------------------------
    def _process(self, processor, pair, dropped: int) -> None:
        t0 = time.perf_counter()
        res = processor.process(pair, dropped=dropped)
        dt = time.perf_counter() - t0
        st = self.stats
        st.processed += 1
        st.position = pair.index
        now = time.perf_counter()
        if getattr(self, "_t_last", None) is not None:
            inst = 1.0 / max(1e-6, now - self._t_last)
            st.fps = inst if st.fps == 0 else 0.85 * st.fps + 0.15 * inst
        else:
            st.fps = 1.0 / max(1e-6, dt)
        self._t_last = now
        self._record(res)
        self._post(res)

    def _run_live(self, processor) -> None:
        from dmsl_core.stream import LatestFrameGrabber

        grabber = LatestFrameGrabber(self.source, self._stop).start()
        steps = 0                      # frames asked for by Step while paused
        awake = time.monotonic()       # when the loop last stopped waiting (the stall clock starts there)
        try:
            while not self.stopping:
                idle = self.paused and steps == 0
                steps += self._drain(processor, block=idle)["step"]
                steps = steps if self.paused else 0   # Step pauses; Play drops steps not taken yet
                if idle:
                    awake = time.monotonic()
                if self.stopping or (self.paused and steps == 0):
                    continue   # paused: wait for the next command; nothing is taken or processed
                pair = grabber.get(timeout=0.05)
                self.stats.received, self.stats.dropped = grabber.received, grabber.dropped
                if pair is None:
                    if grabber.finished:
                        break
                    if time.monotonic() - max(grabber.last_frame_time, awake) > self.options.stall_timeout_s:
                        raise TimeoutError(f"{self.uri}: no frame for {self.options.stall_timeout_s:g} s "
                                           "(camera stalled or disconnected?). Open it again when it is back.")
                    continue
                if self.paused:
                    steps -= 1
                self._process(processor, pair, grabber.dropped)
                if self.options.max_frames and self.stats.processed >= self.options.max_frames:
                    break
            if grabber.error is not None and not self.stopping:
                raise grabber.error
        finally:
            grabber.stop(join_timeout=0.5)

    def _run_file(self, processor) -> None:
        from dmsl_core.sources import open_source

        fps = float(self.info.get("fps") or 0.0)
        it = iter(self.source)
        pos = 0                       # index of the next frame the iterator yields
        t_anchor, i_anchor = time.monotonic(), 0
        ended = False
        first = True
        while not self.stopping:
            cmd = self._drain(processor, block=(self.paused or ended) and not first)   # paused: wait, no polling
            if self.stopping:
                break
            if first and self.paused:
                cmd["step"] = max(1, cmd["step"])   # start paused: still show the first frame
            first = False
            if cmd["seek"] is not None:
                target = max(0, int(cmd["seek"]))
                if self.stats.frames:
                    target = min(target, self.stats.frames - 1)
                if target < pos:
                    self.source.close()
                    self.source = open_source(self.uri, realtime=False)
                    it, pos = iter(self.source), 0
                    processor.reset()
                while pos < target and not self.stopping:
                    if next(it, None) is None:
                        break
                    pos += 1
                ended = False
                cmd["step"] = max(cmd["step"], 1) if self.paused else cmd["step"]
                t_anchor, i_anchor = time.monotonic(), pos
            if ended or (self.paused and cmd["step"] == 0):
                continue
            for _ in range(max(1, cmd["step"])):
                pair = next(it, None)
                if pair is None and pos == 0 and not self.stats.processed:   # not "opening…" for ever
                    from dmsl_core.sources import SourceError
                    skipped = getattr(self.source, "skipped", [])
                    raise SourceError(f"{self.uri}: the source ended without giving a frame"
                                      + (f" ({len(skipped)} unreadable, skipped: {'; '.join(skipped[:3])})"
                                         if skipped else ""))
                if pair is None:
                    ended = True
                    self.notice.emit("end of the source - seek or press Play to start again")
                    if not self.paused:
                        self.paused = True
                        self.state.emit({"paused": True, "ended": True})
                    break
                pos += 1
                if fps > 0 and not self.paused and self.options.realtime is not False:
                    due = t_anchor + (pos - 1 - i_anchor) / fps
                    delay = due - time.monotonic()
                    if delay > 0 and self.sleep(delay):
                        return
                    if delay < -0.5:   # slower than real time: re-anchor, never try to catch up
                        t_anchor, i_anchor = time.monotonic(), pos - 1
                self._process(processor, pair, 0)
                if self.options.max_frames and self.stats.processed >= self.options.max_frames:
                    return
            if self.paused:
                t_anchor, i_anchor = time.monotonic(), pos
            if ended:
                # "Play" after the end starts again from the first frame
                self._await_restart(processor)
                if self.stopping:
                    return
                self.source.close()
                self.source = open_source(self.uri, realtime=False)
                it, pos, ended = iter(self.source), 0, False
                processor.reset()
                t_anchor, i_anchor = time.monotonic(), 0

    def _await_restart(self, processor) -> None:
        """After the end: wait until the window asks to play, step or seek again."""
        while not self.stopping:
            cmd = self._cmds.get()      # blocks; stop() sends a command too
            if cmd[0] == "pause" and not cmd[1]:
                self.paused = False
                self.state.emit({"paused": False})
                return
            if cmd[0] in ("step", "seek"):
                self._cmds.put(cmd)
                return
            self._apply(cmd, processor, {"step": 0, "seek": None})  # mode, recording, selector: at once


def _jsonable(d: dict) -> dict:
    import json
    return json.loads(json.dumps(d, default=lambda o: list(o) if isinstance(o, (tuple, set)) else str(o)))
