"""The paper's subject-wise 10-fold protocol."""
from __future__ import annotations

import json

import numpy as np
import pytest

from dmsl_core.cli import main as cli_main
from dmsl_core.data.folder import DatasetError, PairRecord, write_manifest
from dmsl_core.data.splits import (SPLITS_FILE, Fold, fold_subjects, format_folds, make_folds, make_groups,
                                   read_splits, sort_subjects, write_splits)


def _check_protocol(folds: list[Fold], subjects: list[str]) -> None:
    tested = []
    for f in folds:
        roles = [set(f.train), set(f.val), set(f.test)]
        assert not (roles[0] & roles[1]) and not (roles[0] & roles[2]) and not (roles[1] & roles[2])
        assert roles[0] | roles[1] | roles[2] == set(subjects)  # every subject has a role
        tested += f.test
    assert sorted(tested) == sorted(subjects) and len(tested) == len(set(tested))  # tested exactly once


def test_paper_protocol_50_subjects():
    subjects = [str(i) for i in range(1, 51)]
    folds = make_folds(reversed(subjects))
    assert len(folds) == 10
    _check_protocol(folds, subjects)
    groups = make_groups(subjects)
    assert groups[0] == ["1", "2", "3", "4", "5"] and groups[9] == ["46", "47", "48", "49", "50"]
    f = folds[9]  # wraps around: validates on groups 0 and 1
    assert f.test == groups[9] and f.val == groups[0] + groups[1]
    assert len(f.train) == 35 and len(f.val) == 10 and len(f.test) == 5
    assert folds[3].val == groups[4] + groups[5]
    assert folds[3].role_of("16") == "test" and folds[3].role_of("21") == "val" and folds[3].role_of("1") == "train"


def test_uneven_groups_follow_array_split():
    subjects = [f"s{i:02d}" for i in range(23)]
    folds = make_folds(subjects)
    _check_protocol(folds, subjects)
    sizes = [len(g) for g in np.array_split(np.arange(23), 10)]
    assert [len(f.test) for f in folds] == sizes


def test_natural_sort_and_duplicates():
    assert sort_subjects(["s10", "s2", "s1", "s2", 3]) == ["3", "s1", "s2", "s10"]
    assert sort_subjects(["10", "9", "100"]) == ["9", "10", "100"]


def test_errors():
    with pytest.raises(ValueError, match="9 subject.*10 folds"):
        make_folds([str(i) for i in range(9)])
    with pytest.raises(ValueError, match="no training group"):
        make_folds([str(i) for i in range(10)], n_folds=3)
    assert len(make_folds([str(i) for i in range(10)], n_folds=10)) == 10  # one subject per group


def _dataset(root, n_subjects=12):
    recs = [PairRecord(subject=f"{s:03d}", variation=v, vis=f"{s}_{v}.png") for s in range(1, n_subjects + 1)
            for v in ("a", "b")]
    write_manifest(root, recs)
    return [f"{s:03d}" for s in range(1, n_subjects + 1)]


def test_write_read_and_fold_subjects(tmp_path):
    subjects = _dataset(tmp_path)
    # without splits.json: computed
    assert fold_subjects(tmp_path, 2) == make_folds(subjects)[2]
    folds = make_folds(subjects, 10)
    path = write_splits(tmp_path, folds)
    assert path == tmp_path / SPLITS_FILE
    doc = json.loads(path.read_text())
    assert doc["n_folds"] == 10 and len(doc["groups"]) == 10
    assert read_splits(tmp_path) == folds
    # a hand-edited file wins over the computed split
    doc["folds"][0]["test"], doc["folds"][0]["train"] = doc["folds"][0]["train"][:1], doc["folds"][0]["test"] + doc["folds"][0]["train"][1:]
    path.write_text(json.dumps(doc))
    assert fold_subjects(tmp_path, 0).test == [folds[0].train[0]]
    # another fold count: computed
    assert fold_subjects(tmp_path, 1, n_folds=4) == make_folds(subjects, 4)[1]
    with pytest.raises(ValueError, match="fold 10 does not exist"):
        fold_subjects(tmp_path, 10)


def test_bad_splits_file(tmp_path):
    _dataset(tmp_path)
    p = tmp_path / SPLITS_FILE
    p.write_text("{oops")
    with pytest.raises(DatasetError, match="splits.json: not valid JSON"):
        read_splits(p)
    p.write_text(json.dumps({"folds": [{"index": 0, "train": ["1"], "val": ["1"], "test": ["2"]}]}))
    with pytest.raises(DatasetError, match="two roles"):
        read_splits(p)


def test_cli_split(tmp_path, capsys):
    subjects = _dataset(tmp_path, 20)
    assert cli_main(["split", "--data", str(tmp_path), "--folds", "10"]) == 0
    out = capsys.readouterr().out
    assert "20 subjects, 10 folds" in out and "fold" in out and "001, 002" in out
    folds = read_splits(tmp_path / SPLITS_FILE)
    assert folds == make_folds(subjects, 10)
    assert cli_main(["split", "--data", str(tmp_path), "--folds", "30"]) == 2
    assert "cannot make 30 folds" in capsys.readouterr().err
    assert "test subjects" in format_folds(folds)
