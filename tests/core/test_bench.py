"""`dmsl bench`: the JSON report's schema, on a small run (speed figures are reported, never asserted)."""
import json
import subprocess
import sys

import pytest

from dmsl_core.baselines import dlib_available
from dmsl_core.bench import OPTION_SETS, SCHEMA, bench_frames, run_bench


def _num(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool) and x == x


def test_bench_frames_are_lit_faces_of_the_demo():
    frames = bench_frames(3, (160, 128))
    assert len(frames) == 3 and all(f.shape == (128, 160, 3) for f in frames)
    assert all(f.mean() > 40 for f in frames)  # the lights are on (Dlib gets a fair chance)


def test_bench_report_schema(tmp_path):
    base = next(iter(OPTION_SETS))
    rep = run_bench(configs=["dmsl-tiny", "dmsl-tiny-hm"], batches=(1, 2), threads=1, repeat=1, device="cpu",
                    image_size="160x128", frames=2, options=[base, "channels_last"], threads_options=(1, 2),
                    printer=lambda s: None)
    json.dumps(rep)  # JSON-able
    assert rep["schema"] == SCHEMA and rep["threads"] == 1
    assert rep["frames"]["n"] == 2 and rep["frames"]["size"] == [160, 128]
    models = [(e["model"], e["kind"]) for e in rep["pipeline"]]
    assert ("dmsl-tiny", "config") in models and ("dmsl-tiny-hm", "config") in models
    assert ("dmsl-default", "shipped") in models                     # the shipped default by default
    for e in rep["pipeline"]:
        assert set(e["fps"]) == {"1", "2"} and set(e["ms_per_image"]) == {"1", "2"}
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
