"""The README's picture of the Train tab (docs/screenshot_train_panel.png), shot during a real small
training run started from the real Train tab.

    QT_QPA_PLATFORM=offscreen python tools/screenshot_train_panel.py [--out docs/screenshot_train_panel.png]

What it does: generates a small synthetic dataset (``dmsl synth --subjects 12 --seed 0``) into a
temporary folder, opens the main window with fresh settings (the user's saved settings are neither
read nor written), switches to the Train tab, fills its form (``dmsl-fast``, fold 0, stages 1 + 2 +
3 with a few epochs each, blackout box jitter 0.03, CPU, one thread), presses Start and processes Qt
events until the run is in its last stage (M_l stage 3) with ``--shoot-epoch`` epochs of it
finished and the validation images drawn from that checkpoint. Then it saves ``win.grab()``,
cancels the run through the panel (as the Cancel button does), closes the window and removes the
temporary folder (``--keep`` keeps it).

About 3 minutes on one CPU thread with the defaults (2-core machine, the other core busy). Exit
status 0 when the PNG was written; 1 with the panel's message and the end of the training log when
the run failed, crashed or did not get far enough before ``--timeout``; 2 for bad arguments.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(ROOT / "docs" / "screenshot_train_panel.png"),
                   help="PNG to write (default docs/screenshot_train_panel.png)")
    p.add_argument("--timeout", type=float, default=1800.0,
                   help="give up (exit 1) when the shot is not taken after this many seconds (default 1800)")
    p.add_argument("--subjects", type=int, default=12, help="generated subjects, 21 image pairs each (default 12)")
    p.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    p.add_argument("--data", default="", help="use this dataset folder instead of generating one")
    p.add_argument("--config", default="dmsl-fast", help="model configuration (default dmsl-fast)")
    p.add_argument("--epochs", type=int, default=3, help="stage-1 (U-Net) epochs (default 3)")
    p.add_argument("--head-epochs", type=int, default=3, help="stage-2 (head) epochs (default 3)")
    p.add_argument("--joint-epochs", type=int, default=3, help="stage-3 (joint) epochs (default 3)")
    p.add_argument("--box-jitter", type=float, default=0.03, help="blackout box jitter (default 0.03)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads, app and training (default 1)")
    p.add_argument("--device", default="cpu", help="training device (default cpu)")
    p.add_argument("--shoot-epoch", type=int, default=2,
                   help="shoot once this many epochs of the last stage are done and previewed (default 2)")
    p.add_argument("--size", default="1360x960",
                   help="window size WxH (default 1360x960: with six stage bars, 860 leaves the loss plot "
                        "about 90 px high)")
    p.add_argument("--after-out", default="",
                   help="also shoot the window after the cancel (its banner shown) into this PNG")
    p.add_argument("--keep", action="store_true", help="keep the temporary dataset and run folder")
    return p.parse_args(argv)


def fail(msg: str, panel=None) -> int:
    print(f"screenshot_train_panel: {msg}", file=sys.stderr)
    if panel is not None:
        if panel.message.label.text():
            print(f"  panel message: {panel.message.label.text()}", file=sys.stderr)
        print(f"  panel state: {panel.state}", file=sys.stderr)
        tail = panel.log_view.toPlainText().splitlines()[-30:]
        if tail:
            print("  training log (last lines):", file=sys.stderr)
            for ln in tail:
                print("    " + ln, file=sys.stderr)
    return 1


def generate(out: Path, subjects: int, seed: int) -> None:
    """The real generator, through the real command line."""
    cmd = [sys.executable, "-m", "dmsl_core.cli", "synth", "--out", str(out), "--subjects", str(subjects),
           "--seed", str(seed)]
    t = time.perf_counter()
    r = subprocess.run(cmd, cwd=str(ROOT), capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed (exit status {r.returncode}):\n{(r.stdout + r.stderr)[-3000:]}")
    print(f"screenshot_train_panel: {r.stdout.strip()} ({time.perf_counter() - t:.0f} s)", file=sys.stderr)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        width, height = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        print(f"screenshot_train_panel: --size {args.size!r} is not WxH", file=sys.stderr)
        return 2
    # one thread everywhere: the validation preview runs torch in this process, and the training
    # process inherits this environment (besides getting --threads from the form)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    t_start = time.perf_counter()

    tmp = Path(tempfile.mkdtemp(prefix="dmsl-train-shot-"))
    try:
        return _shoot(args, tmp, width, height, t_start)
    finally:
        if args.keep:
            print(f"screenshot_train_panel: kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def _shoot(args: argparse.Namespace, tmp: Path, width: int, height: int, t_start: float) -> int:
    if args.data:
        data = Path(args.data).resolve()
        if not (data / "manifest.csv").exists():
            print(f"screenshot_train_panel: {data}: not a dataset folder (no manifest.csv)", file=sys.stderr)
            return 2
    else:
        data = tmp / "dmsl-data" / f"synth{args.subjects}"
        try:
            generate(data, args.subjects, args.seed)
        except RuntimeError as exc:
            return fail(str(exc))
    runs = tmp / "dmsl-runs"
    run_dir = runs / f"{args.config.removeprefix('dmsl-')}-{data.name}-fold0"

    import torch
    torch.set_num_threads(max(1, args.threads))
    from PySide6 import QtCore, QtWidgets

    from app.main_window import MainWindow
    from app.settings import SettingsStore
    from app.theme import apply_dark_theme
    from app.workers import drain_parked

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    app.setApplicationName("DMSL Studio")
    app.setOrganizationName("DMSL")
    apply_dark_theme(app)
    # fresh settings in the temporary folder: the user's saved settings are not read or written
    store = SettingsStore(QtCore.QSettings(str(tmp / "settings.ini"), QtCore.QSettings.IniFormat))
    s = store.load()
    s.runs_dir, s.device, s.threads = str(runs), args.device, args.threads
    win = MainWindow(source=None, store=store, settings=s, autostart=False)
    win.resize(width, height)
    win.show()
    panel = win.train_panel
    win.show_tab(panel)
    app.processEvents()

    # the form, as a user fills it
    panel.data_edit.setText(str(data))
    panel.config_box.setCurrentText(args.config)
    if panel.config_box.currentText() != args.config:
        win.close()
        return fail(f"configuration {args.config!r} is not in the Train tab's list")
    panel.models_box.setCurrentIndex(panel.models_box.findData("both"))
    for box in (panel.stage1, panel.stage2, panel.stage3):
        box.setChecked(True)
    panel.epochs.setValue(args.epochs)
    panel.head_epochs.setValue(args.head_epochs)
    panel.joint_epochs.setValue(args.joint_epochs)
    panel.box_jitter.setValue(args.box_jitter)
    panel.fold.setValue(0)
    panel.cv_check.setChecked(False)
    panel.device_box.setCurrentText(args.device)
    panel.threads.setValue(args.threads)
    panel.processes.setValue(1)
    panel.out_edit.setText(str(run_dir))
    app.processEvents()

    panel.start_btn.click()       # the panel's own Start
    if not panel.running:
        rc = fail("the Train tab did not start the run", panel)
        win.close()
        return rc
    print(f"screenshot_train_panel: started {' '.join(panel.log_view.toPlainText().splitlines()[:1])}",
          file=sys.stderr)

    n_phases = len(panel._phases)
    last_phase = n_phases - 1
    target = {"epoch_seen_at_preview": None, "steps_at_preview": 0}
    info = {"start": None}

    def on_event(e) -> None:
        if e.kind == "start":
            info["start"] = e.message
        if e.kind == "epoch":
            print(f"screenshot_train_panel: {time.perf_counter() - t_start:5.0f} s  phase {e.phase + 1}/{n_phases} "
                  f"{e.model} stage {e.stage} epoch {e.epoch}/{e.epochs} loss {e.loss:.4g}"
                  + (f" val {e.val_loss:.4g}" if e.val_loss is not None else ""), file=sys.stderr)
    panel.eventReceived.connect(on_event)

    def last_stage_epochs() -> int:
        return sum(1 for r in panel.records if r["phase"] == last_phase)

    def ready() -> bool:
        """Enough epochs of the last stage, their preview drawn, and the next epoch under way."""
        want = min(args.shoot_epoch, args.joint_epochs)
        if last_stage_epochs() < want:
            return False
        h = panel._preview_handle
        if (h is not None and h.running) or panel._preview_pending or panel.previews_shown == 0:
            return False
        if target["epoch_seen_at_preview"] is None:
            target["epoch_seen_at_preview"] = last_stage_epochs()
            target["steps_at_preview"] = panel.n_steps
            return False
        # a few steps of the following epoch: its bar shows a moving percentage and ETA
        return panel.state == "done" or panel.n_steps >= target["steps_at_preview"] + 3 \
            or last_stage_epochs() >= args.joint_epochs

    deadline = t_start + args.timeout
    outcome = None
    while outcome is None:
        app.processEvents(QtCore.QEventLoop.AllEvents, 100)
        time.sleep(0.05)
        if panel.state in ("failed", "crashed", "cancelled"):
            outcome = "failed"
        elif panel.preview_label.text().startswith("preview failed"):
            outcome = "preview"
        elif ready():
            outcome = "ready"
        elif panel.state == "done":
            outcome = "done-early"
        elif time.perf_counter() > deadline:
            outcome = "timeout"

    if outcome != "ready":
        what = {"failed": f"the training run ended: {panel.state}",
                "done-early": f"the run finished before {args.shoot_epoch} epoch(s) of its last stage "
                              f"({last_stage_epochs()} recorded)",
                "preview": f"the validation images could not be drawn: {panel.preview_label.text()}",
                "timeout": f"no shot after {args.timeout:.0f} s (last stage epochs done: {last_stage_epochs()})"}
        rc = fail(what[outcome], panel)
        panel.shutdown()
        win.close()
        drain_parked(10000)
        return rc

    for _ in range(20):         # let the last preview, bars and plots paint
        app.processEvents()
        time.sleep(0.02)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    ok = win.grab().save(str(out))
    elapsed = time.perf_counter() - t_start
    r = panel.records[-1] if panel.records else {}
    print(f"screenshot_train_panel: {'wrote' if ok else 'could not write'} {out} after {elapsed:.0f} s: "
          f"{win.width()}x{win.height()}, {args.config}, {data.name}, {info['start'] or ''}; "
          f"{len(panel.records)} epochs over {len({x['phase'] for x in panel.records})} of {n_phases} stages, "
          f"last: {r.get('model')} stage {r.get('stage')} epoch {r.get('epoch')}/{r.get('epochs')}; "
          f"preview: {panel.preview_label.text()}", file=sys.stderr)

    # stop the run through the panel's Cancel button, and wait for the process to end
    if panel.running:
        if not panel.cancel_btn.isEnabled():
            print("screenshot_train_panel: the Cancel button is disabled while the run is going (an app bug); "
                  "calling TrainPanel.cancel()", file=sys.stderr)
        panel.cancel_btn.click() if panel.cancel_btn.isEnabled() else panel.cancel()
    t = time.perf_counter()
    while panel.running and time.perf_counter() - t < 40:
        app.processEvents(QtCore.QEventLoop.AllEvents, 100)
        time.sleep(0.05)
    clean = not panel.running
    print(f"screenshot_train_panel: run {panel.state} ({'cleanly' if clean else 'not ended in time; killing'})",
          file=sys.stderr)
    if args.after_out:          # the same window with the "Training cancelled" banner: nothing has moved
        for _ in range(20):
            app.processEvents()
            time.sleep(0.02)
        win.grab().save(args.after_out)
    win.close()                 # shutdown(): kills a process still running, joins the preview thread
    drain_parked(10000)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
