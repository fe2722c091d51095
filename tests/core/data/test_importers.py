"""Importers: tiny folders laid out like each preset, with deliberate problems."""
from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from dmsl_core.cli import main as cli_main
from dmsl_core.data import formats as F
from dmsl_core.data.folder import DatasetError, LoadReport, load_samples, read_manifest
from dmsl_core.data.imageio import read_image
from dmsl_core.data.importers import (EURECOM_PATTERN, import_arl_vtf, import_dataset, import_eurecom,
                                      import_kopaczka, import_paired, import_sf_tl54, import_speakingfaces,
                                      natural_key)
from dmsl_core.data.pts import read_pts, write_pts

W, H = 40, 32


def img(path: Path, size=(W, H), kind: str = "rgb", seed: int = 0) -> Path:
    """A tiny noise image: rgb uint8, gray8 or gray16."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    w, h = size
    if kind == "rgb":
        a = rng.integers(60, 255, (h, w, 3), dtype=np.uint8)
    elif kind == "gray16":
        a = rng.integers(28000, 32000, (h, w), dtype=np.uint16)
    else:
        a = rng.integers(60, 255, (h, w), dtype=np.uint8)
    assert cv2.imwrite(str(path), a)
    return path


def corrupt(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    return path


def face(n: int = 68, size=(W, H), seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    w, h = size
    return np.column_stack([rng.uniform(2, w - 3, n), rng.uniform(2, h - 3, n)])


def tree_hash(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def problems_for(report, name: str) -> list[str]:
    return [p.reason for p in report.problems if Path(p.path).name == name]


# ---------------------------------------------------------------------------------------------
def make_paired_src(src: Path) -> None:
    """VIS/ and TH/ folders, annotations beside the visible images, several deliberate problems."""
    for i, subj in enumerate(("001", "002")):
        for var in ("01", "02", "03"):
            stem = f"{subj}_{var}"
            img(src / "VIS" / f"{stem}.png", kind="rgb", seed=i)
            img(src / "TH" / f"{stem}.png", kind="gray16", seed=i + 10)
            write_pts(src / "VIS" / f"{stem}.pts", face(seed=i))
    corrupt(src / "VIS" / "001_02.png")                                     # unreadable visible image
    img(src / "TH" / "001_03.png", size=(W + 8, H), kind="gray16")           # registered pair, other size
    write_pts(src / "VIS" / "002_01.pts", face(10))                          # wrong point count
    bad = face(seed=3)
    bad[7] = (W + 20, 5)
    write_pts(src / "VIS" / "002_02.pts", bad)                               # point outside the image
    p54 = face(54, seed=4)
    F.write_labelme(src / "VIS" / "002_03.json", p54, image="002_03.png", image_size=(W, H))
    (src / "VIS" / "002_03.pts").unlink()                                   # LabelMe 54 instead
    img(src / "VIS" / "003_01.png")                                         # no thermal partner
    write_pts(src / "VIS" / "003_01.pts", face(seed=5))


def test_paired_folders_by_name_with_problems(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "out"
    make_paired_src(src)
    before = tree_hash(src)
    rep = import_paired(src, dst)
    assert tree_hash(src) == before  # the source is never modified

    assert problems_for(rep, "001_02.png") and "not a readable image" in problems_for(rep, "001_02.png")[0]
    assert "registered pair of different sizes" in problems_for(rep, "001_03.png")[0]
    assert "10 points" in problems_for(rep, "002_01.pts")[0]
    assert "outside the 40x32 image" in problems_for(rep, "002_02.pts")[0]
    assert len(rep.problems) == 4
    assert rep.n_records == 6 and rep.n_pairs == 4 and rep.n_unpaired == 1 and rep.n_skipped == 1
    assert rep.n_vis == 5 and rep.n_th == 5
    text = rep.summary()
    assert "problems: 4" in text and "002_02.pts" in text

    recs = {(r.subject, r.variation): r for r in read_manifest(dst)}
    assert set(recs) == {("001", "01"), ("001", "02"), ("002", "01"), ("002", "02"), ("002", "03"), ("003", "01")}
    r = recs[("001", "02")]  # visible unreadable: thermal kept, the visible annotation serves it
    assert r.vis == "" and r.th and r.landmarks
    assert recs[("002", "01")].landmarks == "" and recs[("002", "02")].landmarks == ""
    r = recs[("001", "01")]
    assert r.registered and r.th_format == "u16_raw"
    th = read_image(dst / r.th)
    assert th.dtype == np.uint16  # 16-bit stays 16-bit
    assert (dst / r.th).read_bytes() == (src / "TH" / "001_01.png").read_bytes()
    np.testing.assert_allclose(read_pts(dst / r.landmarks), face(seed=0), atol=1e-3)
    # 54 points mapped to 68
    p = read_pts(dst / recs[("002", "03")].landmarks)
    assert p.shape == (68, 2) and np.isfinite(p).all(axis=1).sum() == 54
    np.testing.assert_allclose(F.map_68_to_54(p), face(54, seed=4), atol=1e-3)

    lr = LoadReport()
    samples = load_samples(dst, report=lr)
    # annotated: 001_01 vis+th, 001_02 th, 002_03 vis+th, 003_01 vis
    assert len(samples) == 6 and not lr.skipped
    assert {s.spectrum for s in samples} == {"vis", "th"}


def test_paired_errors_and_existing_destination(tmp_path):
    src = tmp_path / "src"
    make_paired_src(src)
    with pytest.raises(DatasetError, match="differ from the source"):
        import_paired(src, src)
    with pytest.raises(DatasetError, match="not a folder"):
        import_paired(tmp_path / "nope", tmp_path / "o")
    with pytest.raises(ValueError, match="named group 'subject'"):
        import_paired(src, tmp_path / "o", pair_by="pattern", pattern=r"(?P<variation>\d+)")
    with pytest.raises(ValueError, match="bad pattern"):
        import_paired(src, tmp_path / "o", pattern=r"(?P<subject>\d+")
    import_paired(src, tmp_path / "o")
    with pytest.raises(DatasetError, match="already holds a manifest.csv"):
        import_paired(src, tmp_path / "o")
    assert import_paired(src, tmp_path / "o", overwrite=True).n_records == 6


def test_destination_inside_source_is_not_rescanned(tmp_path):
    src = tmp_path / "src"
    img(src / "a_vis.png")
    img(src / "a_th.png", kind="gray8")
    assert import_paired(src, src / "imported").n_records == 1
    rep = import_paired(src, src / "imported", overwrite=True)
    assert rep.n_records == 1 and rep.n_pairs == 1


def test_single_folder_suffixes_and_pair_level_annotation(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    for s in ("s1", "s2"):
        img(src / f"{s}_smile_vis.jpg")
        img(src / f"{s}_smile_th.png", kind="gray8")
        F.write_ljson(src / f"{s}_smile.ljson", face())
    img(src / "mystery.png")  # no spectrum marker
    rep = import_paired(src, dst)
    assert rep.n_pairs == 2 and rep.n_annotated == 2
    assert "cannot tell whether it is visible or thermal" in problems_for(rep, "mystery.png")[0]
    recs = read_manifest(dst)
    assert [(r.subject, r.variation) for r in recs] == [("s1", "smile"), ("s2", "smile")]
    assert recs[0].vis.endswith("_vis.jpg") and recs[0].th_format == "u8"
    assert len(load_samples(dst)) == 4


def test_pair_by_order(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    for i in range(3):
        img(src / "visible" / f"img{i + 1}.png")
        write_pts(src / "visible" / f"img{i + 1}.pts", face(seed=i))
        img(src / "thermal" / f"frame_{(i + 1) * 10}.png", kind="gray16")
    img(src / "thermal" / "frame_99.png", kind="gray16")  # one extra
    rep = import_paired(src, dst, vis_dir="visible", th_dir="thermal", pair_by="order")
    assert rep.n_records == 4 and rep.n_pairs == 3 and rep.n_unpaired == 1
    recs = read_manifest(dst)
    paired = [r for r in recs if r.vis and r.th]
    assert all(r.landmarks for r in paired)
    assert any("pairing by order leaves 1 unpaired" in n for n in rep.notes)


def test_pair_by_pattern_with_spectrum_group(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    for subj in ("7", "12"):
        for spec in ("V", "T"):
            img(src / f"p{subj}-neutral-{spec}.png", kind="rgb" if spec == "V" else "gray16")
    img(src / "readme.png")  # does not match
    pattern = r"p(?P<subject>\d+)-(?P<variation>[a-z]+)-(?P<spectrum>[VT])\.png$"
    rep = import_paired(src, dst, pair_by="pattern", pattern=pattern, spectrum_map={"v": "vis", "t": "th"})
    assert rep.n_pairs == 2 and rep.n_ignored == 1 and not rep.problems
    assert [r.subject for r in read_manifest(dst)] == ["7", "12"]  # natural order


def test_multi_image_annotation_file(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    rows = {}
    for s in ("a", "b"):
        img(src / "vis" / f"{s}_x.png")
        img(src / "th" / f"{s}_x.png", kind="gray8")
        rows[f"{s}_x.png"] = face(seed=ord(s))
    F.write_csv_landmarks(tmp_path / "lm.csv", rows)
    rep = import_paired(src, dst, annotations=tmp_path / "lm.csv")
    assert rep.n_annotated == 2
    rec = read_manifest(dst)[1]
    np.testing.assert_allclose(read_pts(dst / rec.landmarks), rows["b_x.png"], atol=1e-3)


# ---------------------------------------------------------------------------------------------
def test_eurecom_pattern_and_order(tmp_path):
    src = tmp_path / "eurecom"
    for subj in (1, 2):
        for var in (1, 2):
            img(src / "VIS" / f"{subj:03d}_{var:02d}.jpg")
            img(src / "TH" / f"{subj:03d}_{var:02d}.jpg", kind="gray8")
            write_pts(src / "VIS" / f"{subj:03d}_{var:02d}.pts", face(seed=subj * var))
    rep = import_eurecom(src, tmp_path / "d1")
    assert rep.n_pairs == 4 and rep.n_annotated == 4 and not rep.problems
    recs = read_manifest(tmp_path / "d1")
    assert [(r.subject, r.variation) for r in recs] == [("001", "01"), ("001", "02"), ("002", "01"), ("002", "02")]
    assert all(r.registered for r in recs)
    assert len(load_samples(tmp_path / "d1")) == 8

    # sequentially numbered files, subject-major: pairs 0..3 with 2 variations -> subjects 001, 002
    src2 = tmp_path / "numbered"
    for i in range(4):
        img(src2 / "vis" / f"{i + 1}.png")
        img(src2 / "ir" / f"{i + 1}.png", kind="gray8")
    rep = import_eurecom(src2, tmp_path / "d2", pair_by="order", n_variations=2, variation_names=["neutral", "dark"])
    recs = read_manifest(tmp_path / "d2")
    assert [(r.subject, r.variation) for r in recs] == [("001", "neutral"), ("001", "dark"),
                                                        ("002", "neutral"), ("002", "dark")]
    import re
    m = re.search(EURECOM_PATTERN, "TH/015/015_hat-th.png", re.IGNORECASE)
    assert m and m["subject"] == "015" and m["variation"] == "hat"


def test_speakingfaces(tmp_path):
    src, dst = tmp_path / "sf", tmp_path / "dst"
    for sub in (1, 2):
        for frame in (5, 6):
            base = src / f"sub_{sub}" / "trial_1"
            img(base / "rgb_image" / f"{sub}_1_3_{frame}_2.png", size=(64, 48))
            img(base / "thr_image" / f"{sub}_1_3_{frame}_1.png", kind="gray8")  # another size: not registered
    img(src / "sub_2" / "trial_1" / "thr_image" / "2_1_3_7_1.png", kind="gray8")  # thermal only
    rep = import_speakingfaces(src, dst)
    assert rep.n_pairs == 4 and rep.n_unpaired == 1 and not rep.problems
    recs = read_manifest(dst)
    assert {r.variation for r in recs} == {"trial1_pos3"}
    assert not any(r.registered for r in recs if r.vis and r.th)
    r = recs[0]
    assert read_image(dst / r.vis).shape == (48, 64, 3) and read_image(dst / r.th).shape == (H, W)


def test_arl_vtf(tmp_path):
    src, dst = tmp_path / "arl", tmp_path / "dst"
    rows = [("camera", "condition", "subid", "filepath")]
    for sub in ("0001", "0002"):
        for n in (1, 2):
            v = f"{sub}/baseline/rgb/{sub}_baseline_rgb_{n}.png"
            t = f"{sub}/baseline/lwir/{sub}_baseline_lwir_{n}.png"
            img(src / v)
            img(src / t, kind="gray16")
            write_pts((src / v).with_suffix(".pts"), face(seed=n))
            write_pts((src / t).with_suffix(".pts"), face(seed=n + 5))
            rows += [("rgb_basler", "baseline", sub, v), ("lwir_boson", "baseline", sub, t)]
    rows.append(("depth", "baseline", "0001", "0001/depth.png"))
    with open(src / "metadata.csv", "w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    rep = import_arl_vtf(src, dst)
    assert rep.n_pairs == 4 and rep.n_annotated == 4
    assert len(rep.problems) == 1 and "camera 'depth'" in rep.problems[0].reason
    recs = read_manifest(dst)
    assert {r.variation for r in recs} == {"baseline"}
    r = recs[0]
    assert not r.registered and r.landmarks and r.th_landmarks  # each image keeps its own landmarks
    np.testing.assert_allclose(r.landmarks_for("th"), face(seed=6), atol=1e-3)
    np.testing.assert_allclose(r.landmarks_for("vis"), face(seed=1), atol=1e-3)
    assert len(load_samples(dst)) == 8
    (tmp_path / "no_meta").mkdir()
    with pytest.raises(DatasetError, match="no metadata.csv"):
        import_arl_vtf(tmp_path / "no_meta", tmp_path / "x")


def test_sf_tl54_labelme(tmp_path):
    src, dst = tmp_path / "sftl", tmp_path / "dst"
    for i, name in enumerate(("A1", "A2", "B1")):
        for spec, kind in (("rgb", "rgb"), ("thermal", "gray8")):
            img(src / "train" / spec / "images" / f"{name}.png", kind=kind, seed=i)
            F.write_labelme(src / "train" / spec / "json" / f"{name}.json", face(54, seed=i + (spec == "thermal")),
                            image=f"../images/{name}.png", image_size=(W, H))
    F.write_labelme(src / "train" / "thermal" / "json" / "B1.json", face(30), image="B1.png")  # wrong count
    rep = import_sf_tl54(src, dst, pattern=r"(?P<subject>[A-Z])(?P<variation>\d)\.png$")
    assert rep.n_pairs == 3
    assert len(rep.problems) == 1 and "30 points" in rep.problems[0].reason
    recs = read_manifest(dst)
    assert [r.subject for r in recs] == ["A", "A", "B"]
    r = recs[0]
    vis, th = r.landmarks_for("vis"), r.landmarks_for("th")
    assert vis.shape == th.shape == (68, 2)
    np.testing.assert_allclose(F.map_68_to_54(vis), face(54, seed=0), atol=1e-3)
    np.testing.assert_allclose(F.map_68_to_54(th), face(54, seed=1), atol=1e-3)
    assert recs[2].th_landmarks == ""  # B1's thermal file was bad
    # by name (no pattern): subject from the stem
    rep = import_dataset("sf-tl54", src, tmp_path / "dst2")
    assert rep.n_pairs == 3


def test_kopaczka_thermal_only(tmp_path):
    src, dst = tmp_path / "kop", tmp_path / "dst"
    for sub in (1, 2):
        for frm in (1, 2):
            stem = f"irface_sub{sub:03d}_seq01_frm{frm:05d}"
            img(src / f"{stem}.png", kind="gray16")
            if frm == 1:
                F.write_ljson(src / f"{stem}_lm.ljson", face(seed=sub))
            else:
                write_pts(src / f"{stem}.pts", face(seed=sub + 2))
    corrupt(src / "irface_sub003_seq01_frm00001.png")
    rep = import_kopaczka(src, dst)
    assert rep.n_records == 4 and rep.n_th == 4 and rep.n_vis == 0 and rep.n_annotated == 4
    assert len(rep.problems) == 1 and "not a readable image" in rep.problems[0].reason
    recs = read_manifest(dst)
    assert {r.variation for r in recs} == {"seq01"} and {r.subject for r in recs} == {"001", "002"}
    assert all(r.th_format == "u16_raw" and r.registered for r in recs)
    np.testing.assert_allclose(recs[0].landmarks_for("th"), face(seed=1), atol=1e-3)
    samples = load_samples(dst)
    assert len(samples) == 4 and all(s.spectrum == "th" for s in samples)


# ---------------------------------------------------------------------------------------------
def test_cli_import_prints_summary(tmp_path, capsys):
    src, dst = tmp_path / "src", tmp_path / "dst"
    make_paired_src(src)
    assert cli_main(["import", "--preset", "paired", str(src), str(dst)]) == 0
    out = capsys.readouterr().out
    assert "records: 6" in out and "problems: 4" in out and "002_01.pts" in out
    assert cli_main(["import", str(src), str(dst)]) == 2  # manifest exists
    assert "already holds" in capsys.readouterr().err
    assert cli_main(["import", "--preset", "eurecom", "--pair-by", "name", "--th-u16-format", "u16_ck",
                     "--force", str(src), str(dst)]) == 0
    assert read_manifest(dst)[0].th_format == "u16_ck"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli_main(["import", str(empty), str(tmp_path / "dst3")]) == 1


def test_natural_key():
    assert sorted(["s10", "s2", "s1"], key=natural_key) == ["s1", "s2", "s10"]


def test_preset_registry_lists_every_preset_and_gets_each_by_name(tmp_path: Path):
    from dmsl_core.data import importers as I

    names = I.list_presets()
    assert names == ["paired", "eurecom", "speakingfaces", "arl-vtf", "sf-tl54", "kopaczka", "300w"]
    assert list(I.PRESETS) == names
    expected = {"paired": I.import_paired, "eurecom": I.import_eurecom, "speakingfaces": I.import_speakingfaces,
                "arl-vtf": I.import_arl_vtf, "sf-tl54": I.import_sf_tl54, "kopaczka": I.import_kopaczka,
                "300w": I.import_300w}
    for name in names:
        assert I.get_preset(name) is expected[name]
        assert I.describe_preset(name)
    # one clear error for an unknown name, listing the known ones (import_dataset says the same, before any write)
    for call in (lambda: I.get_preset("nope"), lambda: I.import_dataset("nope", tmp_path, tmp_path / "dst")):
        with pytest.raises(ValueError) as err:
            call()
        msg = str(err.value)
        assert msg.startswith("unknown preset 'nope'; choose one of ") and all(n in msg for n in names)
    assert not (tmp_path / "dst").exists()
    with pytest.raises(ValueError, match="already registered"):
        I.register_preset("eurecom")(lambda src, dst, **kw: None)
    assert I.get_preset("eurecom") is I.import_eurecom


def test_name_vocabulary_has_one_home():
    from dmsl_core.data import names as N
    from dmsl_core.data import importers as I
    from dmsl_core.data.importers import pairing
    from dmsl_core.sources import folders, video

    assert I.IMAGE_EXTENSIONS is N.IMAGE_EXTENSIONS is video.IMAGE_EXTS
    assert pairing.VIS_TOKENS is N.VIS_WORDS and pairing.TH_TOKENS is N.TH_WORDS
    assert I.natural_key is N.natural_key and I.spectrum_from_name is N.spectrum_from_name
    assert folders.strip_spectrum is N.strip_spectrum
    assert [N.spectrum_from_name(n) for n in ("face_thermal_01.png", "0001-IR.tiff", "rgb_007.jpg", "x_vis_th.png")] \
        == ["th", "th", "vis", None]
    assert [N.dir_spectrum(n) for n in ("VIS", "thr_image", "rgb_image", "t", "th8", "data")] \
        == ["vis", "th", "vis", "th", None, None]
    assert N.strip_spectrum("0012_vis") == "0012" and N.strip_spectrum("a-IR") == "a"
    assert N.label_spectrum("lwir_boson") == "th" and N.label_spectrum("rgb_basler") == "vis"
    assert N.label_spectrum("basler") is None and N.label_spectrum("basler", vis_extra=("basler",)) == "vis"


def test_registered_pair_annotated_on_thermal_serves_both(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    img(src / "VIS" / "s1_a.png")
    img(src / "TH" / "s1_a.png", kind="gray8")
    write_pts(src / "TH" / "s1_a.pts", face(seed=9))
    rep = import_paired(src, dst)
    assert rep.n_pairs == 1 and rep.n_annotated == 1 and not rep.problems
    r = read_manifest(dst)[0]
    assert r.registered and r.th_landmarks == ""
    np.testing.assert_allclose(r.landmarks_for("vis"), face(seed=9), atol=1e-3)
    np.testing.assert_allclose(r.landmarks_for("th"), face(seed=9), atol=1e-3)
    # not registered: the thermal file stays the thermal image's
    rep = import_paired(src, tmp_path / "dst2", registered=False)
    r = read_manifest(tmp_path / "dst2")[0]
    assert not r.registered and r.landmarks == "" and r.th_landmarks
    assert len(load_samples(tmp_path / "dst2")) == 1


def test_argument_errors_leave_no_destination(tmp_path):
    src = tmp_path / "src"
    img(src / "a_vis.png")
    with pytest.raises(ValueError, match="both vis_dir and th_dir"):
        import_paired(src, tmp_path / "dst", vis_dir="x")
    with pytest.raises(ValueError, match="unknown preset"):
        import_dataset("nope", src, tmp_path / "dst")
    with pytest.raises(TypeError):
        import_dataset("arl-vtf", src, tmp_path / "dst", pattern="x")
    assert not (tmp_path / "dst").exists()
    assert cli_main(["import", "--preset", "arl-vtf", "--pattern", "x", str(src), str(tmp_path / "dst")]) == 2
