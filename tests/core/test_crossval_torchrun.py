"""``dmsl cv`` under ``torchrun --nproc-per-node 2`` (CPU, gloo): the folds are spread over the ranks
as ``dmsl train --fold all`` spreads them (fold k on rank k mod N, through ``crossval.train_folds``),
each fold is trained once, rank 0 alone writes ``cv.json`` and prints, and ``--resume`` skips
finished folds."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from dmsl_core.data.splits import Fold, write_splits
from dmsl_core.distributed import torchrun_command
from tests.core.torchrun_util import REPO, free_port, torchrun_env

TIMEOUT = 300
ARGS = ["--config", "dmsl-tiny", "--epochs", "1", "--head-epochs", "1", "--batch-size", "8", "--device", "cpu",
        "--no-augment", "--threads", "1", "--folds", "2"]


def torchrun_cv(args: list[str]) -> subprocess.CompletedProcess:
    argv = torchrun_command(args, 2, command="cv", rdzv_endpoint=f"localhost:{free_port()}")
    return subprocess.run(argv, cwd=REPO, env=torchrun_env(), capture_output=True, text=True, timeout=TIMEOUT)


def _ok(p: subprocess.CompletedProcess) -> str:
    assert p.returncode == 0, f"torchrun failed ({p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-5000:]}"
    return p.stderr


def _data_lines(err: str) -> int:
    """How many fold trainings loaded their data (one ``data: N training images ...`` line each)."""
    return sum("data: " in line and "training images" in line for line in err.splitlines())


@pytest.fixture(scope="module")
def two_folds(tmp_path_factory) -> Path:
    """3 generated subjects, small images, and a splits.json of 2 folds (1 test, 1 validation and 1
    training subject each; the computed protocol needs at least 4 folds)."""
    from dmsl_core.data.splits import dataset_subjects
    from dmsl_core.data.synth import generate_dataset
    out = tmp_path_factory.mktemp("synth2f") / "data"
    generate_dataset(out, subjects=3, seed=5, size=(160, 128), variations=["neutral", "smile"])
    a, b, c = dataset_subjects(out)
    write_splits(out, [Fold(0, train=[c], val=[b], test=[a]), Fold(1, train=[a], val=[c], test=[b])], n_val_groups=1)
    return out


@pytest.mark.timeout(3 * TIMEOUT)
def test_cv_under_torchrun_spreads_the_folds_over_the_ranks(two_folds, tmp_path):
    out = tmp_path / "cv"
    args = ["--data", str(two_folds), "--out", str(out), *ARGS]
    p = torchrun_cv([*args, "--events-jsonl"])
    err = _ok(p)
    assert _data_lines(err) == 2, err[-4000:]                # each fold trained once, not once per rank
    events = [json.loads(line) for line in p.stdout.splitlines() if line.strip()]
    assert [e["extra"]["fold"] for e in events if e["kind"] == "fold"] == [0]   # rank 0's fold; rank 1 had fold 1
    for k in range(2):
        rec = [json.loads(x) for x in (out / f"fold-{k}" / "metrics.jsonl").read_text().splitlines()]
        assert [(r["phase"], r["epoch"]) for r in rec] == [(ph, 1) for ph in range(4)]
        assert json.loads((out / f"fold-{k}" / "config.json").read_text())["fold"] == k
    plan = json.loads((out / "cv.json").read_text())
    assert plan["n_folds"] == 2 and plan["results"]["complete"] == 2
    assert [f["status"] for f in plan["results"]["folds"]] == ["complete"] * 2
    cards = [json.loads((out / f"fold-{k}" / "model.json").read_text())["nme_test"]["all"] for k in range(2)]
    assert plan["results"]["mean"]["all"] == pytest.approx(sum(cards) / 2) and cards[0] > 0
    assert err.count("mean over 2 folds: NME TH") == 1      # rank 0 alone prints the summary

    # --resume: fold 0 (rank 0) is finished and skipped, fold 1 (rank 1) lost its weights and resumes
    w0, w1 = out / "fold-0" / "model.safetensors", out / "fold-1" / "model.safetensors"
    mtime0 = w0.stat().st_mtime_ns
    w1.unlink()
    err = _ok(torchrun_cv([*args, "--resume"]))
    assert w0.stat().st_mtime_ns == mtime0 and w1.exists()
    assert _data_lines(err) == 1, err[-4000:]
    again = json.loads((out / "cv.json").read_text())
    assert again["results"]["complete"] == 2 and again["results"]["folds"] == plan["results"]["folds"]
    assert err.count("mean over 2 folds: NME TH") == 1

    # without --resume the plan is refused before any fold starts: one error line
    before = (out / "cv.json").read_bytes()
    p = torchrun_cv(args)
    assert p.returncode != 0
    assert p.stderr.count("already holds a cross-validation; use --resume to continue it") == 1, p.stderr[-4000:]
    assert (out / "cv.json").read_bytes() == before and w0.stat().st_mtime_ns == mtime0
