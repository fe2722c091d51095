"""`dmsl bench`: the JSON report's schema, on a small run (speed figures are reported, never asserted),
and the busy process of the contention rows: always gone afterwards, also after Ctrl-C or a kill."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dmsl_core import bench as bench_mod
from dmsl_core.baselines import dlib_available
from dmsl_core.bench import OPTION_SETS, SCHEMA, bench_frames, busy_core, interleaved, run_bench, spread


def _num(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool) and x == x


def test_bench_frames_are_lit_faces_of_the_demo():
    frames = bench_frames(3, (160, 128))
    assert len(frames) == 3 and all(f.shape == (128, 160, 3) for f in frames)
    assert all(f.mean() > 40 for f in frames)  # the lights are on (Dlib gets a fair chance)


def _alive(pid: int) -> bool:
    """The process exists and is not a zombie (a reparented child may wait to be reaped)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z"


def _is_spread(sp, n=None):
    ok = all(_num(sp[k]) for k in ("median", "min", "q1", "q3", "max")) and \
        sp["min"] <= sp["q1"] <= sp["median"] <= sp["q3"] <= sp["max"]
    return ok and (n is None or sp["n"] == n)


def test_spread_and_interleaving():
    assert spread([4, 1, 3, 2, 5]) == {"median": 3.0, "min": 1.0, "q1": 2.0, "q3": 4.0, "max": 5.0, "n": 5}
    calls = []
    out = interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b"),
                       "c": lambda: calls.append("c")}, repeat=3, warmup=1)
    assert calls[:3] == ["a", "b", "c"]                                  # warm-up, then in turn, rotating
    assert calls[3:] == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]
    assert {k: len(v) for k, v in out.items()} == {"a": 3, "b": 3, "c": 3}


def test_busy_core_is_gone_after_the_block_also_after_ctrl_c():
    with busy_core() as proc:
        pid = proc.pid
        assert _alive(pid) and f"busy core for {os.getpid()}" in Path(f"/proc/{pid}/cmdline").read_text()
    assert not _alive(pid)
    with pytest.raises(KeyboardInterrupt):
        with busy_core() as proc:
            pid = proc.pid
            raise KeyboardInterrupt
    assert not _alive(pid)
    with busy_core(False) as nothing:
        assert nothing is None


def test_busy_core_ends_by_itself_when_its_parent_is_killed():
    code = ("import sys, time\nfrom dmsl_core.bench import busy_core\n"
            "with busy_core() as p:\n    print(p.pid, flush=True)\n    time.sleep(120)\n")
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        pid = int(parent.stdout.readline())
        assert _alive(pid)
        parent.kill()                       # no finally runs: the busy process must notice by itself
        parent.wait()
        deadline = time.monotonic() + 30
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(pid)
    finally:
        parent.kill()


def test_bench_report_schema(tmp_path):
    base = next(iter(OPTION_SETS))
    started = len(bench_mod.BUSY_STARTED)
    rep = run_bench(configs=["dmsl-tiny", "dmsl-tiny-hm"], batches=(1, 2), threads=1, repeat=1, device="cpu",
                    image_size="160x128", frames=2, options=[base, "channels_last"], threads_options=(1, 2),
                    contention_rounds=2, printer=lambda s: None)
    json.dumps(rep)  # JSON-able
    assert rep["schema"] == SCHEMA and rep["threads"] == 1
    assert rep["threading"]["torch_threads"] == 1 and rep["threading"]["cpu_count"] >= 1
    assert rep["frames"]["n"] == 2 and rep["frames"]["size"] == [160, 128]
    models = [(e["model"], e["kind"]) for e in rep["pipeline"]]
    assert ("dmsl-tiny", "config") in models and ("dmsl-tiny-hm", "config") in models
    assert ("dmsl-default", "shipped") in models                     # the shipped default by default
    for e in rep["pipeline"]:
        assert set(e["fps"]) == {"1", "2"} and set(e["ms_per_image"]) == {"1", "2"}
        for fig in ("fps", "ms_per_image"):   # the figure is the median of its spread (3 repeats at least)
            for b, v in e[fig].items():
                assert _is_spread(e["spread"][fig][b], 3) and e["spread"][fig][b]["median"] == v
        assert all(_num(v) and v > 0 for v in list(e["fps"].values()) + list(e["ms_per_image"].values()))
        assert e["params_boundary"] > 0 and e["params_landmark"] > 0 and e["device"] == "cpu"
        assert e["peak_rss_mb"] is None or (_num(e["peak_rss_mb"]) and e["peak_rss_mb"] > 10)
        assert e["head"] in ("fc", "heatmap")
    ok, why = dlib_available()
    d = rep["dlib"]
    assert d["available"] is ok
    if ok:
        assert _num(d["fps"]) and d["fps"] > 0 and d["frames"] == 2 and 0 <= d["detected"] <= 2
        for e in rep["pipeline"]:  # the ratio is computed from the two measured figures
            assert e["ratio_vs_dlib"]["1"] == pytest.approx(e["fps"]["1"] / d["fps"], rel=0.01, abs=0.002)
        t = rep["targets"]["faster_than_dlib"]
        assert t["met"] == (t["dmsl_fps"] >= t["dlib_fps"])
    else:
        assert why in d["reason"]
    opts = {o["option"]: o for o in rep["options"]}
    shipped = next(e for e in rep["pipeline"] if e["kind"] == "shipped")
    other_tta = ["tta=" + m for m in ("none", "flip-final", "flip") if m != shipped["tta"]]
    other_refine = ["refine=" + m for m in ("mb", "landmarks", "both") if m != shipped["refine"]]
    assert set(opts) == {base, "channels_last", "threads=2", *other_tta, *other_refine}
    # the other test-time settings are measured, change the landmarks, and are never "the best speed option"
    for row in [*other_tta, *other_refine]:
        assert opts[row]["changes_results"] is True and opts[row]["max_diff_px"] > 0 and opts[row]["fps"] > 0
        assert rep["best_option"]["option"] != row
    assert rep["targets"]["realtime_fps"]["tta"] == shipped["tta"]
    assert rep["targets"]["realtime_fps"]["refine"] == shipped["refine"]
    assert opts[base]["ratio"] == 1.0 and opts[base]["max_diff_px"] == 0.0
    assert opts["channels_last"]["error"] is None and opts["channels_last"]["max_diff_px"] < 0.05
    rt = rep["targets"]["realtime_fps"]
    assert rt["target"] == 30.0 and rt["model"] == "dmsl-default" and rt["met"] == (rt["measured_best_option"] >= 30.0)
    assert rep["best_option"]["option"] in opts
    assert all(_is_spread(o["fps_spread"]) and o["fps_spread"]["median"] == o["fps"] for o in opts.values())
    # one busy core beside the pipeline: plain torch on the shipped default, 2 block pairs, busy / quiet
    (c,) = rep["contention"]
    assert c["option"] == base and c["model"] == "dmsl-default" and c["rounds"] == 2 and c["threads"] == 1
    assert _is_spread(c["quiet_ms"], 2) and _is_spread(c["busy_ms"], 2) and _is_spread(c["ratio_spread"], 2)
    assert len(c["blocks"]["quiet_ms"]) == len(c["blocks"]["busy_ms"]) == 2
    assert c["ratio_spread"]["min"] <= c["ratio"] <= c["ratio_spread"]["max"] and c["ratio"] > 0
    t = rep["targets"]["busy_core"]
    assert t["ratios"] == {base: c["ratio"]} and t["met"] == (c["ratio"] <= t["target_ratio"] == 2.0)
    new = bench_mod.BUSY_STARTED[started:]
    assert len(new) == 2 and not any(_alive(p) for p in new)   # one per busy block, each gone
    # the face detector stage: the detectors alone, detection + landmarks + confidence, the tracker
    if ok:
        det = {r["what"]: r for r in rep["detection"]}
        assert "detector yunet alone (visible)" in det and "detector dlib-hog-thermal alone (thermal)" in det
        assert any(w.startswith("detector dlib-hog alone (visible; Dlib") for w in det)   # for comparison
        assert any(w.startswith("faces: detector + M_b + M_l") for w in det)
        assert any(w.startswith("video through the tracker") and "(visible" in w for w in det)
        tracked_th = [r for w, r in det.items() if w.startswith("video through the tracker") and "(thermal" in w]
        assert len(tracked_th) == 1 and tracked_th[0]["faces"] == 1      # the demo's one face, tracked in thermal
        for r in det.values():
            assert "error" not in r, r
            assert _is_spread(r["ms_spread"]) and r["ms_spread"]["median"] == r["ms_per_frame"] > 0
            assert r["fps"] == pytest.approx(1000 / r["ms_per_frame"], rel=0.01) and r["faces"] >= 0


def test_bench_rejects_unknown_names():
    with pytest.raises(ValueError, match="dmsl-nope"):
        run_bench(configs=["dmsl-nope"], printer=lambda s: None)
    with pytest.raises(ValueError, match="warp-speed"):
        run_bench(configs=["dmsl-tiny"], options=["warp-speed"], printer=lambda s: None)


def test_dmsl_bench_cli_writes_the_json(tmp_path):
    out = tmp_path / "b.json"
    r = subprocess.run([sys.executable, "-m", "dmsl_core.cli", "bench", "--configs", "dmsl-tiny", "--shipped", "",
                        "--batch", "1", "--repeat", "1", "--frames", "1", "--image-size", "160x128", "--threads", "1",
                        "--device", "cpu", "--no-dlib", "--json", str(out)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    rep = json.loads(out.read_text())
    assert rep["schema"] == SCHEMA and [e["model"] for e in rep["pipeline"]] == ["dmsl-tiny"]
    assert rep["dlib"] == {"available": False, "reason": "not measured (--no-dlib)"} and rep["options"] == []
    assert [c["model"] for c in rep["contention"]] == ["dmsl-tiny"]   # no shipped model: the first config


def _busy_children_of(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if f"busy core for {pid}" in (d / "cmdline").read_text() and _alive(int(d.name)):
                    out.append(int(d.name))
            except OSError:
                pass
    return out


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to find the busy process")
def test_ctrl_c_during_the_busy_rows_leaves_no_busy_process(tmp_path):
    cmd = [sys.executable, "-m", "dmsl_core.cli", "bench", "--configs", "dmsl-tiny", "--shipped", "", "--batch", "1",
           "--repeat", "40", "--frames", "4", "--image-size", "160x128", "--threads", "1", "--device", "cpu",
           "--no-dlib", "--options", "", "--json", str(tmp_path / "b.json")]
    # Ctrl-C as in a terminal: a test run started in the background (`make test &`) hands its children
    # SIGINT ignored, and Python then never raises KeyboardInterrupt - the bench would run to its end
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 300
        while not _busy_children_of(p.pid) and p.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        busy = _busy_children_of(p.pid)
        assert busy, "bench never started its busy process"
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=120)
    finally:
        p.kill()
    assert p.returncode == 130 and "interrupted" in err
    assert not any(_alive(b) for b in busy) and not _busy_children_of(p.pid)
    assert not (tmp_path / "b.json").exists()      # an interrupted bench writes no report
