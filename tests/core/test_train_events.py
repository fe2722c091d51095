"""``dmsl train --events-jsonl`` (the app's progress stream), the STOP_EARLY / CANCEL files, the
evaluation report helpers used by the app (table rows, CSV, unavailable baselines) and
``dmsl_core.runs``."""
import csv
import json

import pytest

from dmsl_core.cli import main
from dmsl_core.training import CANCEL_FILE, STOP_EARLY_FILE, FileStopControl, event_from_dict, request_stop


def test_events_jsonl_is_one_json_event_per_line(synth_data, tmp_path, capsys):
    run = tmp_path / "run"
    request_stop(run, "cancel")  # stale request of an earlier run: cleared at start, not obeyed
    rc = main(["train", "--data", str(synth_data), "--config", "dmsl-tiny", "--out", str(run), "--epochs", "1",
               "--head-epochs", "1", "--batch-size", "8", "--device", "cpu", "--no-augment", "--events-jsonl",
               "--models", "landmark", "--stages", "2"])
    out = capsys.readouterr().out
    assert rc == 0, out
    events = [event_from_dict(json.loads(line)) for line in out.splitlines()]
    kinds = [e.kind for e in events]
    assert kinds[0] == "start" and kinds[-1] == "done" and "epoch" in kinds and "step" in kinds
    assert {(e.model, e.stage) for e in events if e.kind == "epoch"} == {("landmark", 2)}
    done = events[-1]
    assert done.extra["weights"].endswith("model.safetensors") and (run / "model.safetensors").exists()
    assert not (run / CANCEL_FILE).exists()


def test_file_stop_control(tmp_path):
    c = FileStopControl(tmp_path)
    assert not c.cancelled and not c.take_early()
    request_stop(tmp_path, "early")
    assert c.take_early() and not (tmp_path / STOP_EARLY_FILE).exists() and not c.take_early()
    request_stop(tmp_path, "cancel")
    assert c.cancelled
    c.clear_requests()
    assert not (tmp_path / CANCEL_FILE).exists()
    with pytest.raises(ValueError, match="early or cancel"):
        request_stop(tmp_path, "later")


def test_stages_option_is_checked(synth_data, tmp_path, capsys):
    assert main(["train", "--data", str(synth_data), "--out", str(tmp_path / "r"), "--stages", "4"]) == 2
    assert "--stages '4'" in capsys.readouterr().err


def test_report_table_csv_and_unavailable_baseline(synth_data, tiny_model_dir, monkeypatch):
    from dmsl_core import baselines
    from dmsl_core.evaluation import evaluate_folder, report_to_csv, table_rows

    def unavailable(*a, **k):
        raise baselines.BaselineUnavailable("Dlib baseline unavailable: dlib is not installed")
    monkeypatch.setattr(baselines, "DlibBaseline", unavailable)
    rep = evaluate_folder(synth_data, tiny_model_dir, baselines=["dlib"], skip_unavailable=True,
                          keep_predictions=True, device="cpu")
    assert rep["baselines_unavailable"] == {"dlib": "Dlib baseline unavailable: dlib is not installed"}
    assert len(rep["images"][0]["pred"]) == 68 and len(rep["images"][0]["gt"]) == 68
    rows = table_rows(rep)
    assert len(rows) == 1 and rows[0]["nme_th"] == rep["nme"]["th"]
    lines = list(csv.reader(report_to_csv(rep).splitlines()))
    assert lines[0] == ["# methods"] and lines[1][0] == "method"
    assert ["# images"] in lines and len([ln for ln in lines if ln and ln[0] == rows[0]["method"]]) >= rep["n_images"]
    with pytest.raises(baselines.BaselineUnavailable):
        evaluate_folder(synth_data, tiny_model_dir, baselines=["dlib"], device="cpu")
    # another trained model side by side: a row of its own, on the same images
    both = evaluate_folder(synth_data, tiny_model_dir, compare=[str(tiny_model_dir)], device="cpu")
    [(name, other)] = both["baselines"].items()
    assert name.startswith("tiny") and other["n_images"] == both["n_images"]
    assert other["nme"]["th"] == pytest.approx(both["nme"]["th"])  # the same weights give the same figures
    assert [r["method"] for r in table_rows(both)] == ["tiny", name]


def test_runs_listing_rename_delete(tmp_path, tiny_model_dir):
    import shutil

    from dmsl_core.runs import delete_run, list_runs, read_metrics, rename_run, run_status
    r = tmp_path / "runs" / "one"
    shutil.copytree(tiny_model_dir, r)
    (r / "config.json").write_text(json.dumps({"model": "dmsl-tiny", "data": "/d"}))
    (r / "metrics.jsonl").write_text('{"phase": 0, "epoch": 1}\n{"phase": 0, "ep')  # a line cut by a kill
    assert read_metrics(r) == [{"phase": 0, "epoch": 1}] and run_status(r) == "complete"
    [e] = list_runs(tmp_path / "runs")
    assert e.name == "one" and e.config == "dmsl-tiny" and e.size_bytes > 0
    new = rename_run(r, "two")
    assert new.name == "two" and not r.exists()
    with pytest.raises(ValueError, match="not a training run folder"):
        delete_run(tmp_path)
    with pytest.raises(ValueError, match="not a valid folder name"):
        rename_run(new, "../x")
    delete_run(new)
    assert list_runs(tmp_path / "runs") == []


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    """An untrained dmsl-tiny model saved as a weights folder."""
    from dmsl_core.models import create_models, get_config
    from dmsl_core.models.weights import save_weights
    cfg = get_config("dmsl-tiny")
    mb, ml = create_models(cfg, seed=0)
    out = tmp_path_factory.mktemp("tiny")
    save_weights(out, mb, ml, cfg, card={"name": "tiny"})
    return out


def test_export_onnx_matches_pytorch(tmp_path, tiny_model_dir, capsys):
    pytest.importorskip("onnxruntime")
    assert main(["export-onnx", "--weights", str(tiny_model_dir), "--out", str(tmp_path / "onnx")]) == 0
    info = json.loads((tmp_path / "onnx" / "onnx.json").read_text())
    assert info["input_size"] == 64 and set(info["check"]) == {"boundary", "landmark"}
    assert max(info["check"].values()) <= 1e-4
    assert "max |difference|" in capsys.readouterr().err
