"""The paced demo's render process (``render=process``): the same frames as rendering here, the
child ended when the source closes, a killed child said plainly, a child that cannot start falls
back to this thread."""
from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest

from dmsl_core.sources import SourceError, open_source
from dmsl_core.sources import demo as demo_mod


def test_process_frames_equal_thread_frames():
    with open_source("demo:?realtime=0&render=thread&size=160x128&frames=6") as a:
        here = list(a)
    with open_source("demo:?realtime=0&render=process&size=160x128&frames=6") as b:
        there = list(b)
        assert b.info["render"] == "process"
    assert [p.index for p in there] == [p.index for p in here] == list(range(6))
    for p, q in zip(here, there):
        assert np.array_equal(p.vis, q.vis)
        assert np.array_equal(p.th, q.th)
        assert np.allclose(p.meta["landmarks_gt"], q.meta["landmarks_gt"])
        assert q.t == pytest.approx(p.t) and q.source == "demo:?realtime=0&render=process&size=160x128&frames=6"


def test_paced_demo_renders_in_a_child_that_ends_with_the_source():
    src = open_source("demo:?size=160x128")          # paced: render=process by default
    assert src.info["render"] == "process"
    it = iter(src)                                   # kept: an iterator dropped ends the child too
    frames = [next(it) for _ in range(5)]
    assert [p.index for p in frames] == sorted({p.index for p in frames})   # in order, none twice
    worker = src._worker
    assert worker.alive()
    t = [p.t for p in frames]
    assert all(b > a for a, b in zip(t, t[1:]))
    src.close()
    assert not worker.alive()
    assert list(it) == []                            # a closed source yields nothing more


def test_an_abandoned_iterator_ends_the_child():
    src = open_source("demo:?size=160x128")
    it = iter(src)
    next(it)
    worker = src._worker
    del it                                           # the loop that read it ended (a break, an error)
    assert not worker.alive()
    src.close()


def test_a_killed_render_process_is_one_clear_error():
    src = open_source("demo:?size=160x128")
    it = iter(src)
    next(it)
    worker = src._worker
    os.kill(worker.pid, signal.SIGKILL)                # a real fault: the child dies mid-stream
    worker.proc.wait(5)
    with pytest.raises(SourceError, match="render process ended"):
        end = time.monotonic() + 10
        while time.monotonic() < end:
            next(it)
    src.close()


def test_a_child_that_cannot_start_falls_back_to_this_thread(monkeypatch, caplog):
    monkeypatch.setattr(demo_mod.sys, "executable", "/nonexistent/python")   # a frozen app has none
    with open_source("demo:?size=160x128&frames=3&realtime=1&render=process") as src:
        frames = list(src)
        assert src.info["render"] == "thread"
    assert len(frames) >= 1 and frames[-1].index == 2
    assert "did not start" in caplog.text


def test_bad_render_option_names_it():
    with pytest.raises(SourceError, match="render='gpu'"):
        open_source("demo:?render=gpu")


def test_after_a_pause_the_frames_drawn_ahead_are_not_shown():
    src = open_source("demo:?size=160x128")
    it = iter(src)
    first = [next(it) for _ in range(3)]
    time.sleep(1.2)                                  # the consumer pauses for 30 frames' time
    later = next(it)
    assert later.index >= first[-1].index + 25      # the scene ran on in real time; no stale frame
    src.close()


def test_a_frozen_app_renders_on_this_thread(monkeypatch, caplog):
    monkeypatch.setattr(demo_mod.sys, "frozen", True, raising=False)   # its executable would start the app again
    with open_source("demo:?size=160x128&frames=2&realtime=1") as src:
        assert len(list(src)) >= 1 and src.info["render"] == "thread"
    assert "frozen app" in caplog.text
