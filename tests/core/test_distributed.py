"""Scale-out on torch.distributed: `dmsl train` / `dmsl eval` under `torchrun --nproc-per-node 2` on
the CPU (gloo), compared with one process on the same data and the same global batch."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from dmsl_core.cli import build_parser, main
from tests.core.torchrun_util import REPO, free_port, torchrun_env
from dmsl_core.distributed import shard_range, split_sizes, torchrun_command

TIMEOUT = 300

# augment off + the same seed: the run is deterministic; batch 5 leaves uneven last batches
# (28 M_b items -> last batch 3 = 2 + 1 over two ranks; 14 M_l items -> last batch 4)
TRAIN_ARGS = ["--config", "dmsl-tiny", "--epochs", "2", "--head-epochs", "2", "--batch-size", "5",
              "--device", "cpu", "--no-augment", "--threads", "1", "--seed", "0"]




def _torchrun_argv(command: str, args: list[str], nproc: int = 2) -> list[str]:
    return torchrun_command(args, nproc, command=command, rdzv_endpoint=f"localhost:{free_port()}")


def torchrun(command: str, args: list[str], nproc: int = 2) -> subprocess.CompletedProcess:
    p = subprocess.run(_torchrun_argv(command, args, nproc), cwd=REPO, env=torchrun_env(), capture_output=True,
                       text=True, timeout=TIMEOUT)
    assert p.returncode == 0, f"torchrun failed ({p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-5000:]}"
    return p


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _files(run: Path) -> list[str]:
    return sorted(str(p.relative_to(run)) for p in run.rglob("*") if p.is_file())


def _metrics(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]


def _assert_same_weights(a: Path, b: Path, atol: float) -> float:
    wa, wb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert set(wa) == set(wb)
    diff = max(float((wa[k] - wb[k]).abs().max()) for k in wa)
    assert diff <= atol, f"weights differ by {diff}"
    return diff


@pytest.fixture(autouse=True, scope="module")
def _keep_torch_threads():
    """In-process runs here use --threads 1; give the rest of the session its thread count back."""
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def one_process_run(synth_data, tmp_path_factory):
    """The reference: one process, the same arguments."""
    run = tmp_path_factory.mktemp("one") / "run"
    assert main(["train", "--data", str(synth_data), "--out", str(run), *TRAIN_ARGS]) == 0
    return run


# ----------------------------------------------------------------------------- small pieces
def test_shards_are_contiguous_disjoint_and_cover_everything():
    for n in (0, 1, 5, 21, 28):
        for world in (1, 2, 3, 4):
            for align in (1, 4):
                spans = [shard_range(n, r, world, align) for r in range(world)]
                assert spans[0][0] == 0 and spans[-1][1] == n
                assert all(spans[r][1] == spans[r + 1][0] for r in range(world - 1))
                assert all(lo % align == 0 or lo == n for lo, _ in spans)
    assert split_sizes(5, 2) == [3, 2] and split_sizes(1, 2) == [1, 0]
    assert shard_range(21, 0, 2, align=4) == (0, 12) and shard_range(21, 1, 2, align=4) == (12, 21)
    with pytest.raises(ValueError, match="rank 2 is not in a world of 2"):
        shard_range(4, 2, 2)


def test_torchrun_command_for_one_and_several_machines():
    one = torchrun_command(["--data", "d", "--out", "r"], 4)
    assert one[1:] == ["-m", "torch.distributed.run", "--nproc-per-node", "4", "--standalone", "-m", "dmsl_core.cli",
                       "train", "--data", "d", "--out", "r"]
    assert one[0] == sys.executable
    multi = torchrun_command(["--data", "d"], 8, nnodes=2, node_rank=1, rdzv_endpoint="node0:29400")
    assert multi[3:13] == ["--nproc-per-node", "8", "--nnodes", "2", "--rdzv-backend", "c10d", "--rdzv-endpoint",
                           "node0:29400", "--node-rank", "1"]
    with pytest.raises(ValueError, match="rdzv_endpoint"):
        torchrun_command([], 2, nnodes=2)
    with pytest.raises(ValueError, match="nproc must be at least 1"):
        torchrun_command([], 0)


def test_fold_argument_errors_name_the_value(synth_data, capsys):
    assert main(["train", "--data", str(synth_data), "--out", "x", "--fold", "0,7", "--folds", "5"]) == 2
    assert "--fold '0,7': fold 7 does not exist; folds are 0..4" in capsys.readouterr().err
    assert main(["train", "--data", str(synth_data), "--out", "x", "--fold", "some"]) == 2
    assert "--fold 'some': use a fold number" in capsys.readouterr().err


# ----------------------------------------------------------------------------- training
@pytest.mark.timeout(2 * TIMEOUT)
def test_torchrun_training_matches_one_process(synth_data, one_process_run, tmp_path):
    run = tmp_path / "ddp"
    p = torchrun("train", ["--data", str(synth_data), "--out", str(run), *TRAIN_ARGS])
    # both ranks joined and trained; only rank 0 reports progress
    assert "rank 0 of 2 (gloo, cpu)" in p.stderr and "rank 1 of 2 (gloo, cpu)" in p.stderr
    assert p.stderr.count("model written to") == 1 and p.stderr.count("M_l stage 2 epoch 2/2") == 1
    rec = _metrics(run)
    assert len(rec) == 4 * 2  # one line per epoch, written once (by rank 0)
    for r in rec:
        assert r["world_size"] == 2 and len(r["images_per_rank"]) == 2
        assert all(n > 0 for n in r["images_per_rank"]) and sum(r["images_per_rank"]) == r["images"]
    ref = _metrics(one_process_run)
    assert [r["images"] for r in rec] == [r["images"] for r in ref]
    # the loss goes down in every stage
    for phase in range(4):
        losses = [r["train_loss"] for r in rec if r["phase"] == phase]
        assert losses[-1] < losses[0], (phase, losses)
    # the same optimisation path as one process with the same global batch
    for a, b in zip(rec, ref):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-5)
    diff = _assert_same_weights(run, one_process_run, atol=1e-5)
    # ...and that is not because nothing was learnt: the weights moved far more than the tolerance
    from dmsl_core.models import create_models, get_config
    mb0, ml0 = create_models(get_config("dmsl-tiny"), seed=0)
    w = load_file(run / "model.safetensors")
    init = {f"boundary.{k}": v for k, v in mb0.state_dict().items()}
    init.update({f"landmark.{k}": v for k, v in ml0.state_dict().items()})
    common = [k for k in w if k in init]
    assert common, sorted(w)[:5]
    assert max(float((w[k] - init[k]).abs().max()) for k in common) > 1000 * max(diff, 1e-8)
    # rank 0 alone wrote files: the same set as one process, no temporaries, no per-rank files
    assert _files(run) == _files(one_process_run)
    assert not [f for f in _files(run) if f.endswith(".tmp") or "rank" in f]
    # checkpoints hold plain (non-DDP) state dicts
    ck = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert not any(k.startswith("module.") for k in ck["boundary"])


@pytest.mark.timeout(2 * TIMEOUT)
def test_one_process_run_resumed_under_torchrun_with_two(synth_data, one_process_run, tmp_path):
    from dmsl_core.commands.train import _train_config
    from dmsl_core.crossval import load_split
    from dmsl_core.training import StopControl, TrainingCancelled, train
    run = tmp_path / "run"
    args = build_parser().parse_args(["train", "--data", str(synth_data), "--out", str(run), *TRAIN_ARGS])
    cfg = _train_config(args, run, None, False)
    ctl = StopControl()

    def stop(e):
        if e.kind == "epoch" and e.model == "boundary" and e.stage == 2 and e.epoch == 1:
            ctl.cancel()
    with pytest.raises(TrainingCancelled):
        train(cfg, run, *load_split(cfg, args.folds), on_event=stop, control=ctl)
    assert len(_metrics(run)) == 3 and not (run / "model.safetensors").exists()
    torchrun("train", ["--data", str(synth_data), "--out", str(run), "--resume", *TRAIN_ARGS])
    rec = _metrics(run)
    assert [(r["phase"], r["epoch"]) for r in rec] == [(p, e) for p in range(4) for e in (1, 2)]
    assert [r["world_size"] for r in rec] == [1] * 3 + [2] * 5
    _assert_same_weights(run, one_process_run, atol=1e-5)


@pytest.mark.timeout(2 * TIMEOUT)
def test_torchrun_run_killed_then_resumed_by_one_process(synth_data, one_process_run, tmp_path):
    run = tmp_path / "run"
    proc = subprocess.Popen(_torchrun_argv("train", ["--data", str(synth_data), "--out", str(run), *TRAIN_ARGS]),
                            cwd=REPO, env=torchrun_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    metrics = run / "metrics.jsonl"
    deadline = time.time() + TIMEOUT
    try:
        while time.time() < deadline:
            if metrics.exists() and len(metrics.read_text().splitlines()) >= 2:
                break
            if proc.poll() is not None:
                pytest.fail(f"torchrun ended before it could be killed: {proc.returncode}")
            time.sleep(0.02)
        else:
            pytest.fail("no epoch finished in time")
    finally:
        workers = _children(proc.pid)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # as a scheduler would: torchrun stops its workers
        try:
            proc.wait(timeout=60)
        finally:
            proc.stderr.close()
            for pid in workers:  # any worker torchrun left behind (it runs them in their own session)
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
    time.sleep(0.5)
    assert not (run / "model.safetensors").exists(), "the run finished before the kill; nothing was tested"
    done = len(_metrics(run))
    assert done < 8
    assert main(["train", "--data", str(synth_data), "--out", str(run), "--resume", *TRAIN_ARGS]) == 0
    rec = _metrics(run)
    assert [(r["phase"], r["epoch"]) for r in rec] == [(p, e) for p in range(4) for e in (1, 2)]
    assert [(r["phase"], r["epoch"]) for r in rec] == [(p, e) for p in range(4) for e in (1, 2)]
    assert rec[0]["world_size"] == 2 and rec[-1]["world_size"] == 1
    _assert_same_weights(run, one_process_run, atol=1e-5)
    assert not [f for f in _files(run) if f.endswith(".tmp")]


# ----------------------------------------------------------------------------- evaluation
@pytest.mark.timeout(TIMEOUT)
def test_sharded_eval_writes_the_same_report_as_one_process(synth_data, one_process_run, tmp_path, capsys):
    one, two = tmp_path / "one.json", tmp_path / "two.json"
    args = ["--data", str(synth_data), "--weights", str(one_process_run), "--batch-size", "4", "--threads", "1"]
    assert main(["eval", *args, "--json", str(one)]) == 0
    capsys.readouterr()
    p = torchrun("eval", [*args, "--json", str(two)])
    # 21 images in batches of 4: rank 0 predicts batches 1-3 (12 images), rank 1 the other 9
    assert "12/12 images" in p.stderr and "21/21 images" not in p.stderr
    assert json.loads(two.read_text())["n_images"] == 21
    assert two.read_bytes() == one.read_bytes()
    assert p.stdout.count("NME  TH") == 1  # the summary is printed once


# ----------------------------------------------------------------------------- cross-validation
@pytest.fixture(scope="module")
def five_subjects(tmp_path_factory):
    """5 subjects, so that each of 5 folds has 2 training, 2 validation and 1 test subject."""
    from dmsl_core.data.synth import generate_dataset
    out = tmp_path_factory.mktemp("synth5") / "data"
    generate_dataset(out, subjects=5, seed=3, variations=["neutral", "smile"])
    return out


@pytest.mark.timeout(2 * TIMEOUT)
def test_cross_validation_folds_over_ranks_then_continued_in_one_process(five_subjects, tmp_path, capsys):
    out = tmp_path / "cv"
    args = ["--data", str(five_subjects), "--out", str(out), "--config", "dmsl-tiny", "--epochs", "1",
            "--head-epochs", "1", "--batch-size", "8", "--device", "cpu", "--no-augment", "--threads", "1",
            "--folds", "5"]
    torchrun("train", [*args, "--fold", "0,1"])
    rep = json.loads((out / "cv_report.json").read_text())
    assert rep["world_size"] == 2
    assert [(f["fold"], f["rank"], f["status"]) for f in rep["folds"]] == [(0, 0, "trained"), (1, 1, "trained")]
    for f in rep["folds"]:
        assert f["nme_test"]["n_images"] == 4 and f["nme_test"]["all"] > 0
        assert json.loads((out / f"fold-{f['fold']}" / "config.json").read_text())["fold"] == f["fold"]
    assert not (out / "fold-2").exists()
    # without torchrun: fold 0 is done (skipped), fold 1 lost its weights (resumed), fold 2 is new
    w0 = out / "fold-0" / "model.safetensors"
    mtime0 = w0.stat().st_mtime_ns
    (out / "fold-1" / "model.safetensors").unlink()
    assert main(["train", *args, "--fold", "0,1,2"]) == 0
    rep2 = json.loads((out / "cv_report.json").read_text())
    assert [(f["fold"], f["status"]) for f in rep2["folds"]] == [
        (0, "skipped (already trained)"), (1, "resumed"), (2, "trained")]
    assert w0.stat().st_mtime_ns == mtime0 and (out / "fold-1" / "model.safetensors").exists()
    assert rep2["folds"][1]["nme_test"] == rep["folds"][1]["nme_test"]
    alls = [f["nme_test"]["all"] for f in rep2["folds"]]
    assert rep2["mean_nme_test"]["all"] == pytest.approx(sum(alls) / 3)
    err = capsys.readouterr().err
    assert "mean" in err and "fold 2: data:" in err
