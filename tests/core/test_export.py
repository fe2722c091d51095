"""Exports: CSV / JSONL / MP4 formats, .part files flushed while running and renamed on close, the CLI."""
from __future__ import annotations

import csv
import json

import cv2
import numpy as np
import pytest

from dmsl_core.cli import main
from dmsl_core.export import CSVExporter, JSONLExporter, VideoExporter, csv_header, render_side_by_side
from dmsl_core.sources import open_source
from dmsl_core.runner import StreamRunner
from dmsl_core.stream import StreamProcessor


class FaceInTheMiddle:
    """A stand-in predictor with plausible landmarks (the real one is exercised by the CLI test)."""

    def predict(self, images, boxes=None, refine=True):
        from dmsl_core.landmarks import boundary_from_points
        from dmsl_core.pipeline import Prediction
        from dmsl_core.sources.demo import _TEMPLATE
        out = []
        for im in images:
            h, w = im.shape[:2]
            pts = np.stack([w * 0.3 + _TEMPLATE[:, 0] * w * 0.4, h * 0.25 + _TEMPLATE[:, 1] * h * 0.5], axis=1)
            out.append(Prediction(landmarks=pts, boundary=boundary_from_points(pts)))
        return out


@pytest.fixture(scope="module")
def results():
    pred = FaceInTheMiddle()
    out = []
    with open_source("demo:?size=96x80&frames=6&realtime=0&rig=1") as src:
        StreamRunner(src, StreamProcessor(pred, mode="both")).run(on_result=out.append)
    return out


def test_csv_format(tmp_path, results):
    path = tmp_path / "out.csv"
    w = CSVExporter(path)
    for r in results:
        w.write(r)
    assert not path.exists() and w.part.exists()
    w.close()
    assert path.exists() and not w.part.exists()
    rows = list(csv.DictReader(open(path, newline="")))
    assert len(rows) == 6 and list(rows[0]) == csv_header()
    r0 = rows[0]
    assert r0["spectrum"] in ("vis", "th") and r0["index"] == "0"
    assert float(r0["x67"]) == pytest.approx(results[0].points[67, 0], abs=0.01)
    assert r0["mx0"] != ""  # rig homography known -> mapped points
    assert float(r0["temp_inner_eye_r"]) > 20 and r0["vis_region"] in ("face", "frame")
    assert r0["nme"] != "" and float(r0["vis_mean"]) > 0.1


def test_jsonl_format(tmp_path, results):
    path = tmp_path / "out.jsonl"
    with JSONLExporter(path, info={"kind": "demo"}) as w:
        for r in results:
            w.write(r)
    lines = [json.loads(s) for s in path.read_text().splitlines()]
    assert lines[0] == {"stream": {"kind": "demo"}} and len(lines) == 7
    rec = lines[1]
    assert set(rec["landmarks"]) == {"vis", "th"} and len(rec["landmarks"]["th"]) == 68
    assert set(rec["mapped"]) == {"vis", "th"}
    assert rec["decision"]["thresholds"]["low"] == 0.12 and rec["measures"]["vis"]["mean"] > 0
    assert set(rec["temperatures"]) == {"inner_eye_r", "inner_eye_l", "forehead", "nose_tip"}


def test_part_file_is_flushed_while_running(tmp_path, results):
    path = tmp_path / "live.csv"
    w = CSVExporter(path, flush_interval_s=0.0)
    w.write(results[0])
    w.write(results[1])
    # a crash now would leave the .part file with both rows on disk
    text = w.part.read_text()
    assert len(text.strip().splitlines()) == 3
    w.close()


def test_video_side_by_side(tmp_path, results):
    frame = render_side_by_side(results[0])
    assert frame.shape == (80, 192, 3) and frame.dtype == np.uint8
    path = tmp_path / "out.mp4"
    v = VideoExporter(path, fps=10)
    for r in results:
        v.write(r)
    assert v.part.exists()
    v.close()
    cap = cv2.VideoCapture(str(path))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 6
    assert int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) == 192
    cap.release()


def test_cli_run_demo(tmp_path):
    csv_p, js, vid = tmp_path / "o.csv", tmp_path / "o.jsonl", tmp_path / "o.mp4"
    rc = main(["run", "--source", "demo:?size=96x80&cycle=4", "--weights", "untrained:dmsl-tiny", "--max-frames", "5",
               "--csv", str(csv_p), "--json", str(js), "--video", str(vid), "--mode", "both", "--reuse-box"])
    assert rc == 0
    assert len(csv_p.read_text().strip().splitlines()) == 6
    assert len(js.read_text().strip().splitlines()) == 6
    assert vid.stat().st_size > 0
    assert not list(tmp_path.glob("*.part*"))


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["run", "--source", str(tmp_path / "missing.mp4"), "--weights", "untrained:dmsl-tiny"]) == 2
    err = capsys.readouterr().err
    assert "missing.mp4" in err and "Traceback" not in err
    assert main(["sources"]) == 0
    assert "lepton" in capsys.readouterr().out
    assert main(["sources", "--probe", "fake:lepton?realtime=0"]) == 0
    assert "(120, 160)" in capsys.readouterr().out
