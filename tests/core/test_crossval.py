"""Cross-validation (issue 21): ``dmsl cv`` (``cv.json``) and ``dmsl train --fold all``
(``cv_report.json``) are one library implementation (dmsl_core/crossval.py) with one mean."""
from __future__ import annotations

import json

import pytest

from dmsl_core.cli import main
from dmsl_core.runs import mean_nme

ARGS = ["--config", "dmsl-tiny", "--epochs", "1", "--head-epochs", "1", "--batch-size", "8", "--device", "cpu",
        "--no-augment", "--threads", "1", "--folds", "4"]


@pytest.fixture(scope="module")
def four_subjects(tmp_path_factory):
    """4 subjects, small images: 4 folds of 1 test, 1 validation and 2 training subjects."""
    from dmsl_core.data.synth import generate_dataset
    out = tmp_path_factory.mktemp("synth4") / "data"
    generate_dataset(out, subjects=4, seed=1, size=(160, 128), variations=["neutral", "smile"])
    return out


def test_mean_nme_skips_missing_figures():
    assert mean_nme([{"th": 1.0, "vis": None, "all": 2.0}, None, {"th": 3.0, "all": 4.0}]) == \
        {"th": 2.0, "vis": None, "all": 3.0}
    assert mean_nme([]) == {"th": None, "vis": None, "all": None}


@pytest.mark.timeout(600)
@pytest.mark.parametrize("first", ["cv", "train"])
def test_cv_json_and_cv_report_agree_on_the_same_folds(four_subjects, tmp_path, capsys, first):
    """The same folds, trained by one command and then found finished (skipped) by the other, give
    the same per-fold test NMEs and the same mean in cv.json and in cv_report.json."""
    out = tmp_path / "cv"
    cv = ["cv", "--data", str(four_subjects), "--out", str(out), *ARGS]
    train = ["train", "--data", str(four_subjects), "--out", str(out), "--fold", "all", *ARGS]
    second = train if first == "cv" else cv
    assert main(cv if first == "cv" else train) == 0, capsys.readouterr().err
    weights = [out / f"fold-{k}" / "model.safetensors" for k in range(4)]
    mtimes = [w.stat().st_mtime_ns for w in weights]
    assert main(second) == 0, capsys.readouterr().err
    assert [w.stat().st_mtime_ns for w in weights] == mtimes      # nothing was trained twice
    err = capsys.readouterr().err
    assert ("mean over 4 folds: NME TH" if second is cv else "mean ") in err
    plan = json.loads((out / "cv.json").read_text())
    rep = json.loads((out / "cv_report.json").read_text())
    assert plan["n_folds"] == rep["n_folds"] == 4 and plan["results"]["complete"] == 4
    assert [f["status"] for f in plan["results"]["folds"]] == ["complete"] * 4
    if first == "cv":
        assert [(f["fold"], f["status"]) for f in rep["folds"]] == [(k, "skipped (already trained)") for k in range(4)]
    for row, f in zip(plan["results"]["folds"], rep["folds"]):
        assert {k: row[k] for k in ("th", "vis", "all")} == {k: f["nme_test"][k] for k in ("th", "vis", "all")}
    assert rep["mean_nme_test"] == plan["results"]["mean"]
    assert rep["mean_nme_test"]["all"] is not None and rep["mean_nme_test"]["all"] > 0
    assert rep["mean_nme_test"]["all"] == pytest.approx(sum(f["nme_test"]["all"] for f in rep["folds"]) / 4)
