"""The Train / Evaluate / Models tabs: a real tiny training in a subprocess (dmsl-tiny, 3
generated subjects), driven from the panel: progress and loss plot, stop early, cancel, resume,
a crash (SIGKILL) and resume, then the evaluation panel on the trained run."""
from __future__ import annotations

import csv
import json
import os
import signal
import sys
from pathlib import Path

import numpy as np
import pytest
from PySide6 import QtCore

from app.eval_panel import EvalPanel
from app.models_panel import ModelsPanel
from app.training import TrainOptions, TrainPanel, train_command
from dmsl_core.runs import read_metrics, run_status

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="POSIX signals")

VARIATIONS = ["neutral", "smile", "yaw_left", "dark"]


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> str:
    from dmsl_core.data.synth import generate_dataset
    out = tmp_path_factory.mktemp("gen") / "d3"
    generate_dataset(out, subjects=3, seed=0, size=(160, 128), variations=VARIATIONS)
    return str(out)


def _options(data: str, out: Path, epochs: int = 40, head_epochs: int = 2) -> TrainOptions:
    return TrainOptions(data=data, out=str(out), config="dmsl-tiny", epochs=epochs, head_epochs=head_epochs,
                        batch_size=8, fold=None, device="cpu", threads=1)


class Ticker:
    """A QTimer on the UI thread: counts its ticks while training runs in the subprocess."""

    def __init__(self) -> None:
        self.ticks = 0
        self.timer = QtCore.QTimer()
        self.timer.setInterval(20)
        self.timer.timeout.connect(self._tick)
        self.timer.start()

    def _tick(self) -> None:
        self.ticks += 1


@pytest.fixture
def make_panel(qtbot, tmp_path):
    made = []

    def make() -> TrainPanel:
        p = TrainPanel(runs_dir=str(tmp_path / "runs"))
        qtbot.addWidget(p)
        p.resize(1200, 900)
        p.show()
        made.append(p)
        return p
    yield make
    for p in made:
        assert p.shutdown()


def _phase_records(panel, phase):
    return [r for r in panel.records if r["phase"] == phase]


def test_train_command_uses_this_interpreter_and_the_cli_module(tmp_path):
    cmd = train_command(_options("D", tmp_path / "r"))
    assert cmd[:3] == [sys.executable, "-m", "dmsl_core.cli"] and "--events-jsonl" in cmd
    # a new run: the whole training configuration is the job file in the run folder, nothing else
    assert cmd[3:] == ["train", "--job", str(tmp_path / "r" / "job.json"), "--out", str(tmp_path / "r"),
                       "--events-jsonl"]
    resume = train_command(_options("D", tmp_path / "r"), resume=True)
    assert "--resume" in resume and "--job" not in resume and "--config" not in resume
    two = _options("D", tmp_path / "r")
    two.processes = 2
    cmd2 = train_command(two)
    assert cmd2[:3] == [sys.executable, "-m", "torch.distributed.run"]
    assert cmd2[cmd2.index("--nproc-per-node") + 1] == "2"
    assert cmd2[cmd2.index("dmsl_core.cli"):][:2] == ["dmsl_core.cli", "train"] and "--job" in cmd2
    assert "--resume" in train_command(two, resume=True)


def _legacy_argv(o: TrainOptions) -> list[str]:
    """The ``dmsl train`` / ``dmsl cv`` flags the panel ran before it wrote a job file (issue 21): the
    reference the job must equal."""
    cmd = ["cv" if o.cv_folds else "train", "--data", o.data, "--out", o.out, "--events-jsonl"]
    if o.threads:
        cmd += ["--threads", str(int(o.threads))]
    if o.device:
        cmd += ["--device", o.device]
    cmd += ["--config", o.config, "--models", o.models, "--stages", ",".join(map(str, o.stages)),
            "--epochs", str(int(o.epochs)), "--head-epochs", str(int(o.head_epochs)),
            "--batch-size", str(int(o.batch_size)), "--lr", repr(float(o.lr)), "--head-lr", repr(float(o.head_lr)),
            "--spectra", o.spectra]
    if 3 in o.stages:
        cmd += ["--joint-epochs", str(int(o.joint_epochs)), "--joint-lr", repr(float(o.joint_lr))]
    if o.box_jitter > 0:
        cmd += ["--box-jitter", repr(float(o.box_jitter))]
    if not o.augment:
        cmd.append("--no-augment")
    if not o.mirror:
        cmd.append("--no-mirror")
    if o.cv_folds:
        cmd += ["--folds", str(int(o.cv_folds))]
    elif o.fold is not None:
        cmd += ["--fold", str(int(o.fold))]
    if o.init:
        cmd += ["--init", o.init]
    return cmd


def _cli_config(argv: list[str]):
    """The TrainConfig ``dmsl train`` / ``dmsl cv`` builds from ``argv`` (before any training)."""
    from dmsl_core.cli import build_parser
    from dmsl_core.commands.train import _config_from_args, _requested_folds
    args = build_parser().parse_args(argv)
    return _config_from_args(args, None if args.command == "cv" else _requested_folds(args))


def _form_variants(data: str, out: Path) -> list[TrainOptions]:
    base = dict(data=data, out=str(out), config="dmsl-tiny")
    return [TrainOptions(**base),
            TrainOptions(**base, stages=(1, 2, 3), joint_epochs=7, joint_lr=1e-4, box_jitter=0.03, spectra="th",
                         mirror=False, augment=False, fold=None, device="cpu", threads=2, batch_size=4, lr=5e-4,
                         head_lr=5e-4, models="landmark", init=str(out / "w.safetensors")),
            TrainOptions(**base, stages=(3,), joint_epochs=9, spectra="vis", fold=7, device="", epochs=0),
            TrainOptions(**base, cv_folds=4, fold=3, head_epochs=2)]


def test_the_job_file_is_the_training_configuration_the_command_line_made(tmp_path):
    """Issue 21: the panel writes the run's TrainConfig as RUN/job.json and runs dmsl train --job; for
    the same form that is the TrainConfig the old command line (the form's flags) made, key by key, and
    dmsl train reads it back to the same."""
    from dmsl_core.training import TrainConfig, write_job
    from app.training import job_config
    for i, o in enumerate(_form_variants(str(tmp_path / "D"), tmp_path / "r")):
        o.out = str(tmp_path / f"r{i}")
        before = _cli_config(_legacy_argv(o)).to_dict()
        job = write_job(o.out, job_config(o))
        written = json.loads(job.read_text())
        assert written == before, i
        assert TrainConfig.from_dict(written).to_dict() == before
        assert _cli_config(train_command(o)[3:]).to_dict() == before   # what dmsl train --job makes of it


def test_start_writes_the_job_and_runs_dmsl_train_with_it(make_panel, tmp_path, tiny_data, monkeypatch):
    """Start from the form: RUN/job.json holds the form's training configuration, the command (as the
    log shows it) is dmsl train --job RUN/job.json."""
    import shlex
    from dmsl_core.training import TrainConfig
    panel = make_panel()
    started = []
    monkeypatch.setattr(panel.launcher, "start", lambda cmd, run_dir: (started.append(cmd),
                                                                      panel.log_view.appendPlainText(shlex.join(cmd))))
    o = _options(tiny_data, tmp_path / "runs" / "j", epochs=3, head_epochs=1)
    o.stages, o.joint_epochs, o.box_jitter, o.mirror = (1, 2, 3), 4, 0.02, False
    assert panel.start(o)
    [cmd] = started
    job = tmp_path / "runs" / "j" / "job.json"
    assert cmd[3:] == ["train", "--job", str(job), "--out", str(job.parent), "--events-jsonl"]
    assert json.loads(job.read_text()) == _cli_config(_legacy_argv(o)).to_dict()
    cfg = TrainConfig.from_dict(json.loads(job.read_text()))
    assert (cfg.model, cfg.stages, cfg.joint_epochs, cfg.box_jitter, cfg.mirror, cfg.device, cfg.num_threads) == \
        ("dmsl-tiny", (1, 2, 3), 4, 0.02, False, "cpu", 1)
    assert str(job) in panel.log_view.toPlainText()


def test_form_stage_3_and_box_jitter_reach_the_job(make_panel, tmp_path):
    from app.training import job_config
    panel = make_panel()
    assert not panel.stage3.isChecked() and not panel.joint_epochs.isEnabled()   # the paper's two stages by default
    cfg = job_config(panel.options())
    assert cfg.stages == (1, 2) and cfg.box_jitter == 0.0
    panel.stage3.setChecked(True)
    assert panel.joint_epochs.isEnabled()
    panel.joint_epochs.setValue(7)
    panel.box_jitter.setValue(0.03)
    panel.data_edit.setText("D")
    panel.out_edit.setText(str(tmp_path / "r"))
    cfg = job_config(panel.options())
    assert cfg.stages == (1, 2, 3) and cfg.joint_epochs == 7 and cfg.box_jitter == pytest.approx(0.03)
    o = panel.options()
    panel2 = make_panel()
    panel2.set_options(o)
    assert panel2.stage3.isChecked() and panel2.joint_epochs.value() == 7 and panel2.box_jitter.value() == pytest.approx(0.03)


def test_two_local_processes_from_the_panel(qtbot, tmp_path, tiny_data, make_panel):
    """Processes = 2: the panel runs dmsl train under torchrun (gloo on the CPU) and shows rank 0's
    progress as from one process."""
    panel = make_panel()
    run = tmp_path / "runs" / "ddp"
    o = _options(tiny_data, run, epochs=2, head_epochs=1)
    o.processes = 2
    panel.set_options(o)
    assert panel.options().processes == 2
    assert panel.start(o)
    qtbot.waitUntil(lambda: not panel.running, timeout=240000)
    assert panel.state == "done", (panel.state, panel.error_text, panel.stderr_tail)
    starts = [e for e in panel.events if e.kind == "start"]
    assert len(starts) == 1 and starts[0].extra["world_size"] == 2   # one event stream: rank 0's
    assert len([e for e in panel.events if e.kind == "epoch"]) == 2 + 1 + 2 + 1
    recs = read_metrics(run)
    assert recs and all(r.get("world_size") == 2 for r in recs)
    assert (run / "model.safetensors").exists()


@pytest.fixture
def make_eval(qtbot, tmp_path):
    made = []

    def make() -> EvalPanel:
        ev = EvalPanel(runs_dir=str(tmp_path / "runs"))
        qtbot.addWidget(ev)
        ev.resize(1200, 760)
        ev.show()
        made.append(ev)
        return ev
    yield make
    for ev in made:
        assert ev.stop(20000)


def test_train_stop_early_cancel_resume_then_evaluate(qtbot, tmp_path, tiny_data, make_eval, make_panel):
    panel = make_panel()
    ticker = Ticker()
    run = tmp_path / "runs" / "r1"
    assert panel.start(_options(tiny_data, run))
    assert panel.running and panel.state == "running"
    t0 = ticker.ticks
    qtbot.waitUntil(lambda: len(_phase_records(panel, 0)) >= 1 or not panel.running, timeout=90000)
    assert panel.running, panel.error_text or panel.stderr_tail
    # while it runs: Stop early and Cancel are live, Start is not; the log holds the exact command
    assert panel.early_btn.isEnabled() and panel.cancel_btn.isEnabled() and not panel.start_btn.isEnabled()
    assert panel.log_view.toPlainText().startswith("$ " + sys.executable)
    assert f"train --job {run / 'job.json'} --out {run}" in panel.log_view.toPlainText().splitlines()[0]
    assert json.loads((run / "job.json").read_text())["epochs"] == 40
    assert panel.state_label.text().startswith("running") or "cach" in panel.state_label.text()
    # live progress: device, a stage bar moving, the loss plot holding the epoch
    assert "cpu" in panel.device_label.text()
    assert panel._bars[0].value() > 0
    x, y = panel.train_curve.getData()
    assert x is not None and len(x) >= 1 and np.isfinite(y).any()
    # the key names every curve and sits above the plot (no legend inside to cover the curves)
    assert panel.loss_plot.legend is None and panel.nme_plot.legend is None
    assert all(c.name() in panel.loss_key.text() for c in (panel.train_curve, panel.val_curve, panel.best_marks))
    assert panel.n_steps >= 1
    assert ticker.ticks - t0 >= 5  # the UI thread kept running its timer while the subprocess trained
    # a few validation images with the current predictions (a worker thread reads last.pt)
    qtbot.waitUntil(lambda: panel.previews_shown >= 1 or "failed" in panel.preview_label.text(), timeout=30000)
    assert panel.previews_shown >= 1, panel.preview_label.text()
    assert panel.preview_views[0]._image is not None and "checkpoint: M_b stage 1" in panel.preview_label.text()

    panel.early_btn.click()                 # through the button, as a user does
    qtbot.waitUntil(lambda: any(e.kind == "phase_end" and e.phase == 0 for e in panel.events) or not panel.running,
                    timeout=60000)
    ph0 = _phase_records(panel, 0)
    assert ph0 and ph0[-1]["epochs"] < 40  # stage 1 of M_b ended early ...
    assert any(r["best"] for r in ph0)     # ... at its best epoch so far (marked)
    assert len(panel.best_marks.getData()[0]) >= 1
    # on to the next stages; cancel in M_l stage 1 (phase 2)
    qtbot.waitUntil(lambda: len(_phase_records(panel, 2)) >= 1 or not panel.running, timeout=90000)
    assert panel.running, panel.error_text
    assert panel.state_label.text() == "running M_l stage 1"   # the stage's own status, not a stale one
    panel.cancel_btn.click()
    qtbot.waitUntil(lambda: not panel.running, timeout=30000)
    assert panel.state == "cancelled", (panel.state, panel.stderr_tail)
    assert "Resume continues from the last checkpoint" in panel.message.text()
    assert run_status(run) == "resumable" and panel.resume_btn.isEnabled()
    before = read_metrics(run)
    n_before = len(before)
    assert before[-1]["phase"] == 2

    assert panel.resume(str(run))
    qtbot.waitUntil(lambda: any(e.kind == "start" for e in panel.events), timeout=60000)
    start = [e for e in panel.events if e.kind == "start"][-1]
    assert start.extra["resumed"] is True
    assert len(_phase_records(panel, 0)) == len(ph0)  # the history before the cancel is back in the plot
    qtbot.waitUntil(lambda: len(panel.records) > n_before or not panel.running, timeout=60000)
    resumed = panel.records[n_before]
    assert (resumed["phase"], resumed["epoch"]) == (2, before[-1]["epoch"] + 1)  # continued where it stopped
    panel.stop_early()  # finish M_l stage 1 at its best; its head (2 epochs) follows
    qtbot.waitUntil(lambda: not panel.running, timeout=120000)
    assert panel.state == "done", (panel.state, panel.error_text, panel.stderr_tail[-5:])
    assert Path(panel.weights).name == "model.safetensors" and (run / "model.json").exists()
    assert run_status(run) == "complete"
    phases = {r["phase"] for r in read_metrics(run)}
    assert phases == {0, 1, 2, 3}
    assert any(r.get("val_nme") is not None for r in panel.records)
    nx, _ = panel.nme_curve.getData()       # NME plot: the loss plot's x, stages in order, never back
    nx = nx[np.isfinite(nx)]
    assert len(nx) >= 2 and (np.diff(nx) > 0).all()
    assert len(panel.nme_curve.getData()[0]) >= 1
    panel.grab().save(str(tmp_path / "train.png"))

    # the evaluation panel evaluates the run: table, CED, per-variation chart, worst images, export
    ev = make_eval()
    assert str(run) in [ev.weights_box.itemText(i) for i in range(ev.weights_box.count())]
    ev.evaluate(weights=str(run), data=tiny_data, baselines=[])
    qtbot.waitUntil(lambda: ev.report is not None or bool(ev.error_text), timeout=60000)
    assert not ev.error_text, ev.error_text
    rep = ev.report
    assert ev.table.rowCount() == 1 and ev.table.item(0, 0).text() == "r1"
    assert float(ev.table.item(0, 1).text()) == pytest.approx(rep["nme"]["th"], abs=1e-4)
    assert all(len(pw.plotItem.listDataItems()) >= 1 for pw in ev.ced_plots.values())
    assert len(ev.var_bars) == 2 and set(rep["per_variation"]) == set(VARIATIONS)
    worst = ev.worst_images()
    assert worst and worst[0]["nme"] == max(e["nme"] for e in rep["images"] if e["nme"] is not None)
    assert len(worst[0]["pred"]) == 68 and ev.image_view._image is not None
    qtbot.waitUntil(lambda: not ev.running, timeout=5000)
    files = ev.export(str(tmp_path / "export"))
    assert {Path(f).name for f in files} == {"report.json", "report.csv", "ced_th.png", "ced_vis.png",
                                             "per_variation.png", "table.png"}
    assert json.loads((tmp_path / "export" / "report.json").read_text())["n_images"] == rep["n_images"]
    rows = list(csv.reader((tmp_path / "export" / "report.csv").read_text().splitlines()))
    assert rows[0] == ["# methods"] and rows[2][0] == "r1"
    assert all((tmp_path / "export" / n).stat().st_size > 1000 for n in ("ced_th.png", "per_variation.png"))
    ticker.timer.stop()


def test_killed_training_shows_an_error_and_resume_continues(qtbot, tmp_path, tiny_data, make_panel):
    panel = make_panel()
    run = tmp_path / "runs" / "crash"
    assert panel.start(_options(tiny_data, run))
    qtbot.waitUntil(lambda: len(panel.records) >= 2 or not panel.running, timeout=90000)
    assert panel.running, panel.error_text
    os.kill(panel.process.processId(), signal.SIGKILL)
    qtbot.waitUntil(lambda: not panel.running, timeout=20000)
    assert panel.state == "crashed"
    assert "crashed" in panel.error_text and "Resume continues from the last checkpoint" in panel.error_text
    assert panel.message.text() == panel.error_text and panel.message.level == "error"
    done = read_metrics(run)
    assert done and run_status(run) == "resumable"
    last_epoch = done[-1]["epoch"]
    assert done[-1]["phase"] == 0

    assert panel.resume()  # the run folder field still names the run
    qtbot.waitUntil(lambda: len(panel.records) > len(done) or not panel.running, timeout=90000)
    assert panel.running, (panel.error_text, panel.stderr_tail[-5:])
    start = [e for e in panel.events if e.kind == "start"][-1]
    assert start.extra["resumed"] is True
    nxt = panel.records[len(done)]
    assert (nxt["phase"], nxt["epoch"]) == (0, last_epoch + 1)  # continued, not restarted
    assert panel.shutdown()  # closing the app cancels the run; it stays resumable
    assert panel.state == "cancelled" and run_status(run) == "resumable"


def test_bad_input_is_a_clear_message(qtbot, tmp_path, make_eval, make_panel):
    panel = make_panel()
    assert not panel.start(_options("", tmp_path / "r"))
    assert "choose a dataset folder" in panel.message.text()
    assert not panel.start(_options(str(tmp_path), tmp_path / "r"))
    assert str(tmp_path) in panel.message.text() and "no manifest.csv" in panel.message.text()
    assert not panel.resume(str(tmp_path / "nothing"))
    assert "no config.json" in panel.message.text()
    assert panel.processes.isEnabled() and "torchrun" in panel.processes.toolTip()
    ev = make_eval()
    ev.evaluate(weights=str(tmp_path / "missing"), data=str(tmp_path), baselines=[])
    qtbot.waitUntil(lambda: bool(ev.error_text), timeout=20000)
    assert "manifest.csv" in ev.error_text and ev.message.text()
    qtbot.waitUntil(lambda: not ev.running, timeout=5000)


def test_models_panel_lists_renames_and_deletes_runs(qtbot, tmp_path, tiny_weights, monkeypatch):
    import shutil
    runs = tmp_path / "runs"
    shutil.copytree(tiny_weights, runs / "a")
    (runs / "a" / "config.json").write_text(json.dumps({"model": "dmsl-tiny", "data": "/x"}))
    (runs / "b" / "checkpoints").mkdir(parents=True)
    (runs / "b" / "config.json").write_text(json.dumps({"model": "dmsl-tiny", "data": "/y"}))
    (runs / "b" / "checkpoints" / "last.pt").write_bytes(b"x")
    (runs / "not-a-run").mkdir()
    panel = ModelsPanel(str(runs))
    qtbot.addWidget(panel)
    by = {e.name: e for e in panel.entries if e.kind == "run"}
    assert set(by) == {"a", "b"}
    assert by["a"].status == "complete" and by["b"].status == "resumable" and by["b"].config == "dmsl-tiny"
    used = []
    panel.useModel.connect(used.append)
    assert panel.select_path(by["a"].path)
    panel.use_selected()
    assert used == [by["a"].path]
    assert panel.rename(by["a"], "renamed") and (runs / "renamed" / "model.safetensors").exists()
    assert not panel.rename(by["b"], "renamed")  # exists already: message, nothing changed
    assert "already exists" in panel.message.text() and (runs / "b").exists()
    assert panel.delete([e for e in panel.entries if e.name == "b"][0]) and not (runs / "b").exists()
    assert (runs / "not-a-run").exists()
    shipped = [e for e in panel.entries if e.kind == "shipped"]
    if shipped:
        assert not panel.delete(shipped[0]) and "shipped" in panel.message.text()


def test_main_window_has_the_training_tabs(make_window):
    win = make_window()
    names = [win.tabs.tabText(i) for i in range(win.tabs.count())]
    assert names[-3:] == ["Train", "Evaluate", "Models"]
    assert win.train_panel.state == "idle"


def test_cross_validation_runs_fold_by_fold_and_resumes(qtbot, tmp_path, make_panel):
    from dmsl_core.data.synth import generate_dataset
    data = tmp_path / "d4"
    generate_dataset(data, subjects=4, seed=1, size=(160, 128), variations=["neutral", "smile"])
    panel = make_panel()
    root = tmp_path / "runs" / "cv"
    # 12 U-Net epochs per model and fold: fold 1 lasts seconds, so the cancel sent when its start is
    # seen lands inside it (with 1 epoch a fast machine finished every fold before the cancel arrived)
    o = _options(str(data), root, epochs=12, head_epochs=1)
    o.cv_folds = 4
    assert panel.start(o)
    assert panel.cv_mode and not panel.cv_frame.isHidden()
    # cancel once fold 1 has started: fold 0 is complete, fold 1 resumable or not begun
    qtbot.waitUntil(lambda: any(e.kind == "fold" and e.extra["fold"] == 1 for e in panel.events)
                    or not panel.running, timeout=120000)
    assert panel.running, (panel.error_text, panel.stderr_tail[-5:])
    panel.cancel()
    qtbot.waitUntil(lambda: not panel.running, timeout=30000)
    assert panel.state == "cancelled"
    fold0 = root / "fold-0" / "model.safetensors"
    assert fold0.exists()
    mtime = fold0.stat().st_mtime_ns
    assert panel.resume_btn.isEnabled()
    assert panel.resume(str(root))
    qtbot.waitUntil(lambda: not panel.running, timeout=240000)
    assert panel.state == "done", (panel.error_text, panel.stderr_tail[-5:])
    assert fold0.stat().st_mtime_ns == mtime  # the finished fold was not trained again
    s = panel.cv_summary
    assert s["complete"] == 4 and all(f["th"] is not None and f["n_images"] > 0 for f in s["folds"])
    assert s["mean"]["th"] == pytest.approx(np.mean([f["th"] for f in s["folds"]]))
    assert panel.cv_table.rowCount() == 5 and panel.cv_table.item(4, 0).text() == "mean"
    assert float(panel.cv_table.item(4, 2).text()) == pytest.approx(s["mean"]["th"], abs=1e-4)
    saved = json.loads((root / "cv.json").read_text())
    assert saved["results"]["complete"] == 4
    # the validation preview of a fold uses the cross-validation's 4 folds (it assumed 10 and failed)
    assert panel.previews_shown >= 1 and "failed" not in panel.preview_label.text(), panel.preview_label.text()


def test_models_panel_exports_onnx(qtbot, tmp_path, tiny_weights):
    pytest.importorskip("onnxruntime")
    import shutil
    runs = tmp_path / "runs"
    shutil.copytree(tiny_weights, runs / "a")
    panel = ModelsPanel(str(runs))
    qtbot.addWidget(panel)
    [e] = [e for e in panel.entries if e.kind == "run"]
    panel.export_onnx(e, str(tmp_path / "onnx"))
    # the result is delivered to the Qt thread after the worker's thread may already have ended
    qtbot.waitUntil(lambda: panel.onnx_result is not None or "failed" in panel.message.text(), timeout=60000)
    assert panel.onnx_result is not None, panel.message.text()
    assert (tmp_path / "onnx" / "landmark.onnx").exists() and "same outputs" in panel.message.text()
