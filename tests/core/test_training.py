import json
import signal
import subprocess
import sys
import time

import pytest
import torch

from dmsl_core.data.folder import load_samples
from dmsl_core.pipeline import Predictor
from dmsl_core.training import StopControl, TrainConfig, TrainingCancelled, train


def split(data):
    samples = load_samples(data)
    train_s = [s for s in samples if s.subject != "s003"]
    val_s = [s for s in samples if s.subject == "s003"]
    assert train_s and val_s
    return train_s, val_s


def test_two_stage_training_lowers_the_loss_of_every_stage(synth_data, tmp_path):
    train_s, val_s = split(synth_data)
    events = []
    cfg = TrainConfig(model="dmsl-tiny", epochs=6, head_epochs=6, batch_size=4, lr=3e-3, head_lr=3e-3,
                      device="cpu", augment=False, seed=0)
    path = train(cfg, tmp_path / "run", train_s, val_s, on_event=events.append)
    assert path.exists()
    epochs = [e for e in events if e.kind == "epoch"]
    for model in ("boundary", "landmark"):
        for stage in (1, 2):
            losses = [e.loss for e in epochs if e.model == model and e.stage == stage]
            assert len(losses) == 6
            assert losses[-1] < losses[0], (model, stage, losses)
    # stage 2 trains only the head: the U-Net weights equal the end of stage 1 (best epoch)
    best_s1 = torch.load(tmp_path / "run" / "checkpoints" / "best-landmark-s1.pt", weights_only=True)["state"]
    pred = Predictor.from_weights(tmp_path / "run", device="cpu")
    for k, v in pred.landmark.unet.state_dict().items():
        assert torch.equal(v, best_s1[k])
    # the run folder holds what the docs promise
    run = tmp_path / "run"
    cfg_saved = json.loads((run / "config.json").read_text())
    assert cfg_saved["model"] == "dmsl-tiny" and cfg_saved["epochs"] == 6
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(lines) == 24 and all("val_loss" in x for x in lines)
    card = json.loads((run / "model.json").read_text())
    assert card["config"]["name"] == "dmsl-tiny" and card["nme_val"]["n_images"] == len(val_s)
    assert card["training"]["train_subjects"] == ["s001", "s002"]
    # step events carry progress for a progress bar
    steps = [e for e in events if e.kind == "step" and e.steps]
    assert steps and all(e.eta_s is not None and e.eta_s >= 0 for e in steps)


def test_cancel_then_resume(synth_data, tmp_path):
    train_s, val_s = split(synth_data)
    cfg = TrainConfig(model="dmsl-tiny", epochs=2, head_epochs=1, batch_size=4, device="cpu", augment=False)
    ctl = StopControl()

    def on_event(e):
        if e.kind == "epoch" and e.model == "landmark" and e.stage == 1:
            ctl.cancel()
    with pytest.raises(TrainingCancelled):
        train(cfg, tmp_path / "run", train_s, val_s, on_event=on_event, control=ctl)
    assert not (tmp_path / "run" / "model.safetensors").exists()
    with pytest.raises(ValueError, match="already holds a training run"):
        train(cfg, tmp_path / "run", train_s, val_s)
    events = []
    train(cfg, tmp_path / "run", train_s, val_s, on_event=events.append, resume=True)
    first = next(e for e in events if e.kind == "epoch")
    assert (first.model, first.stage, first.epoch) == ("landmark", 1, 2)
    assert (tmp_path / "run" / "model.safetensors").exists()


def test_stop_early_keeps_the_best_and_moves_on(synth_data, tmp_path):
    train_s, val_s = split(synth_data)
    cfg = TrainConfig(model="dmsl-tiny", epochs=5, head_epochs=1, batch_size=4, device="cpu", augment=False,
                      train_models="boundary")
    ctl = StopControl()
    events = []

    def on_event(e):
        events.append(e)
        if e.kind == "step" and e.stage == 1 and e.epoch == 2 and e.step == 1:
            ctl.early()
    train(cfg, tmp_path / "run", train_s, val_s, on_event=on_event, control=ctl)
    s1 = [e for e in events if e.kind == "epoch" and e.stage == 1]
    assert [e.epoch for e in s1] == [1, 2]
    assert any(e.kind == "epoch" and e.stage == 2 for e in events)


KILL_SCRIPT = """
import sys, time
from dmsl_core.data.folder import load_samples
from dmsl_core.training import TrainConfig, train
samples = load_samples(sys.argv[1])
tr = [s for s in samples if s.subject != "s003"]
va = [s for s in samples if s.subject == "s003"]
def slow(e):
    if e.kind == "step":
        time.sleep(0.03)
cfg = TrainConfig(model="dmsl-tiny", epochs=8, head_epochs=2, batch_size=4, device="cpu", augment=False,
                  num_threads=1)
train(cfg, sys.argv[2], tr, va, on_event=slow)
"""


def test_kill_mid_epoch_and_resume_continues_from_the_last_checkpoint(synth_data, tmp_path):
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(synth_data), str(run)])
    metrics = run / "metrics.jsonl"
    deadline = time.time() + 240
    try:
        while time.time() < deadline:
            if metrics.exists() and len(metrics.read_text().splitlines()) >= 2:
                time.sleep(0.2)  # now in the middle of a later epoch
                break
            if proc.poll() is not None:
                pytest.fail(f"training process ended early with {proc.returncode}")
            time.sleep(0.05)
        else:
            pytest.fail("no epoch finished in time")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert not (run / "model.safetensors").exists()
    ck = torch.load(run / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
    assert ck["phase"] == 0 and 2 <= ck["epoch"] < 8
    samples = load_samples(synth_data)
    tr = [s for s in samples if s.subject != "s003"]
    va = [s for s in samples if s.subject == "s003"]
    cfg = TrainConfig(model="dmsl-tiny", epochs=8, head_epochs=2, batch_size=4, device="cpu", augment=False)
    events = []
    train(cfg, run, tr, va, on_event=events.append, resume=True)
    first = next(e for e in events if e.kind == "epoch")
    assert (first.phase, first.epoch) == (0, ck["epoch"] + 1)
    assert (run / "model.safetensors").exists()
    recs = [json.loads(x) for x in metrics.read_text().splitlines()]
    keys = [(r["phase"], r["epoch"]) for r in recs]
    assert len(keys) == len(set(keys)) == 8 + 2 + 8 + 2  # every epoch exactly once, none lost


def test_bad_training_input_is_reported(tmp_path):
    with pytest.raises(ValueError, match="no training samples"):
        train(TrainConfig(model="dmsl-tiny"), tmp_path / "r", [])
    with pytest.raises(ValueError, match="unknown model configuration"):
        train(TrainConfig(model="nope"), tmp_path / "r", [object()])
