"""Automatic annotation (``dmsl annotate``) and the annotation files: origins, originals kept,
dark visible images, homography transfer, journaled saves that survive a kill."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from dmsl_core.annotate import (JOURNAL, REPORT, AnnotationSet, annotate_dataset, count_origins,
                                disagreement_order, origin_path, original_path)
from dmsl_core.baselines import BaselineResult, dlib_available
from dmsl_core.data.folder import read_manifest, write_manifest
from dmsl_core.data.pts import read_pts
from dmsl_core.pipeline import Prediction

VARS = ["neutral", "smile", "hand_mouth", "dark"]


@pytest.fixture(scope="module")
def truth(tmp_path_factory) -> Path:
    from dmsl_core.data.synth import generate_dataset
    out = tmp_path_factory.mktemp("ann") / "truth"
    generate_dataset(out, subjects=2, seed=3, variations=VARS)
    return out


def stripped(truth: Path, dst: Path) -> Path:
    """A copy of the dataset with its .pts removed (the manifest still names them)."""
    shutil.copytree(truth, dst)
    for p in (dst / "pts").glob("*.pts"):
        p.unlink()
    return dst


def gt_of(truth: Path) -> dict:
    return {r.landmarks: read_pts(truth / r.landmarks) for r in read_manifest(truth)}


class FakeDetector:
    """Stands in for Dlib: the true points + an offset, or no face for some images."""

    def __init__(self, truth: Path, miss: tuple[str, ...] = ("hand_mouth",), offset=(2.0, -1.0)) -> None:
        self.by_size = {}
        self.gt = gt_of(truth)
        self.miss, self.offset = miss, np.asarray(offset, float)
        self.calls = []
        # images are recognised by their pixel sum (cheap and exact for these files)
        from dmsl_core.data.imageio import read_image
        for r in read_manifest(truth):
            self.by_size[int(read_image(truth / r.vis).astype(np.int64).sum())] = r

    def predict(self, images):
        out = []
        for im in images:
            r = self.by_size[int(np.asarray(im).astype(np.int64).sum())]
            self.calls.append(r.variation)
            out.append(BaselineResult(None if r.variation in self.miss else self.gt[r.landmarks] + self.offset))
        return out


class FakeModel:
    """Stands in for the DMSL Predictor: a fixed shift of the truth (thermal images by pixel sum)."""

    source = "fake-model"

    def __init__(self, truth: Path, offset=(-3.0, 0.0)) -> None:
        from dmsl_core.data.imageio import read_image
        self.gt = gt_of(truth)
        self.keys = {}
        for r in read_manifest(truth):
            for rel in (r.vis, r.th):
                self.keys[int(read_image(truth / rel).astype(np.int64).sum())] = r.landmarks
        self.offset = np.asarray(offset, float)

    def predict(self, images):
        return [Prediction(landmarks=self.gt[self.keys[int(np.asarray(im).astype(np.int64).sum())]] + self.offset,
                           boundary=np.zeros(4)) for im in images]

    def faces(self, image, spectrum=None):   # Predictor.faces: one face per image here
        return self.predict([image])


def test_annotate_fills_removed_files_lists_misses_and_records_origins(truth, tmp_path):
    data = stripped(truth, tmp_path / "d")
    rep = annotate_dataset(data, source="dlib", dark="neighbour", dlib=FakeDetector(truth))
    gt = gt_of(truth)
    # every pair but the two "hand_mouth" ones (the fake detector's misses) has its file back
    for r in read_manifest(data):
        p = data / r.landmarks
        if r.variation == "hand_mouth":
            assert not p.exists()
            continue
        pts = read_pts(p)
        meta = json.loads(origin_path(p).read_text())
        if r.variation == "dark":
            assert meta["vis"] == ["neighbour"] * 68 and meta["th"] == ["neighbour"] * 68
        else:
            np.testing.assert_allclose(pts, gt[r.landmarks] + [2.0, -1.0], atol=2e-3)
            assert meta["vis"] == ["dlib"] * 68 and meta["th"] == ["transferred"] * 68
            x0, y0 = pts.min(axis=0)
            assert meta["boundary"]["vis"][:2] == pytest.approx([x0, y0], abs=2e-3)
    # misses are listed (in the returned report and the JSON file), not silently skipped
    missed = sorted(Path(m["image"]).name for m in rep["misses"])
    assert missed == ["s001_hand_mouth.png", "s002_hand_mouth.png"]
    assert all(m["filled_by"] is None for m in rep["misses"])
    on_disk = json.loads((data / REPORT).read_text())
    assert on_disk["counts"] == rep["counts"]
    assert rep["counts"]["written"] == 6 and rep["counts"]["misses_unfilled"] == 2 and rep["counts"]["dark"] == 2
    # the dark pairs took the nearest annotated pair of the same subject (not the missed hand_mouth)
    froms = {d["pair"]: d.get("from") for d in rep["dark_pairs"]}
    assert froms == {"pts/s001_dark.pts": "pts/s001_smile.pts", "pts/s002_dark.pts": "pts/s002_smile.pts"}
    np.testing.assert_allclose(read_pts(data / "pts/s001_dark.pts"), read_pts(data / "pts/s001_smile.pts"))
    c = count_origins(data)
    assert c["vis"]["dlib"] == 4 * 68 and c["vis"]["neighbour"] == 2 * 68 and c["th"]["transferred"] == 4 * 68
    assert c["annotated"] == 6 and c["checked"] == 0


def test_existing_annotations_are_kept_and_overwrite_keeps_the_original(truth, tmp_path):
    data = tmp_path / "d"
    shutil.copytree(truth, data)
    p = data / "pts/s001_neutral.pts"
    before = p.read_bytes()
    rep = annotate_dataset(data, source="dlib", dlib=FakeDetector(truth))
    assert rep["counts"]["written"] == 0 and rep["counts"]["kept"] == 8
    assert p.read_bytes() == before and not original_path(p).exists()

    annotate_dataset(data, source="dlib", overwrite=True, dlib=FakeDetector(truth, offset=(5.0, 5.0)))
    assert original_path(p).read_bytes() == before            # the original, byte for byte
    assert not origin_path(original_path(p)).exists()          # it had no origins to keep
    assert not np.allclose(read_pts(p), read_pts(original_path(p)))
    # a second overwrite replaces the file again but never the kept original
    annotate_dataset(data, source="dlib", overwrite=True, dlib=FakeDetector(truth, offset=(9.0, 9.0)))
    assert original_path(p).read_bytes() == before
    np.testing.assert_allclose(read_pts(p), gt_of(truth)["pts/s001_neutral.pts"] + 9.0, atol=2e-3)
    # a pair annotated by the command and then replaced keeps the command's points and origins
    q = data / "pts/s001_smile.pts"
    q.unlink()
    origin_path(q).unlink()
    original_path(q).unlink()
    annotate_dataset(data, source="dlib", dlib=FakeDetector(truth, offset=(1.0, 1.0)))
    annotate_dataset(data, source="dlib", overwrite=True, dlib=FakeDetector(truth, offset=(3.0, 3.0)))
    np.testing.assert_allclose(read_pts(original_path(q)), gt_of(truth)["pts/s001_smile.pts"] + 1.0, atol=2e-3)
    assert json.loads(origin_path(original_path(q)).read_text())["vis"] == ["dlib"] * 68
    # a pair Dlib misses keeps its file untouched even with --overwrite
    assert read_pts(data / "pts/s001_hand_mouth.pts") == pytest.approx(gt_of(truth)["pts/s001_hand_mouth.pts"], abs=2e-3)


def test_both_records_disagreement_and_fills_misses_with_the_model(truth, tmp_path):
    data = stripped(truth, tmp_path / "d")
    rep = annotate_dataset(data, source="both", dark="model", dlib=FakeDetector(truth), predictor=FakeModel(truth))
    iod = np.linalg.norm(gt_of(truth)["pts/s001_neutral.pts"][36] - gt_of(truth)["pts/s001_neutral.pts"][45])
    meta = json.loads(origin_path(data / "pts/s001_neutral.pts").read_text())
    assert meta["disagreement"] == pytest.approx(np.sqrt(26.0) / iod, rel=1e-3)   # |(2,-1) - (-3,0)| = sqrt(26)
    # the Dlib miss is listed and filled by the model (origin "model")
    assert [m["filled_by"] for m in rep["misses"]] == ["model", "model"]
    miss_meta = json.loads(origin_path(data / "pts/s001_hand_mouth.pts").read_text())
    assert miss_meta["vis"] == ["model"] * 68 and "disagreement" not in miss_meta
    # dark + --dark model: the model on the thermal image, transferred to the visible one
    dark_meta = json.loads(origin_path(data / "pts/s001_dark.pts").read_text())
    assert dark_meta["th"] == ["model"] * 68 and dark_meta["vis"] == ["transferred"] * 68
    order = disagreement_order(AnnotationSet(data))
    assert len(order) == 8 and sorted(order) == list(range(8))


def test_dark_skip_lists_the_pair_and_writes_nothing(truth, tmp_path):
    data = stripped(truth, tmp_path / "d")
    rep = annotate_dataset(data, source="dlib", dark="skip", dlib=FakeDetector(truth, miss=()))
    assert sorted(d["result"] for d in rep["dark_pairs"]) == ["skipped", "skipped"]
    assert not (data / "pts/s001_dark.pts").exists() and (data / "pts/s001_smile.pts").exists()


def test_unregistered_pairs_go_through_the_calibration(truth, tmp_path):
    from dmsl_core.registration import Calibration
    data = stripped(truth, tmp_path / "d")
    recs = read_manifest(data)
    for r in recs:
        r.registered = False
        r.landmarks = ""
    write_manifest(data, recs)
    H = np.array([[1.0, 0, 12.0], [0, 1.0, -4.0], [0, 0, 1]])   # thermal -> visible: shift
    Calibration(H_th_to_vis=H).save(data / "calibration.json")
    annotate_dataset(data, source="dlib", dark="skip", dlib=FakeDetector(truth, miss=()))
    recs = read_manifest(data)
    r = next(r for r in recs if r.variation == "neutral")
    assert r.landmarks == "pts/s001_neutral.pts" and r.th_landmarks == "pts/s001_neutral.th.pts"
    vis, th = read_pts(data / r.landmarks), read_pts(data / r.th_landmarks)
    np.testing.assert_allclose(th, vis - [12.0, -4.0], atol=2e-3)
    meta = json.loads(origin_path(data / r.landmarks).read_text())
    assert meta["th"] == ["transferred"] * 68


def test_unregistered_without_calibration_is_listed(truth, tmp_path):
    data = stripped(truth, tmp_path / "d")
    recs = read_manifest(data)
    for r in recs:
        r.registered = False
    write_manifest(data, recs)
    rep = annotate_dataset(data, source="dlib", dark="skip", dlib=FakeDetector(truth, miss=()))
    assert rep["counts"]["no_transfer"] == 6
    assert "no calibration" in rep["no_transfer"][0]["reason"]


def test_bad_options_and_bad_folders_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="--source"):
        annotate_dataset(tmp_path, source="hog")
    with pytest.raises(ValueError, match="manifest.csv"):
        annotate_dataset(tmp_path, source="dlib", dlib=object())


def test_bad_origin_sidecar_names_the_file(truth, tmp_path):
    from dmsl_core.data.pts import AnnotationError
    data = tmp_path / "d"
    shutil.copytree(truth, data)
    origin_path(data / "pts/s001_neutral.pts").write_text("{not json")
    with pytest.raises(AnnotationError, match="s001_neutral.origin.json"):
        AnnotationSet(data).load(0)


# ---- saving: journal, recovery, a kill in the middle ------------------------------------------------
def test_a_failed_save_leaves_the_original_and_the_journal_recovers_it(truth, tmp_path, monkeypatch):
    data = tmp_path / "d"
    shutil.copytree(truth, data)
    aset = AnnotationSet(data)
    p = data / "pts/s001_neutral.pts"
    before = p.read_bytes()
    ann = aset.load(0)
    assert ann.vis_origin == ["file"] * 68
    ann.vis[30] += [4.0, 3.0]
    ann.vis_origin[30] = ann.th_origin[30] = "hand"
    ann.th = ann.vis.copy()

    import dmsl_core.atomic as atomic
    real = atomic.os.replace

    def failing(src, dst):
        if str(dst).endswith("s001_neutral.pts"):
            raise OSError(28, "No space left on device")
        return real(src, dst)

    monkeypatch.setattr(atomic.os, "replace", failing)
    with pytest.raises(OSError, match="No space"):
        aset.save(0, ann)
    monkeypatch.setattr(atomic.os, "replace", real)
    assert p.read_bytes() == before                       # not half-written: untouched
    assert (data / JOURNAL).exists()                      # the edit is in the journal
    assert not list(p.parent.glob(".*.tmp"))             # the failed temporary file was removed
    msg = AnnotationSet(data).recover()
    assert "recovered" in msg and not (data / JOURNAL).exists()
    np.testing.assert_allclose(read_pts(p)[30], ann.vis[30], atol=2e-3)
    assert original_path(p).read_bytes() == before
    assert json.loads(origin_path(p).read_text())["vis"][30] == "hand"


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="needs /proc to name the file being written")
def test_a_kill_while_writing_the_annotation_leaves_it_whole(truth, tmp_path):
    """A real process killed (os._exit) after writing half of the new .pts temp file."""
    data = tmp_path / "d"
    shutil.copytree(truth, data)
    p = data / "pts/s001_neutral.pts"
    before = p.read_bytes()
    code = textwrap.dedent(f"""
        import os, numpy as np
        import dmsl_core.atomic as atomic
        from dmsl_core.annotate import AnnotationSet
        real_fsync = os.fsync
        def killing_fsync(fd):
            name = os.readlink(f"/proc/self/fd/{{fd}}")
            if ".s001_neutral.pts." in name:
                size = os.fstat(fd).st_size
                os.ftruncate(fd, size // 2)      # half of the new file is on disk ...
                os._exit(9)                       # ... when the process dies
            real_fsync(fd)
        atomic.os.fsync = killing_fsync
        aset = AnnotationSet({str(data)!r})
        ann = aset.load(0)
        ann.vis[8] += [0.0, 6.0]
        ann.th = ann.vis.copy()
        ann.vis_origin[8] = ann.th_origin[8] = "hand"
        aset.save(0, ann)
        print("not killed")
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 9, r.stdout + r.stderr
    assert p.read_bytes() == before and read_pts(p).shape == (68, 2)   # whole and parseable
    leftovers = list(p.parent.glob(".s001_neutral.pts.*.tmp"))
    assert len(leftovers) == 1                                          # the half-written temp file
    assert (data / JOURNAL).exists()
    msg = AnnotationSet(data).recover()
    assert msg and "recovered" in msg
    assert read_pts(p)[8] == pytest.approx(read_pts(original_path(p))[8] + [0.0, 6.0], abs=2e-3)
    assert not list(p.parent.glob(".s001_neutral.pts.*.tmp"))


def test_an_unreadable_journal_is_set_aside(truth, tmp_path):
    data = tmp_path / "d"
    shutil.copytree(truth, data)
    (data / JOURNAL).write_text("{half")
    msg = AnnotationSet(data).recover()
    assert "unreadable" in msg and (data / (JOURNAL + ".bad")).exists() and not (data / JOURNAL).exists()


# ---- the command, with the real Dlib --------------------------------------------------------------
@pytest.mark.skipif(not dlib_available()[0], reason=dlib_available()[1])
def test_cli_annotate_with_dlib_fills_the_files_and_prints_the_misses(truth, tmp_path, capsys):
    from dmsl_core.cli import main
    data = stripped(truth, tmp_path / "d")
    assert main(["annotate", "--data", str(data), "--source", "dlib", "--dark", "neighbour"]) == 0
    out = capsys.readouterr().out
    rep = json.loads((data / REPORT).read_text())
    assert out.count("no face: ") == rep["counts"]["misses"]
    assert f"{rep['counts']['written']} of 8 pairs annotated" in out
    written = {w["pair"] for w in rep["written"]}
    missed = {m["pair"] for m in rep["misses"]}
    assert written and not (written & missed) and len(written | missed) == 8
    gt = gt_of(truth)
    from dmsl_core.evaluation import nme_per_image
    for w in rep["written"]:
        if w["vis"] == "dlib":
            assert nme_per_image(read_pts(data / w["pair"]), gt[w["pair"]]) < 0.25   # Dlib, not noise
    for m in missed:
        assert not (data / m).exists()


def test_source_model_with_real_weights_runs_the_predictor_on_visible_and_dark_thermal(truth, tmp_path):
    """The real Predictor path (an untrained dmsl-tiny: the points are not accurate, the plumbing is)."""
    from dmsl_core.models import create_models, get_config
    from dmsl_core.models.weights import save_weights
    cfg = get_config("dmsl-tiny")
    mb, ml = create_models(cfg, seed=0)
    save_weights(tmp_path / "w", mb, ml, cfg, card={"name": "tiny-test", "untrained": True})
    data = stripped(truth, tmp_path / "d")
    # one dark pair's thermal image made flat: no detector can find a face there
    from dmsl_core.data.imageio import read_image, write_image
    dark = sorted((r for r in read_manifest(data) if r.variation == "dark"), key=lambda r: r.subject)
    flat = read_image(data / dark[0].th)
    write_image(data / dark[0].th, np.full_like(flat, int(np.median(flat))))
    # and one visible image made flat: no face there either
    hand = sorted((r for r in read_manifest(data) if r.variation == "hand_mouth"), key=lambda r: r.subject)
    write_image(data / hand[0].vis, np.full_like(read_image(data / hand[0].vis), 128))
    rep = annotate_dataset(data, source="model", weights=str(tmp_path / "w"))   # --dark model is the default
    # the model's points come from the faces its detector finds (YuNet on visible images; it sees the face
    # behind a hand too): none on the flat visible image - a miss, named, nothing written; on the dark pairs'
    # thermal images the thermal detector finds the generated face; on the flat one it finds none: M_b's
    # own box is used and the pair flagged for checking
    assert rep["counts"]["written"] == 7 and rep["counts"]["misses"] == 1
    assert [m["pair"] for m in rep["misses"]] == ["pts/s001_hand_mouth.pts"]
    assert all(m["reason"] == "the model's face detector found no face" for m in rep["misses"])
    assert [d["result"] for d in rep["dark_pairs"]] == ["filled"] * 2
    flags = {Path(d["image"]).name: d.get("unverified") for d in rep["dark_pairs"]}
    assert sorted(flags) == sorted(Path(r.vis).name for r in dark), flags
    assert "check it" in (flags[Path(dark[0].vis).name] or "") and flags[Path(dark[1].vis).name] is None, flags
    assert rep["dark"] == "model" and rep["model"] and "w" in rep["model"]
    for r in read_manifest(data):
        if r.landmarks == hand[0].landmarks:            # the miss: nothing written
            assert not (data / r.landmarks).exists()
            continue
        meta = json.loads(origin_path(data / r.landmarks).read_text())
        pts = read_pts(data / r.landmarks)
        assert pts.shape == (68, 2) and np.isfinite(pts).all()
        if r.variation == "dark":
            assert meta["th"] == ["model"] * 68 and meta["vis"] == ["transferred"] * 68
        else:
            assert meta["vis"] == ["model"] * 68 and meta["th"] == ["transferred"] * 68
