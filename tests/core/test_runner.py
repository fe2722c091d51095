"""The frame loop (dmsl_core.runner): the grabber, drops, errors, stop, and the command inbox the app
drives it through (pause stops processing, step processes one frame, seek, the end of a file, spectrum
mode and stream options on the fly, recording start/stop writing valid files)."""
from __future__ import annotations

import json
import threading
import time
from typing import Iterator

import cv2
import numpy as np
import pytest

from dmsl_core.export import RecordSpec
from dmsl_core.frames import FramePair
from dmsl_core.runner import CommandInbox, LatestFrameGrabber, StreamRunner
from dmsl_core.sources import FrameSource, open_source
from dmsl_core.stream import StreamProcessor

from .test_stream import TemplatePredictor

SETTLE_S = 0.3          # how long a paused loop is watched (no clock is asserted)

class CountingSource(FrameSource):
    """A fast live source of tiny frames."""

    kind = "test"

    def __init__(self, n: int, period: float = 0.0, fail_after: int | None = None, stall_after: int | None = None):
        super().__init__("test")
        self.n, self.period, self.fail_after, self.stall_after = n, period, fail_after, stall_after
        self._info.update(live=True)

    def _frames(self) -> Iterator[FramePair]:
        img = np.full((32, 32, 3), 128, np.uint8)
        for i in range(self.n):
            if self.fail_after is not None and i == self.fail_after:
                raise OSError("device unplugged")
            while self.stall_after is not None and i >= self.stall_after and not self._closed:
                time.sleep(0.01)
            if self.period:
                time.sleep(self.period)
            yield FramePair(vis=img, th=None, t=i * 0.01, index=i)


def test_grabber_keeps_newest_and_counts_drops():
    g = LatestFrameGrabber(CountingSource(60, period=0.002)).start()
    taken = []
    while True:
        p = g.get(timeout=1.0)
        if p is None and g.finished:
            break
        if p is not None:
            taken.append(p.index)
            time.sleep(0.02)  # slow consumer
    assert g.received == 60 and g.dropped > 0
    assert g.taken + g.dropped == g.received
    assert taken == sorted(taken) and taken[-1] == 59  # always the newest


def test_runner_drops_on_live_slow_consumer():
    class Slow(TemplatePredictor):
        def predict(self, images, boxes=None, refine=True):
            time.sleep(0.02)
            return super().predict(images, boxes, refine)

    runner = StreamRunner(CountingSource(80, period=0.002), StreamProcessor(Slow()))
    stats = runner.run()
    assert stats.received == 80 and stats.dropped > 0 and stats.processed + stats.dropped == 80


def test_runner_processes_every_recorded_frame():
    with open_source("demo:?size=64x48&frames=12&realtime=0") as src:
        stats = StreamRunner(src, StreamProcessor(TemplatePredictor())).run()
    assert stats.processed == 12 and stats.dropped == 0


def test_camera_disappearing_is_an_error_event():
    with open_source("fake:cam?frames=5&fps=200&size=64x48") as src:
        kinds, errors = [], []
        for ev in StreamRunner(src, StreamProcessor(TemplatePredictor())).events():
            kinds.append(ev.kind)
            if ev.kind == "error":
                errors.append(ev.error)
    assert kinds[0] == "started" and kinds[-2:] == ["error", "finished"] and 1 <= kinds.count("result") <= 5
    assert "stopped delivering" in errors[0]
    errs = []
    StreamRunner(CountingSource(10, fail_after=3), StreamProcessor(TemplatePredictor())).run(on_error=errs.append)
    assert errs and "unplugged" in errs[0]


def test_stalled_source_ends_with_error_not_hang():
    src = CountingSource(100, stall_after=2)
    errs = []
    t = time.monotonic()
    StreamRunner(src, StreamProcessor(TemplatePredictor()), stall_timeout_s=0.3).run(on_error=errs.append)
    src.close()
    assert errs and "no frame" in errs[0] and time.monotonic() - t < 5


def test_cooperative_stop_and_max_frames():
    stop = threading.Event()
    seen = []

    def on_result(r):
        seen.append(r.index)
        if len(seen) == 3:
            stop.set()

    with open_source("demo:?size=64x48&fps=100") as src:  # live, unbounded
        stats = StreamRunner(src, StreamProcessor(TemplatePredictor()), stop=stop).run(on_result=on_result)
    assert stats.processed == 3
    with open_source("demo:?size=64x48&realtime=0") as src:
        assert StreamRunner(src, StreamProcessor(TemplatePredictor()), max_frames=7).run().processed == 7




def _slow_consumer(src, during=lambda: None, timeout=5) -> tuple[list[int], LatestFrameGrabber, object]:
    """Five frames taken from ``src`` through a grabber, 0.2 s apart (10 frames of a 50 fps source
    pass meanwhile); ``during()`` is called before the grabber stops. The indices, the grabber,
    ``during()``'s value."""
    grabber = LatestFrameGrabber(src).start()
    try:
        taken = []
        for _ in range(5):
            p = grabber.get(timeout=timeout)
            assert p is not None
            taken.append(p.index)
            time.sleep(0.2)
        seen = during()
    finally:
        grabber.stop()
        src.close()
    return taken, grabber, seen


def test_on_demand_demo_renders_only_what_is_consumed():
    """The realtime demo is read at most one frame ahead: frames a slow consumer cannot take are
    skipped by the wall clock (and counted as dropped), not rendered and thrown away."""
    src = open_source("demo:?fps=50&size=96x80&realtime=1&render=thread")
    assert src.info["on_demand"]
    rendered = []
    orig = src.scene.pair

    def counting(i, uri):
        rendered.append(i)
        return orig(i, uri)
    src.scene.pair = counting
    taken, grabber, _ = _slow_consumer(src)
    assert len(rendered) <= len(taken) + 2
    assert taken == sorted(taken) and taken[-1] - taken[0] >= 20  # the scene ran at wall-clock speed
    assert grabber.dropped >= 20 and grabber.dropped == src.skipped_frames


def test_on_demand_demo_in_its_render_process_renders_only_what_is_consumed():
    """The same with the paced demo's default, frames drawn in a child process: one frame is asked
    for as one is handed on, so the child renders at most one frame more than the consumer takes."""
    src = open_source("demo:?fps=50&size=96x80&realtime=1")
    assert src.info["render"] == "process"
    taken, grabber, requested = _slow_consumer(src, during=lambda: src._worker.requested, timeout=60)
    assert requested <= len(taken) + 2
    assert taken == sorted(taken) and taken[-1] - taken[0] >= 20
    assert grabber.dropped >= 20 and grabber.dropped == src.skipped_frames


# ---- the command inbox ----------------------------------------------------------------------------
class Driven:
    """A runner on a thread of its own, as the app runs it; the test is the window."""

    def __init__(self, runner: StreamRunner) -> None:
        self.runner = runner
        self.events: list = []
        self.results: list = []
        self._cond = threading.Condition()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        for ev in self.runner.events():
            with self._cond:
                self.events.append(ev)
                if ev.kind == "result":
                    self.results.append(ev.result)
                self._cond.notify_all()

    def wait(self, pred, timeout: float = 20.0) -> None:
        end = time.monotonic() + timeout
        with self._cond:
            while not pred():
                left = end - time.monotonic()
                assert left > 0, f"timed out; events: {[e.kind for e in self.events][-12:]}"
                self._cond.wait(left)

    def kinds(self, kind: str) -> list:
        with self._cond:
            return [e for e in self.events if e.kind == kind]

    def idle_for(self, seconds: float = SETTLE_S) -> int:
        """The results seen over ``seconds`` of watching (0 = nothing was processed)."""
        n = len(self.results)
        time.sleep(seconds)
        return len(self.results) - n

    def stop(self) -> None:
        self.runner.stop()
        self.thread.join(10)
        assert not self.thread.is_alive()


FILE_URI = "demo:?size=64x48&frames=30&realtime=0"


def file_runner(**kw) -> StreamRunner:
    src = open_source(FILE_URI)
    return StreamRunner(src, StreamProcessor(TemplatePredictor()), reopen=lambda: open_source(FILE_URI),
                        hold_at_end=True, **kw)


def test_file_start_paused_step_seek_and_play_to_the_end_and_again():
    d = Driven(file_runner(start_paused=True))
    try:
        d.wait(lambda: len(d.results) == 1)
        assert d.results[0].index == 0 and d.runner.paused          # paused at the start: frame 0 shown
        assert d.idle_for() == 0                                    # and nothing else processed
        d.runner.inbox.step()
        d.wait(lambda: len(d.results) == 2)
        assert d.results[-1].index == 1 and d.idle_for() == 0 and d.runner.paused
        d.runner.inbox.seek(20)                                     # forward: shown at once, still paused
        d.wait(lambda: len(d.results) == 3)
        assert d.results[-1].index == 20 and d.idle_for() == 0
        d.runner.inbox.seek(3)                                      # back: the source is opened again
        d.wait(lambda: len(d.results) == 4)
        assert d.results[-1].index == 3
        d.runner.inbox.play()
        d.wait(lambda: any(e.info.get("ended") for e in d.kinds("state")))
        assert [r.index for r in d.results[4:]] == list(range(4, 30))     # every frame, in order
        assert d.runner.paused and d.idle_for() == 0                     # held at the end
        assert any("end of the source" in e.text for e in d.kinds("notice"))
        n = len(d.results)
        d.runner.inbox.play()                                       # Play after the end: from the start
        d.wait(lambda: len(d.results) >= n + 5)
        assert [r.index for r in d.results[n:n + 5]] == [0, 1, 2, 3, 4]
    finally:
        d.stop()
    assert d.events[-1].kind == "finished" and not d.kinds("error")


def test_step_while_playing_pauses_after_one_more_frame():
    d = Driven(file_runner(pace=True))          # paced at the demo's 25 fps: the test can catch it playing
    try:
        d.wait(lambda: len(d.results) >= 2)
        d.runner.inbox.step()
        d.wait(lambda: d.runner.paused)
        time.sleep(0.1)
        n = len(d.results)
        assert d.idle_for() == 0 and n < 30
        assert [e.info["paused"] for e in d.kinds("state")] == [True]
    finally:
        d.stop()


class EndlessLive(FrameSource):
    """A live camera stand-in: frames as fast as asked, counted as they are made."""

    kind = "test"

    def __init__(self) -> None:
        super().__init__("test:live")
        self._info.update(live=True)
        self.made = 0

    def _frames(self) -> Iterator[FramePair]:
        img = np.full((32, 32, 3), 128, np.uint8)
        i = 0
        while not self._closed:
            time.sleep(0.005)
            self.made += 1
            yield FramePair(vis=img, th=None, t=i * 0.005, index=i)
            i += 1


def test_live_pause_processes_nothing_step_one_play_resumes():
    src = EndlessLive()
    d = Driven(StreamRunner(src, StreamProcessor(TemplatePredictor())))
    try:
        d.wait(lambda: len(d.results) >= 3)
        d.runner.inbox.pause()
        d.wait(lambda: d.runner.paused)
        time.sleep(0.05)
        assert d.idle_for() == 0                      # paused: nothing processed (the camera keeps its newest)
        n = len(d.results) + 1
        d.runner.inbox.step()
        d.wait(lambda: len(d.results) == n)
        assert d.idle_for() == 0 and d.runner.paused and len(d.results) == n   # one frame, still paused
        d.runner.inbox.seek(5)                        # a camera cannot seek: said, nothing else happens
        d.wait(lambda: d.kinds("notice"))
        assert "cannot seek" in d.kinds("notice")[0].text and len(d.results) == n
        d.runner.inbox.play()
        d.wait(lambda: len(d.results) >= n + 3)
        assert not d.runner.paused
    finally:
        d.stop()
        src.close()


def test_a_paused_runner_stops_at_once():
    d = Driven(file_runner(start_paused=True))
    d.wait(lambda: len(d.results) == 1)
    t = time.monotonic()
    d.stop()
    assert time.monotonic() - t < 5 and d.events[-1].kind == "finished"


def test_mode_and_stream_options_take_effect_on_the_next_frame():
    inbox = CommandInbox()
    inbox.set_mode("thermal")                        # sent before the runner exists: waits in the inbox
    inbox.configure(smoothing=True, detect_every=0, selector={"low": 0.05, "high": 0.5})
    d = Driven(file_runner(start_paused=True, inbox=inbox))
    try:
        d.wait(lambda: len(d.results) == 1)
        proc = d.runner.processor
        assert d.results[0].chosen == "th" and proc.config.mode == "thermal"
        assert proc.config.smoothing and proc.config.detect_every == 1
        assert (proc.selector.config.low, proc.selector.config.high, proc.selector.config.mode) == (0.05, 0.5, "thermal")
        inbox.set_mode("visible")
        inbox.step()
        d.wait(lambda: len(d.results) == 2)
        assert d.results[1].chosen == "vis"
    finally:
        d.stop()
    with pytest.raises(ValueError, match="unknown stream option.*fps"):
        inbox.configure(fps=3)


def test_record_start_and_stop_write_valid_files(tmp_path):
    d = Driven(file_runner(start_paused=True))
    try:
        d.wait(lambda: len(d.results) == 1)
        d.runner.inbox.record(RecordSpec(str(tmp_path / "rec"), "take1", csv=True, jsonl=True, video=True))
        d.runner.inbox.step(5)
        d.wait(lambda: len(d.results) == 6)
        d.runner.inbox.stop_recording()
        d.wait(lambda: len(d.kinds("recording")) == 2)
        started, finished = d.kinds("recording")
        assert started.info["active"] and len(started.info["paths"]) == 3
        assert not finished.info["active"] and finished.info["rows"] == 5 and finished.info["dropped"] == 0
        d.runner.inbox.step()                        # after the stop nothing more is written
        d.wait(lambda: len(d.results) == 7)
    finally:
        d.stop()
    files = sorted(p.name for p in (tmp_path / "rec").iterdir())
    assert files == ["take1.csv", "take1.jsonl", "take1.mp4"]           # published, no .part left
    rows = (tmp_path / "rec" / "take1.csv").read_text().splitlines()
    assert len(rows) == 1 + 5 and rows[0].startswith("index,")
    assert [int(r.split(",")[0]) for r in rows[1:]] == [1, 2, 3, 4, 5]
    lines = (tmp_path / "rec" / "take1.jsonl").read_text().splitlines()
    assert "stream" in json.loads(lines[0]) and [json.loads(x)["index"] for x in lines[1:]] == [1, 2, 3, 4, 5]
    cap = cv2.VideoCapture(str(tmp_path / "rec" / "take1.mp4"))
    frames = 0
    while cap.read()[0]:
        frames += 1
    cap.release()
    assert frames == 5


def test_a_recording_that_cannot_start_is_an_event_and_the_stream_goes_on(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    d = Driven(file_runner(start_paused=True))
    try:
        d.wait(lambda: len(d.results) == 1)
        d.runner.inbox.record(RecordSpec(str(tmp_path), "x", csv=False, jsonl=False, video=False))
        d.runner.inbox.record(RecordSpec(str(blocker), "x", csv=True, video=False))   # a file where a folder is
        d.runner.inbox.step()
        d.wait(lambda: len(d.results) == 2)
        fails = d.kinds("recording")
        assert [e.info.get("failed") for e in fails] == ["start", "start"]
        assert "nothing to record" in fails[0].error and isinstance(fails[1].exception, OSError)
    finally:
        d.stop()
    assert d.runner.recorder is None and sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_the_command_line_loop_is_the_same_runner_without_commands():
    # no reopen, no hold: a recorded source ends the loop (dmsl run); an empty one finishes quietly
    with open_source("demo:?size=64x48&frames=4&realtime=0") as src:
        kinds = [e.kind for e in StreamRunner(src, StreamProcessor(TemplatePredictor())).events()]
    assert kinds == ["started"] + ["result"] * 4 + ["finished"]
    # the app's loop holds at the end; a source that gives no frame at all is then an error
    with open_source("demo:?size=64x48&frames=4&realtime=0") as src:
        src._frames = lambda: iter(())
        evs = list(StreamRunner(src, StreamProcessor(TemplatePredictor()), reopen=lambda: src,
                                hold_at_end=True).events())
    assert [e.kind for e in evs] == ["started", "error", "finished"] and "without giving a frame" in evs[1].error
