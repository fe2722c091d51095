"""The Live tab's worker: model loading, then the library's frame loop, off the Qt thread.

:class:`LiveWorker` runs on its own QThread. It loads the model, opens the source and iterates
:class:`dmsl_core.runner.StreamRunner` - the same frame loop ``dmsl run`` uses: a live source read
through a grabber (only the newest pair processed, the rest counted as dropped), a file frame by
frame at its frame rate, seeking, the end of a file, recording on a thread of its own behind a
bounded queue. The window's commands (mode, pause, step, seek, recording, stream options) go into
the runner's :class:`~dmsl_core.runner.CommandInbox`; nothing the window calls blocks on the model.
Paused is idle: the runner blocks on its inbox until a command or a stop arrives.

What stays here is display: the runner's events become Qt signals, and each result goes into a
one-slot *mailbox*; the worker emits ``frame_ready`` only when the window has taken the previous
one (``take_latest``), and a result overwritten before the window took it is counted as a display drop.
"""
from __future__ import annotations

import dataclasses
import logging
import threading
from dataclasses import dataclass, field
from typing import Any, Optional

from PySide6 import QtCore

from dmsl_core.export import RecordSpec, recording_stem  # noqa: F401 - the window's names for them
from dmsl_core.pipeline import LoadedPredictor as LoadedModel
from dmsl_core.runner import StreamStats
from dmsl_core.sources.base import SourceInfo

from .workers import Worker, explain

log = logging.getLogger("dmsl.app.live")


# ---- the model ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelSpec:
    weights: str = ""            # "" = shipped default
    fallback_config: str = "dmsl-compact"
    device: str = "auto"
    threads: int = 0
    tta: str = ""                # test-time augmentation: "" = the model card's, "none", "flip-final", "flip"
    refine: str = ""             # box refinement: "" = the model card's, "mb", "landmarks", "both"


_MODEL_CACHE: dict[ModelSpec, LoadedModel] = {}
_MODEL_LOCK = threading.Lock()


def load_model(spec: ModelSpec) -> LoadedModel:
    """The predictor a spec names (:func:`dmsl_core.pipeline.load_predictor`, the loader ``dmsl run``
    uses); falls back to the CPU or to untrained weights, with a note, so the window always works."""
    from dmsl_core.pipeline import load_predictor
    from dmsl_core.threads import configure as configure_threads

    with _MODEL_LOCK:
        if spec in _MODEL_CACHE:
            return _MODEL_CACHE[spec]
        # the pipeline's threads beside the window's GUI thread (dmsl_core/threads.py: measured)
        configure_threads(int(spec.threads) if spec.threads and spec.threads > 0 else None, busy_beside=1)
        lm = load_predictor(spec.weights or None, spec.device, tta=spec.tta or None, refine=spec.refine or None,
                            fallback_config=spec.fallback_config)
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
        notify("no face detector here (it needs OpenCV's FaceDetectorYN or dlib): one face per frame (M_b) - Settings > Faces")
    return ok


def cached_model() -> Optional[LoadedModel]:
    with _MODEL_LOCK:
        return next(iter(_MODEL_CACHE.values()), None)


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
class LiveStats(StreamStats):
    """The runner's :class:`~dmsl_core.runner.StreamStats` (copied at each result) and the window's own
    count: results it never drew because it was busy drawing the one before."""
    display_dropped: int = 0

    def take(self, rs: StreamStats) -> None:
        """Copy the runner's counters (everything but the window's own)."""
        for f in dataclasses.fields(StreamStats):
            setattr(self, f.name, getattr(rs, f.name))


class LiveWorker(Worker):
    frame_ready = QtCore.Signal()
    opened = QtCore.Signal(object)          # source info dict
    model_ready = QtCore.Signal(object)     # LoadedModel
    recording = QtCore.Signal(object)       # {"paths": [...], "active": bool, "rows": n} or {"error": text}
    notice = QtCore.Signal(str)             # a passing message (status bar)
    state = QtCore.Signal(object)           # {"paused": bool, "ended": bool}

    def __init__(self, uri: str, model: ModelSpec, options: Optional[LiveOptions] = None) -> None:
        from dmsl_core.runner import CommandInbox

        super().__init__()
        self.uri = uri
        self.model_spec = model
        self.options = options or LiveOptions()
        self.inbox = CommandInbox()          # the runner's: commands sent before it exists wait there
        self._mail_lock = threading.Lock()
        self._latest = None
        self._waiting_for_ui = False
        self.stats = LiveStats()
        self.info = SourceInfo()
        self.model: Optional[LoadedModel] = None
        self.runner = None                   # the library's frame loop, once the source is open
        self._source = None

    # ---- the window's side (any thread) ---------------------------------------------------------
    @property
    def source(self):
        """The open source (the runner's: a seek back or a restart after the end opens it anew)."""
        r = self.runner
        return r.source if r is not None else self._source

    @property
    def paused(self) -> bool:
        r = self.runner
        return r.paused if r is not None else bool(self.options.start_paused)

    def command(self, kind: str, *args: Any) -> None:
        """A window command by name: mode, pause, step, seek, record, and the stream options (selector,
        smoothing, reuse_box, faces, detect_every)."""
        if kind == "mode":
            self.options.mode = args[0]
            self.inbox.set_mode(args[0])
        elif kind == "faces":
            # the Faces setting -> the detector: "auto" for every face, None for M_b's one face (also
            # when no face detector is installed here, with a notice)
            self.options.faces = args[0]
            self.inbox.configure(detector=self._detector_for(args[0]))
        elif kind in ("selector", "smoothing", "reuse_box", "detect_every"):
            if kind == "detect_every":
                self.options.detect_every = max(1, int(args[0]))
            self.inbox.configure(**{kind: args[0]})
        else:
            self.inbox.put(kind, *args)

    def stop(self) -> None:
        super().stop()
        self.inbox.wake()   # a paused loop blocks on its inbox: let it see the stop

    def set_mode(self, mode: str) -> None:
        self.command("mode", mode)

    def set_paused(self, paused: bool) -> None:
        self.inbox.pause(paused)

    def step(self) -> None:
        self.inbox.step()

    def seek(self, index: int) -> None:
        self.inbox.seek(index)

    def start_recording(self, spec: RecordSpec) -> None:
        self.inbox.record(spec)

    def stop_recording(self) -> None:
        self.inbox.stop_recording()

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

    # ---- the worker thread ----------------------------------------------------------------------
    def work(self) -> Any:
        from dmsl_core.runner import StreamRunner
        from dmsl_core.sources import open_source

        self.notice.emit(f"loading model… ({self.model_spec.device})")
        self.model = load_model(self.model_spec)
        self.model_ready.emit(self.model)
        self.check_stop()
        self.notice.emit(f"opening {self.uri}…")
        self._source = open_source(self.uri, realtime=self.options.realtime)
        try:
            self.info = SourceInfo(self._source.info)
            self.stats.frames = self.info.frames
            self.opened.emit(self.info)
            self.check_stop()
            o = self.options
            self.runner = StreamRunner(
                self._source, self._make_processor(), max_frames=o.max_frames, stop=self._stop,
                live=bool(self._source.live), stall_timeout_s=o.stall_timeout_s,
                pace=o.realtime is not False, reopen=lambda: open_source(self.uri, realtime=False),
                hold_at_end=True, start_paused=o.start_paused, inbox=self.inbox)
            for ev in self.runner.events():
                self._on_event(ev)
        finally:
            src = self.source
            self._source = None
            if self.runner is not None:
                self.runner.source = None
            if src is not None:
                try:
                    src.close()
                except Exception:  # noqa: BLE001
                    pass
        return dataclasses.asdict(self.stats)

    def _make_processor(self):
        from dmsl_core.runner import selector_config
        from dmsl_core.stream import StreamConfig, StreamProcessor

        o = self.options
        still = self.info.still
        cfg = StreamConfig(mode=o.mode, selector=selector_config(o.selector, o.mode),
                           smoothing=bool(o.smoothing and not still), reuse_box=bool(o.reuse_box and not still),
                           detector=self._detector_for(o.faces), detect_every=max(1, int(o.detect_every)),
                           still_images=still)
        return StreamProcessor(self.model.predictor, cfg)

    def _detector_for(self, faces: str) -> Optional[str]:
        if faces != "every":
            return None
        return "auto" if face_detector_available(self.notice.emit) else None

    def _on_event(self, ev) -> None:
        """One runner event -> the window's signals (and the display mailbox)."""
        if ev.kind == "result":
            self.stats.take(self.runner.stats)
            self._post(ev.result)
        elif ev.kind == "state":
            self.state.emit(dict(ev.info))
        elif ev.kind == "notice":
            self.notice.emit(ev.text)
        elif ev.kind == "recording":
            self.stats.recording_rows = int(ev.info.get("rows", self.stats.recording_rows) or 0)
            self.stats.recording_dropped = int(ev.info.get("dropped", self.stats.recording_dropped) or 0)
            failed = ev.info.get("failed")
            if failed:
                what = {"start": "cannot start recording", "write": "recording stopped",
                        "finish": "recording could not be finished"}[failed]
                self.recording.emit({"active": False, "error": f"{what}: {explain(ev.exception)}"})
            else:
                self.recording.emit({k: v for k, v in ev.info.items() if k in ("active", "paths", "rows", "dropped")})
        elif ev.kind == "error":
            self.stats.take(self.runner.stats)
            raise ev.exception if ev.exception is not None else RuntimeError(ev.error)
        elif ev.kind == "finished":
            self.stats.take(ev.stats)
