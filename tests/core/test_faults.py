"""Fault injection: bad input and faults of the machine end in one clear message naming the file,
nothing is written where it should not be, the previous good file stays, partial work is kept.

Real faults where the machine allows: a real full file system (a small tmpfs, when this process
may mount one - root in a sandbox), a read-only mount, symlinks, FIFOs, ``kill -9`` / SIGTERM of
a real ``dmsl run`` subprocess. Tests needing a mount are skipped (with the reason) elsewhere.
"""
from __future__ import annotations

import contextlib
import csv
import json
import logging
import os
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from dmsl_core.cli import main
from dmsl_core.data.folder import COLUMNS, MANIFEST, DatasetError, PairRecord, load_samples, read_manifest, \
    write_manifest
from dmsl_core.data.imageio import ImageReadError, read_image, write_image
from dmsl_core.data.pts import read_pts, write_pts

REPO = Path(__file__).resolve().parents[2]


# ---- helpers ---------------------------------------------------------------------------------------
def _face_points(w: int = 64, h: int = 64) -> np.ndarray:
    from dmsl_core.sources.demo import _TEMPLATE
    return np.stack([w * 0.3 + _TEMPLATE[:, 0] * w * 0.4, h * 0.25 + _TEMPLATE[:, 1] * h * 0.5], axis=1)


def _dataset(root: Path, n: int = 2, rows: list[dict] | None = None) -> Path:
    """A small dataset folder: n registered pairs of 64x64 noise images with template landmarks;
    ``rows`` (dicts of manifest fields) are appended as they are."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    recs = []
    for i in range(n):
        (root / "img").mkdir(exist_ok=True)
        write_image(root / f"img/v{i}.png", rng.integers(60, 200, (64, 64, 3), dtype=np.uint8))
        write_image(root / f"img/t{i}.png", rng.integers(60, 200, (64, 64), dtype=np.uint8))
        write_pts(root / f"img/p{i}.pts", _face_points())
        recs.append(PairRecord(subject=f"s{i}", variation="neutral", vis=f"img/v{i}.png", th=f"img/t{i}.png",
                               landmarks=f"img/p{i}.pts"))
    write_manifest(root, recs)
    if rows:
        with open(root / MANIFEST, "a", encoding="utf-8", newline="") as fh:
            w = csv.DictWriter(fh, COLUMNS, lineterminator="\n")
            for r in rows:
                w.writerow({"th_format": "u8", "registered": 1, **r})
    return root


def _tree(folder: Path) -> dict[str, bytes]:
    """Every file (and symlink target) below ``folder``: relative name -> content / link text."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_symlink():
            out[str(p.relative_to(folder))] = os.readlink(p).encode()
        elif p.is_file():
            out[str(p.relative_to(folder))] = p.read_bytes()
    return out


def _mount(folder: Path, options: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({(r.stderr or r.stdout).strip() or 'mount failed'}): "
                    "a real full / read-only file system is needed for this fault")


@pytest.fixture
def small_fs(tmp_path):
    """mount(size) -> a folder on a real tmpfs of that size (unmounted afterwards)."""
    mounted = []

    def make(size: str = "256k", ro: bool = False) -> Path:
        d = tmp_path / f"fs{len(mounted)}"
        _mount(d, f"size={size}" + (",ro" if ro else ""))
        mounted.append(d)
        return d
    yield make
    for d in mounted:
        subprocess.run(["umount", "-l", str(d)], capture_output=True)


def _fill(folder: Path, leave: int = 0) -> None:
    """Fill the file system of ``folder`` until fewer than ``leave`` bytes are free."""
    with open(folder / "filler", "wb") as fh:
        chunk = b"\0" * 4096
        with contextlib.suppress(OSError):
            while os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize > leave + 4096:
                fh.write(chunk)
                fh.flush()


def _one_error_line(err: str, *names: str) -> str:
    assert "Traceback" not in err, err
    lines = [ln for ln in err.strip().splitlines() if "error:" in ln]
    assert len(lines) == 1, err
    for n in names:
        assert n in lines[0], (n, err)
    return lines[0]


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    """Untrained dmsl-tiny weights in a folder (commands other than ``run`` need a weights file)."""
    from dmsl_core.models.weights import save_weights
    from dmsl_core.pipeline import Predictor
    p = Predictor.untrained("dmsl-tiny")
    out = tmp_path_factory.mktemp("tiny")
    save_weights(out, p.boundary, p.landmark, p.config)
    return out


class FakeDetector:
    """Stands in for Dlib: the template face on every image (records each call)."""
    name = "fake"

    def __init__(self) -> None:
        self.calls = 0

    def predict(self, images, boxes=None, refine=True):
        from dmsl_core.landmarks import boundary_from_points
        from dmsl_core.pipeline import Prediction
        self.calls += 1
        out = []
        for im in images:
            pts = _face_points(im.shape[1], im.shape[0])
            out.append(Prediction(landmarks=pts, boundary=boundary_from_points(pts)))
        return out


# ---- 1. manifest paths escaping the dataset folder ------------------------------------------------
def _escaping_dataset(tmp_path: Path) -> tuple[Path, Path]:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim.pts").write_text("precious\n")
    data = tmp_path / "data"
    _dataset(data, n=1)
    os.symlink(outside, data / "link")  # a folder inside the dataset that leads out of it
    rows = [
        {"subject": "a", "variation": "dotdot", "vis": "img/v0.png", "landmarks": "../outside/new.pts"},
        {"subject": "b", "variation": "abs", "vis": "img/v0.png", "landmarks": str(outside / "victim.pts")},
        {"subject": "c", "variation": "symlink", "vis": "img/v0.png", "landmarks": "link/victim.pts"},
        {"subject": "d", "variation": "th", "vis": "img/v0.png", "th": "img/t0.png", "registered": 0,
         "landmarks": "pts/d.pts", "th_landmarks": "../../outside/d.th.pts"},
        {"subject": "e", "variation": "img", "vis": "../outside/victim.pts", "landmarks": "pts/e.pts"},
    ]
    with open(data / MANIFEST, "a", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, COLUMNS, lineterminator="\n")
        for r in rows:
            w.writerow({"th_format": "u8", "registered": 1, **r})
    return data, outside


def test_annotate_refuses_manifest_paths_leading_outside_the_dataset(tmp_path):
    from dmsl_core.annotate import annotate_dataset
    data, outside = _escaping_dataset(tmp_path)
    before = _tree(outside)
    rep = annotate_dataset(data, source="dlib", dark="skip", overwrite=True, dlib=FakeDetector())
    assert _tree(outside) == before  # nothing created, nothing replaced, no .orig.pts / .origin.json
    errs = {e["pair"]: e["error"] for e in rep["errors"]}
    assert len(errs) == 5, rep["errors"]
    for msg in errs.values():
        assert "manifest.csv:" in msg and ("outside the dataset" in msg or "absolute" in msg), msg
    assert any("../outside/new.pts" in m for m in errs.values())
    assert any("link/victim.pts" in m for m in errs.values())
    assert any("../../outside/d.th.pts" in m for m in errs.values())
    assert (data / "img/p0.pts").exists() and [w["pair"] for w in rep["written"]] == ["img/p0.pts"]


def test_library_save_and_load_refuse_escaping_paths(tmp_path):
    from dmsl_core.annotate import AnnotationSet, PairAnnotation
    data, outside = _escaping_dataset(tmp_path)
    before = _tree(outside)
    aset = AnnotationSet(data)
    ann = PairAnnotation(vis=_face_points(), th=None, source="manual")
    ann.vis_origin = ["manual"] * 68
    for i in range(1, len(aset)):
        with pytest.raises(DatasetError, match=r"manifest\.csv:\d+"):
            aset.save(i, ann)
        with pytest.raises(DatasetError):
            aset.load(i)
    assert _tree(outside) == before
    # reading: the rows are skipped with the reason, the good one is loaded
    from dmsl_core.data.folder import LoadReport
    rep = LoadReport()
    samples = load_samples(data, ("vis",), report=rep)
    rep_skipped = rep.skipped
    assert [Path(s.path).name for s in samples] == ["v0.png"]
    assert sum("outside the dataset" in m or "absolute" in m for m in rep_skipped) >= 4, rep_skipped


# ---- 2. write_image: short write, umask ------------------------------------------------------------
def test_write_image_on_a_full_disk_keeps_the_previous_file(small_fs):
    d = small_fs("256k")
    good = np.full((32, 32, 3), 120, np.uint8)
    write_image(d / "a.png", good)
    _fill(d, leave=20000)
    big = np.random.default_rng(1).integers(0, 256, (200, 200, 3), dtype=np.uint8)  # ~120 kB of PNG
    with pytest.raises(OSError) as ei:
        write_image(d / "a.png", big)
    assert "a.png" in str(ei.value.filename)
    np.testing.assert_array_equal(read_image(d / "a.png"), good)  # the previous good file, intact
    assert sorted(p.name for p in d.iterdir()) == ["a.png", "filler"]  # no temporary left
    with pytest.raises(OSError):
        write_image(d / "b.png", big)
    assert not (d / "b.png").exists()  # no cut-off PNG published


def test_atomic_writes_never_touch_the_process_umask(tmp_path, monkeypatch):
    from dmsl_core import atomic
    calls = []
    real = os.umask
    monkeypatch.setattr(os, "umask", lambda m: calls.append(m) or real(m))
    old = real(0o027)
    try:
        atomic.atomic_write_text(tmp_path / "a.txt", "x")
        write_image(tmp_path / "b.png", np.zeros((4, 4), np.uint8))
        with atomic.atomic_path(tmp_path / "c.bin") as tmp:
            Path(tmp).write_bytes(b"1")
    finally:
        real(old)
    assert calls == []  # another thread creating a file meanwhile gets the real umask
    for name in ("a.txt", "b.png", "c.bin"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o640


# ---- 3. export temporaries --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def results():
    from dmsl_core.sources import open_source
    from dmsl_core.runner import StreamRunner
    from dmsl_core.stream import StreamProcessor
    out = []
    with open_source("demo:?size=96x80&frames=4&realtime=0&rig=1") as src:
        StreamRunner(src, StreamProcessor(FakeDetector(), mode="both")).run(on_result=out.append)
    return out


def test_a_symlink_at_the_part_name_is_not_followed(tmp_path, results, caplog):
    from dmsl_core.export import CSVExporter, JSONLExporter
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    os.symlink(victim, tmp_path / "o.csv.part")
    os.symlink(victim, tmp_path / "o.jsonl.part")
    with caplog.at_level(logging.WARNING):
        for cls, name in ((CSVExporter, "o.csv"), (JSONLExporter, "o.jsonl")):
            w = cls(tmp_path / name)
            for r in results:
                w.write(r)
            w.close()
    assert victim.read_text() == "precious"
    assert (tmp_path / "o.csv.part.1").is_symlink() and (tmp_path / "o.jsonl.part.1").is_symlink()
    assert len((tmp_path / "o.csv").read_text().splitlines()) == 1 + len(results)
    assert "o.csv.part.1" in caplog.text


def test_a_part_left_by_a_crash_is_kept_and_said(tmp_path, results, caplog):
    from dmsl_core.export import CSVExporter, VideoExporter
    (tmp_path / "o.csv.part").write_text("header\nrow of the crashed run\n")
    (tmp_path / "o.part.mp4").write_bytes(b"crashed video")
    (tmp_path / "o.csv.part.1").write_text("an older one")
    with caplog.at_level(logging.WARNING):
        w, v = CSVExporter(tmp_path / "o.csv"), VideoExporter(tmp_path / "o.mp4")
        for r in results:
            w.write(r)
            v.write(r)
        w.close()
        v.close()
    assert (tmp_path / "o.csv.part.2").read_text() == "header\nrow of the crashed run\n"
    assert (tmp_path / "o.csv.part.1").read_text() == "an older one"
    assert (tmp_path / "o.part.1.mp4").read_bytes() == b"crashed video"
    assert "o.csv.part.2" in caplog.text and "o.part.1.mp4" in caplog.text


def _run_demo(args: list[str], frames: int = 40) -> list[str]:
    return ["run", "--source", "demo:?size=96x80&realtime=0&cycle=4", "--weights", "untrained:dmsl-tiny",
            "--max-frames", str(frames), "--quiet", *args]


def test_full_disk_during_csv_and_jsonl_export(small_fs, capsys):
    d = small_fs("64k")
    rc = main(_run_demo(["--json", str(d / "o.jsonl")], frames=40))
    err = capsys.readouterr().err
    assert rc in (1, 2)
    _one_error_line(err, "o.jsonl")
    assert not (d / "o.jsonl").exists()  # a cut-off export is never published
    lines = (d / "o.jsonl.part").read_text().splitlines()  # partial work kept
    assert len(lines) >= 2
    for ln in lines[:-1]:
        json.loads(ln)
    # CSV on a full disk likewise
    for p in d.iterdir():
        p.unlink()
    _fill(d, leave=16000)
    rc = main(_run_demo(["--csv", str(d / "o.csv")], frames=40))
    err = capsys.readouterr().err
    assert rc in (1, 2)
    _one_error_line(err, "o.csv")
    assert not (d / "o.csv").exists() and len((d / "o.csv.part").read_text().splitlines()) >= 2


def test_second_export_cannot_be_opened_first_is_not_published(tmp_path, capsys):
    (tmp_path / "afile").write_text("x")
    rc = main(_run_demo(["--csv", str(tmp_path / "o.csv"), "--json", str(tmp_path / "afile" / "o.jsonl")], 3))
    err = capsys.readouterr().err
    assert rc == 2
    _one_error_line(err, "afile")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]  # no header-only o.csv, no o.csv.part


# ---- 4. full disk during a video recording ----------------------------------------------------------
def test_full_disk_during_run_video_is_an_error(small_fs, capsys):
    d = small_fs("256k")
    _fill(d, leave=24000)  # room for a few frames only
    rc = main(_run_demo(["--video", str(d / "o.mp4")], frames=30))
    err = capsys.readouterr().err
    assert rc in (1, 2), err
    _one_error_line(err, "o.part.mp4")
    assert "wrote" not in err
    assert not (d / "o.mp4").exists()


# ---- 5. the CLI error boundary: OS errors, output checked before the work ---------------------------
def test_eval_json_unwritable_fails_before_the_work(tmp_path, small_fs, capsys, monkeypatch, tiny_weights):
    import dmsl_core.evaluation as ev
    data = _dataset(tmp_path / "data", n=1)
    monkeypatch.setattr(ev, "evaluate_folder", lambda *a, **k: pytest.fail("the evaluation ran first"))
    (tmp_path / "afile").write_text("x")
    for target, name in ((tmp_path / "afile" / "r.json", "afile"), (tmp_path, str(tmp_path))):
        rc = main(["eval", "--data", str(data), "--weights", str(tiny_weights), "--json", str(target)])
        assert rc == 2
        _one_error_line(capsys.readouterr().err, name)
    ro = small_fs("64k", ro=True)
    rc = main(["eval", "--data", str(data), "--weights", str(tiny_weights), "--json", str(ro / "r.json")])
    assert rc == 2
    assert "Read-only file system" in _one_error_line(capsys.readouterr().err, str(ro))


def test_annotate_unwritable_report_fails_before_the_work(tmp_path, small_fs):
    from dmsl_core.annotate import annotate_dataset
    data = _dataset(tmp_path / "data", n=1)
    (data / "img/p0.pts").unlink()
    det = FakeDetector()
    ro = small_fs("64k", ro=True)
    with pytest.raises(OSError) as ei:
        annotate_dataset(data, source="dlib", dlib=det, report_path=ro / "rep.json")
    assert str(ro) in str(ei.value.filename) and det.calls == 0
    assert not (data / "img/p0.pts").exists()
    # and through the command's boundary: one line
    (tmp_path / "afile").write_text("x")
    from dmsl_core.cli import describe_error
    with pytest.raises(OSError) as ei:
        annotate_dataset(data, source="dlib", dlib=det, report_path=tmp_path / "afile" / "rep.json")
    assert "afile" in describe_error(ei.value) and det.calls == 0


def test_run_into_a_read_only_folder_is_one_line(small_fs, capsys):
    ro = small_fs("64k", ro=True)
    rc = main(_run_demo(["--csv", str(ro / "o.csv")], frames=2))
    assert rc == 2
    assert "Read-only file system" in _one_error_line(capsys.readouterr().err, str(ro))


# ---- 6. bad input files and values ------------------------------------------------------------------
def test_manifest_with_a_bom_latin1_or_binary(tmp_path):
    data = _dataset(tmp_path / "data", n=1)
    text = (data / MANIFEST).read_text(encoding="utf-8")
    (data / MANIFEST).write_text(text, encoding="utf-8-sig")  # as spreadsheets save it
    assert [r.subject for r in read_manifest(data)] == ["s0"]
    (data / MANIFEST).write_bytes(text.encode() + "s\xe9,neutral,img/v0.png,,,u8,1,\n".encode("latin-1"))
    with pytest.raises(DatasetError, match=r"manifest\.csv:3: not UTF-8"):
        read_manifest(data)
    (data / MANIFEST).write_bytes(b"\x00\x01\x02binary\x00")
    with pytest.raises(DatasetError, match=r"manifest\.csv"):
        read_manifest(data)


@pytest.mark.parametrize("argv,name", [
    (["train", "--data", "D", "--out", "O", "--batch-size", "0"], "--batch-size"),
    (["train", "--data", "D", "--out", "O", "--epochs", "-1"], "--epochs"),
    (["eval", "--data", "D", "--batch-size", "0"], "--batch-size"),
])
def test_bad_numbers_are_refused_when_parsing(argv, name, capsys):
    with pytest.raises(SystemExit) as ei:
        main(argv)
    assert ei.value.code == 2
    err = capsys.readouterr().err
    assert name in err and "Traceback" not in err


def test_model_card_of_the_wrong_json_type(tmp_path):
    from dmsl_core.models.weights import WeightsError, save_weights
    from dmsl_core.pipeline import Predictor
    p = Predictor.untrained("dmsl-tiny")
    save_weights(tmp_path, p.boundary, p.landmark, p.config)
    for bad in ("[1, 2]", '"a string"', "3"):
        (tmp_path / "model.json").write_text(bad)
        with pytest.raises(WeightsError, match=r"model\.json: the model card must be a JSON object"):
            Predictor.from_weights(tmp_path, device="cpu")


def _png_header(w: int, h: int) -> bytes:
    ihdr = w.to_bytes(4, "big") + h.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    chunk = lambda t, d: len(d).to_bytes(4, "big") + t + d + zlib.crc32(t + d).to_bytes(4, "big")  # noqa: E731
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_image_over_the_pixel_limit_is_refused(tmp_path, capsys, tiny_weights):
    p = tmp_path / "huge.png"
    p.write_bytes(_png_header(60000, 60000))
    with pytest.raises(ImageReadError, match=r"huge\.png: the image is 60000x60000"):
        read_image(p)
    rc = main(["predict", "--weights", str(tiny_weights), "--device", "cpu", str(p)])
    assert rc == 1    # dmsl predict names and counts a bad file (the batch goes on); rc 1 when any failed
    err = capsys.readouterr().err
    assert "Traceback" not in err
    named = [ln for ln in err.strip().splitlines() if "huge.png" in ln]
    assert len(named) == 1 and "60000x60000" in named[0], err


def test_one_bad_annotation_is_skipped_and_named_in_evaluation(tmp_path, tiny_weights):
    from dmsl_core.evaluation import evaluate_folder
    data = _dataset(tmp_path / "data", n=2)
    pts = _face_points()
    pts[[36, 45]] = np.nan  # no outer eye corners: NME undefined
    write_pts(data / "img/p1.pts", pts)
    assert np.isnan(read_pts(data / "img/p1.pts")[36]).all()
    rep = evaluate_folder(data, str(tiny_weights), spectra=("vis",), device="cpu")
    assert rep["n_images"] == 1
    assert any("v1.png" in s and "eye corner" in s for s in rep["skipped"]), rep["skipped"]


def test_demo_of_an_absurd_size_is_refused(capsys):
    from dmsl_core.sources import SourceError, open_source
    with pytest.raises(SourceError, match="99999x99999"):
        open_source("demo:?size=99999x99999")
    rc = main(["run", "--source", "demo:?size=99999x99999", "--weights", "untrained:dmsl-tiny", "--max-frames", "1"])
    assert rc == 2
    _one_error_line(capsys.readouterr().err, "99999x99999")


# ---- 7. SIGTERM and kill -9 of a real `dmsl run` ----------------------------------------------------
def _start_run(out: Path, extra: list[str]) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "dmsl_core.cli", "run", "--source",
                             "demo:?size=96x80&realtime=1&fps=50&cycle=4", "--weights", "untrained:dmsl-tiny",
                             "--threads", "1", "--quiet", *extra], cwd=str(out), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_rows(part: Path, n: int, proc: subprocess.Popen, timeout: float = 90.0) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if part.exists() and len(part.read_bytes().splitlines()) >= n:
            return
        if proc.poll() is not None:
            pytest.fail(f"dmsl run ended early: {proc.stderr.read()}")
        time.sleep(0.2)
    proc.kill()
    pytest.fail(f"{part} did not reach {n} rows")


def test_sigterm_to_run_publishes_valid_exports(tmp_path):
    proc = _start_run(tmp_path, ["--csv", "o.csv", "--json", "o.jsonl", "--video", "o.avi"])
    try:
        _wait_rows(tmp_path / "o.csv.part", 4, proc)  # the header and 3 rows reached the disk
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert not list(tmp_path.glob("*.part*"))
    rows = list(csv.reader(open(tmp_path / "o.csv", newline="")))[1:]
    assert len(rows) >= 3
    lines = (tmp_path / "o.jsonl").read_text().splitlines()
    assert all(json.loads(ln) for ln in lines) and len(lines) >= len(rows)
    cap = cv2.VideoCapture(str(tmp_path / "o.avi"))
    assert cap.isOpened() and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) >= len(rows)
    cap.release()


def test_kill_9_keeps_the_partial_export_and_the_next_run_keeps_it_aside(tmp_path, caplog):
    proc = _start_run(tmp_path, ["--csv", "o.csv"])
    try:
        _wait_rows(tmp_path / "o.csv.part", 3, proc)
        proc.kill()  # SIGKILL: nothing can be cleaned up
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    crashed = (tmp_path / "o.csv.part").read_bytes()
    assert len(crashed.splitlines()) >= 3 and not (tmp_path / "o.csv").exists()
    with caplog.at_level(logging.WARNING):
        rc = main(_run_demo(["--csv", str(tmp_path / "o.csv")], frames=2))
    assert rc == 0
    assert (tmp_path / "o.csv.part.1").read_bytes() == crashed  # the crash's rows are kept, not overwritten
    assert "o.csv.part.1" in caplog.text
    assert len((tmp_path / "o.csv").read_text().splitlines()) == 3


# ---- 8. sources that give nothing, block, freeze, or hold one bad image -----------------------------
def _video_without_frames(path: Path) -> Path:
    """A real AVI whose header promises 5 frames and whose frame data is zeroed (decodes to nothing)."""
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for i in range(5):
        w.write(np.full((48, 64, 3), 40 * i, np.uint8))
    w.release()
    b = bytearray(path.read_bytes())
    i = b.find(b"movi")
    b[i + 16: i + 16 + (len(b) - i) // 2] = bytes((len(b) - i) // 2)
    path.write_bytes(bytes(b))
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened() and cap.get(cv2.CAP_PROP_FRAME_COUNT) == 5 and not cap.read()[0]  # the fault is real
    cap.release()
    return path


def test_a_video_that_decodes_to_no_frame_is_an_error(tmp_path, capsys):
    from dmsl_core.sources import SourceError, open_source
    bad = _video_without_frames(tmp_path / "empty.avi")
    with pytest.raises(SourceError, match=r"empty\.avi: the video decodes to no frame"):
        open_source(str(bad))
    rc = main(["run", "--source", str(bad), "--weights", "untrained:dmsl-tiny", "--csv", str(tmp_path / "o.csv")])
    assert rc != 0
    _one_error_line(capsys.readouterr().err, "empty.avi", "decodes to no frame")
    assert not (tmp_path / "o.csv").exists()


def test_a_fifo_given_as_a_video_is_refused_at_once_and_video_io_goes_on(tmp_path, capsys):
    # OpenCV's FFmpeg backend blocks in open() on a FIFO with no writer while holding a process-wide
    # lock, and re-opens it after a writer comes and goes: an open abandoned at the timeout left every
    # later cv2.VideoWriter / VideoCapture of the process hanging. A FIFO is therefore never opened.
    from dmsl_core.sources import SourceError, open_source
    fifo = tmp_path / "live.mp4"
    os.mkfifo(fifo)
    with pytest.raises(SourceError, match=r"live\.mp4: is a FIFO \(named pipe\), not a video file"):
        open_source(f"video:{fifo}?open_timeout=0.5")
    rc = main(["run", "--source", f"{fifo}?open_timeout=0.5", "--weights", "untrained:dmsl-tiny"])
    assert rc == 2
    _one_error_line(capsys.readouterr().err, "live.mp4", "is a FIFO")
    from dmsl_core.sources.video import VideoReader
    with pytest.raises(SourceError, match="is a folder, not a video file"):
        VideoReader(tmp_path)
    _video_without_frames(tmp_path / "after.avi")   # writes and reads a real video: did not hang


def test_a_camera_whose_open_blocks_times_out():
    from dmsl_core.sources import SourceError, open_source
    with pytest.raises(SourceError, match=r"camera 0 \(fake\): opening did not finish within 0\.3 s"):
        open_source("fake:lepton?hang_open=1&open_timeout=0.3")
    with pytest.raises(SourceError, match="opening did not finish"):
        open_source("cams:fake:cam?realtime=0+fake:lepton?hang_open=1&open_timeout=0.3")


def test_a_frozen_thermal_camera_in_a_pair_is_noticed(caplog):
    from dmsl_core.sources import open_source
    uri = "cams:fake:cam?fps=100&frames=60&size=64x48+fake:lepton?fps=100&freeze=5&stale=0.2"
    pairs = []
    with caplog.at_level(logging.WARNING), open_source(uri) as src:
        with contextlib.suppress(Exception):   # the visible camera "disconnects" after 60 frames
            for p in src:
                pairs.append(p)
        assert src.info["th_stale"] is True and src.stale_events == 1
    assert len(pairs) == 60
    paired = [p.meta["th_index"] for p in pairs if p.th is not None]
    assert paired and max(paired) <= 4  # only the frames before the freeze were ever paired
    unpaired = [p for p in pairs if p.th is None]
    assert unpaired and pairs[-1].th is None and pairs[-1].meta["th_stale_s"] > 0.2
    assert "fake:lepton" in caplog.text and "no new frame" in caplog.text


@pytest.mark.parametrize("layout", ["dataset", "images", "folders"])
def test_one_unreadable_image_is_skipped_counted_and_named_in_run(tmp_path, capsys, layout):
    if layout == "dataset":
        root = _dataset(tmp_path / "data", n=3)
        bad = root / "img/v1.png"
    else:
        root = tmp_path / "data"
        sub = (root / "vis") if layout == "folders" else root
        sub.mkdir(parents=True)
        rng = np.random.default_rng(0)
        for i in range(3):
            write_image(sub / f"f{i}.png", rng.integers(60, 200, (64, 64, 3), dtype=np.uint8))
            if layout == "folders":
                (root / "th").mkdir(exist_ok=True)
                write_image(root / "th" / f"f{i}.png", rng.integers(60, 200, (64, 64), dtype=np.uint8))
        bad = sub / "f1.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    rc = main(["run", "--source", str(root), "--weights", "untrained:dmsl-tiny", "--csv", str(tmp_path / "o.csv")])
    err = capsys.readouterr().err
    assert rc == 1 and "Traceback" not in err
    assert [ln for ln in err.splitlines() if "skipped" in ln and bad.name in ln], err
    assert "1 frame(s) skipped" in err
    rows = list(csv.DictReader(open(tmp_path / "o.csv", newline="")))
    assert sorted({r["index"] for r in rows}) == ["0", "2"]  # the run went on past the bad image


# ---- 9. checkpoints: a bad last.pt, a full disk while saving one, NaN weights -----------------------
def _checkpoint(model: str) -> dict:
    from dmsl_core.models import create_models, get_config
    from dmsl_core.training import TrainConfig
    mb, ml = create_models(get_config(model), seed=0)
    return {"phase": 1, "epoch": 0, "boundary": mb.state_dict(), "landmark": ml.state_dict(), "opt": None,
            "best": None, "best_state": None, "config": json.dumps(TrainConfig(model=model).to_dict())}


def test_a_bad_last_pt_is_one_message_naming_it(tmp_path, synth_data, capsys):
    import argparse
    import io

    import torch

    from dmsl_core.training import TrainConfig
    good = io.BytesIO()
    torch.save(_checkpoint("dmsl-tiny"), good)
    other = io.BytesIO()
    torch.save(_checkpoint("dmsl-compact"), other)
    wrong_shape = _checkpoint("dmsl-compact")
    wrong_shape["config"] = json.dumps(TrainConfig(model="dmsl-tiny").to_dict())
    shaped = io.BytesIO()
    torch.save(wrong_shape, shaped)
    code = io.BytesIO()
    torch.save({"phase": argparse.Namespace(a=1)}, code)   # unpickling it would run code
    keys = io.BytesIO()
    torch.save({"weights": torch.zeros(2)}, keys)
    cases = {"pickle": (code.getvalue(), "needs code"), "empty": (b"", "empty"),
             "keys": (keys.getvalue(), "not a DMSL training checkpoint"),
             "cut": (good.getvalue()[: len(good.getvalue()) // 2], "unreadable"),
             "config": (other.getvalue(), "'dmsl-compact'"), "shape": (shaped.getvalue(), "do not fit")}
    for name, (data, why) in cases.items():
        run = tmp_path / name
        (run / "checkpoints").mkdir(parents=True)
        cfg = TrainConfig(model="dmsl-tiny", data=str(synth_data), epochs=1, head_epochs=1, batch_size=8,
                          device="cpu", augment=False)
        (run / "config.json").write_text(json.dumps(cfg.to_dict()))
        (run / "checkpoints/last.pt").write_bytes(data)
        rc = main(["train", "--data", str(synth_data), "--config", "dmsl-tiny", "--out", str(run), "--resume",
                   "--epochs", "1", "--head-epochs", "1", "--batch-size", "8", "--device", "cpu", "--no-augment"])
        assert rc == 2, name
        _one_error_line(capsys.readouterr().err, str(run / "checkpoints/last.pt"), why)
        assert (run / "checkpoints/last.pt").read_bytes() == data  # left as it was, for the user to look at


def test_full_disk_while_saving_a_checkpoint_names_it_and_keeps_the_previous(small_fs):
    import torch

    from dmsl_core.training import _atomic_torch_save
    d = small_fs("2m")
    ck = _checkpoint("dmsl-tiny")
    _atomic_torch_save({"phase": 0, "epoch": 0, "small": torch.zeros(4)}, d / "last.pt")
    before = (d / "last.pt").read_bytes()
    _fill(d, leave=64000)
    with pytest.raises(OSError) as ei:
        _atomic_torch_save(ck, d / "last.pt")
    from dmsl_core.cli import describe_error
    assert "last.pt" in describe_error(ei.value)
    assert (d / "last.pt").read_bytes() == before
    assert sorted(p.name for p in d.iterdir()) == ["filler", "last.pt"]


def test_weights_full_of_nan_are_refused_naming_the_file(tmp_path, capsys):
    import torch

    from dmsl_core.models.weights import WeightsError, save_weights
    from dmsl_core.pipeline import Predictor
    p = Predictor.untrained("dmsl-tiny")
    with torch.no_grad():
        for m in (p.boundary, p.landmark):
            for t in m.parameters():
                t.fill_(float("nan"))
    save_weights(tmp_path, p.boundary, p.landmark, p.config)
    with pytest.raises(WeightsError, match=r"model\.safetensors: \d+ of \d+ tensors hold NaN"):
        Predictor.from_weights(tmp_path, device="cpu")
    img = tmp_path / "face.png"
    write_image(img, np.full((64, 64, 3), 100, np.uint8))
    rc = main(["predict", "--weights", str(tmp_path), "--device", "cpu", str(img)])
    assert rc == 2
    _one_error_line(capsys.readouterr().err, "model.safetensors", "NaN")


# ---- 10. dmsl annotate writes as it goes: a kill keeps the pairs done --------------------------------
_SLOW_ANNOTATE = """
import sys, time
sys.path.insert(0, {repo!r})
from tests.core.test_faults import FakeDetector
from dmsl_core.annotate import annotate_dataset

class Slow(FakeDetector):
    def predict(self, images, boxes=None, refine=True):
        with open({calls!r}, "a") as fh:   # one line per pair the first pass reaches
            fh.write("call\\n")
        time.sleep(0.4)
        return super().predict(images)

annotate_dataset({data!r}, source="dlib", dark="skip", dlib=Slow())
"""


def test_annotate_killed_during_the_first_pass_keeps_the_work_and_resumes(tmp_path):
    from dmsl_core.annotate import annotate_dataset
    data = _dataset(tmp_path / "data", n=8)
    for p in (data / "img").glob("p*.pts"):
        p.unlink()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    calls = tmp_path / "calls.txt"
    script = _SLOW_ANNOTATE.format(repo=str(REPO), data=str(data), calls=str(calls))
    proc = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        t0 = time.monotonic()
        while not calls.exists() or len(calls.read_text().splitlines()) < 5:   # the 5th of 8 pairs
            if proc.poll() is not None:
                pytest.fail(f"dmsl annotate ended early: {proc.stderr.read()}")
            if time.monotonic() - t0 > 120:
                pytest.fail("the first pass did not reach the 5th pair")
            time.sleep(0.02)
        proc.kill()   # SIGKILL in the first pass: nothing can be cleaned up
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    done = sorted(p.name for p in (data / "img").glob("p*.pts"))
    assert 3 <= len(done) < 8
    for name in done:   # each file whole (atomic writes), with its origins
        assert read_pts(data / "img" / name).shape == (68, 2)
        assert (data / "img" / name.replace(".pts", ".origin.json")).exists()
    det = FakeDetector()
    rep = annotate_dataset(data, source="dlib", dark="skip", dlib=det)   # the re-run does the rest only
    assert sorted(rep["kept"]) == sorted(f"img/{n}" for n in done)
    assert det.calls == 8 - len(done) and rep["counts"]["written"] == 8 - len(done)
    assert len(list((data / "img").glob("p*.pts"))) == 8


# ---- 11. pixels no landmarks can come from; pairs that cannot share points; odd file names ----------
def test_an_all_nan_thermal_image_gets_no_landmarks(tmp_path, capsys, caplog, tiny_weights):
    from dmsl_core.data.folder import LoadReport
    from dmsl_core.pipeline import Predictor
    nan = np.full((64, 64), np.nan, np.float32)
    np.save(tmp_path / "frame_th.npy", nan)
    pred = Predictor.from_weights(tiny_weights, device="cpu")
    with pytest.raises(ValueError, match="no finite pixel"):
        pred.predict([nan])
    with pytest.raises(ValueError, match="no finite pixel"):
        pred.faces(nan, spectrum="th")
    rc = main(["predict", "--weights", str(tiny_weights), "--device", "cpu", "--detector", "none",
               str(tmp_path / "frame_th.npy")])
    assert rc == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and [ln for ln in err.splitlines() if "frame_th.npy" in ln and "no finite" in ln]
    # a stream: the frame's thermal image is dropped with a warning naming the frame, no points on it
    seq = tmp_path / "seq"
    seq.mkdir()
    np.save(seq / "0001.npy", np.full((64, 64), 30.0, np.float32))
    np.save(seq / "0002.npy", nan)
    from dmsl_core.sources import open_source
    with caplog.at_level(logging.WARNING), open_source(f"video:{seq}?spectrum=th") as src:
        pairs = list(src)
        assert src.info["th_unusable"] == 1
    assert pairs[0].th is not None and pairs[1].th is None and "no finite pixel" in pairs[1].meta["th_problem"]
    assert "frame 1 (0002.npy)" in caplog.text
    # (--faces one: M_b gives frame 0, a flat 30 degC image, its points; the face detector rightly finds no face there)
    rc = main(["run", "--source", f"video:{seq}?spectrum=th", "--weights", str(tiny_weights), "--device", "cpu",
               "--faces", "one", "--csv", str(tmp_path / "o.csv")])
    rows = list(csv.DictReader(open(tmp_path / "o.csv", newline="")))
    by_index = {r["index"]: r for r in rows}
    assert by_index["0"]["x0"] != "" and by_index.get("1", {}).get("x0", "") == ""
    # a dataset: the image is skipped with its name (evaluation and training never see it)
    data = _dataset(tmp_path / "data", n=2)
    np.save(data / "img/t1.npy", nan)
    text = (data / MANIFEST).read_text().replace("img/t1.png", "img/t1.npy")
    (data / MANIFEST).write_text(text)
    rep = LoadReport()
    samples = load_samples(data, ("th",), report=rep)
    assert [Path(s.path).name for s in samples] == ["t0.png"]
    assert any("t1.npy" in m and "no finite pixel" in m for m in rep.skipped), rep.skipped


def test_a_registered_pair_of_two_sizes_is_refused_in_evaluation(tmp_path, tiny_weights):
    from dmsl_core.evaluation import evaluate_folder
    data = _dataset(tmp_path / "data", n=2)
    write_image(data / "img/t1.png", np.full((48, 80), 120, np.uint8))   # registered=1, but 80x48 vs 64x64
    rep = evaluate_folder(data, str(tiny_weights), spectra=("vis", "th"), device="cpu")
    assert rep["n_images"] == 3   # both visible images, the one thermal that fits its points
    msg = [s for s in rep["skipped"] if "t1.png" in s]
    assert len(msg) == 1 and "80x48 against 64x64" in msg[0] and "registered" in msg[0]


def test_a_float_visible_image_is_named_not_counted_as_dark(tmp_path, tiny_weights, capsys):
    from dmsl_core.evaluation import evaluate_folder
    from dmsl_core.sources import open_source
    data = _dataset(tmp_path / "data", n=2)
    np.save(data / "img/v1.npy", np.random.default_rng(0).random((64, 64, 3), dtype=np.float32))  # in [0, 1]
    (data / MANIFEST).write_text((data / MANIFEST).read_text().replace("img/v1.png", "img/v1.npy"))
    rep = evaluate_folder(data, str(tiny_weights), spectra=("vis",), device="cpu")
    assert rep["n_images"] == 1 and rep["dropped_dark"] == 0
    assert any("v1.npy" in s and "float32" in s and "visible" in s for s in rep["skipped"]), rep["skipped"]
    with open_source(f"folder:{data}") as src:   # dmsl run / the app: skipped and named
        assert len(list(src)) == 1 and "v1.npy" in src.skipped[0] and "float32" in src.skipped[0]


def test_file_names_that_are_not_utf8(tmp_path, tiny_weights, capsys):
    from dmsl_core.atomic import atomic_write_text
    folder = tmp_path / "imgs"
    folder.mkdir()
    raw = os.fsencode(folder)
    good, bad = raw + b"/caf\xe9.png", raw + b"/ol\xe9.png"
    with open(good, "wb") as fh:
        fh.write(cv2.imencode(".png", np.full((64, 64, 3), 100, np.uint8))[1].tobytes())
    with open(bad, "wb") as fh:
        fh.write(b"not an image")
    rc = main(["run", "--source", str(folder), "--weights", "untrained:dmsl-tiny", "--csv", str(tmp_path / "o.csv")])
    err = capsys.readouterr().err
    assert rc == 1 and "Traceback" not in err and "codec" not in err
    assert [ln for ln in err.splitlines() if "skipped" in ln and "ol\\udce9.png" in ln], err   # named, escaped
    assert b"caf\xe9.png" in (tmp_path / "o.csv").read_bytes()   # the CSV holds the name's own bytes
    rc = main(["predict", "--weights", str(tiny_weights), "--device", "cpu", "--detector", "none",
               os.fsdecode(good), os.fsdecode(bad)])
    err = capsys.readouterr().err
    assert rc == 1 and "Traceback" not in err and "ol\\udce9.png" in err
    with pytest.raises(ValueError, match=r"m\.csv: cannot be written as utf-8"):
        atomic_write_text(tmp_path / "m.csv", "x," + os.fsdecode(b"caf\xe9.png") + "\n")


# ---- 12. every command: an output that cannot be written is one line naming it ----------------------
def _command(name: str, out: Path, data: Path, weights: Path, image: Path) -> list[str]:
    return {
        "run": _run_demo(["--csv", str(out / "o.csv")], frames=2),
        "train": ["train", "--data", str(data), "--config", "dmsl-tiny", "--out", str(out / "run"), "--epochs", "1",
                  "--head-epochs", "1", "--batch-size", "2", "--device", "cpu", "--no-augment"],
        "eval": ["eval", "--data", str(data), "--weights", str(weights), "--device", "cpu", "--json", str(out / "r.json")],
        "predict": ["predict", "--weights", str(weights), "--device", "cpu", "--detector", "none", str(image),
                    "--csv", str(out / "p.csv")],
        "predict-pts": ["predict", "--weights", str(weights), "--device", "cpu", "--detector", "none", str(image),
                        "--pts-dir", str(out / "pts")],
        "annotate": ["annotate", "--data", str(data), "--report", str(out / "rep.json")],
        "export-onnx": ["export-onnx", "--weights", str(weights), "--out", str(out / "onnx"), "--no-check"],
        "synth": ["synth", "--out", str(out / "syn"), "--subjects", "1", "--size", "64x64"],
        "import": ["import", str(image.parent), str(out / "imported")],
    }[name]


COMMANDS = ["run", "train", "eval", "predict", "predict-pts", "annotate", "export-onnx", "synth", "import"]


@pytest.mark.parametrize("where", ["under_a_file", "read_only"])
@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_names_an_output_it_cannot_write(name, where, tmp_path, small_fs, capsys, tiny_weights):
    if name == "export-onnx":
        pytest.importorskip("onnx", reason="dmsl export-onnx needs the onnx extra")
    data = _dataset(tmp_path / "data", n=2)
    (tmp_path / "pics").mkdir()
    image = tmp_path / "pics" / "face.png"
    write_image(image, np.full((64, 64, 3), 100, np.uint8))
    if where == "under_a_file":
        (tmp_path / "afile").write_text("x")
        out, named = tmp_path / "afile", str(tmp_path / "afile")
    else:
        out = small_fs("64k", ro=True)
        named = str(out)
    before = _tree(data)
    rc = main(_command(name, out, data, tiny_weights, image))
    err = capsys.readouterr().err
    assert rc == 2, err
    _one_error_line(err, named)
    assert _tree(data) == before   # nothing written in the dataset by a command that failed on its output


# ---- the recorder thread (the app's recording): a bounded queue, drops counted, a full disk ---------
class _Gated:
    """The real exports behind a gate: the recorder's thread waits at it (a disk that stalls)."""

    def __init__(self, inner):
        import threading
        self.inner, self.gate, self.writes = inner, threading.Event(), 0

    def write(self, r):
        self.gate.wait(30)
        self.writes += 1
        self.inner.write(r)

    def close(self):
        return self.inner.close()

    def abort(self):
        return self.inner.abort()


def test_recorder_drops_and_counts_what_a_stalled_disk_cannot_take(tmp_path, results):
    import csv as csv_mod
    import time
    from dmsl_core.export import CSVExporter, ExportSet, Recorder
    gated = _Gated(ExportSet([CSVExporter(tmp_path / "o.csv")]))
    rec = Recorder(gated, maxsize=2, drop_when_full=True)
    taken = [rec.write(results[i % len(results)]) for i in range(1)]
    for _ in range(200):                       # the thread has taken the first one and waits at the gate
        if rec.queued == 0:
            break
        time.sleep(0.01)
    taken += [rec.write(results[i % len(results)]) for i in range(9)]
    assert taken == [True, True, True] + [False] * 7 and rec.dropped == 7
    gated.gate.set()
    paths = rec.close()                        # what was queued is written, then published
    assert paths == [tmp_path / "o.csv"] and rec.rows == 3
    rows = list(csv_mod.reader(open(tmp_path / "o.csv")))
    assert len(rows) == 1 + 3
    with pytest.raises(RuntimeError, match="closed"):
        rec.write(results[0])


def test_recorder_for_a_file_waits_for_room_and_writes_every_frame(tmp_path, results):
    import threading
    from dmsl_core.export import CSVExporter, ExportSet, Recorder
    gated = _Gated(ExportSet([CSVExporter(tmp_path / "o.csv")]))
    rec = Recorder(gated, maxsize=2, drop_when_full=False)
    threading.Timer(0.3, gated.gate.set).start()   # the disk comes back while the producer waits
    assert all(rec.write(results[i % len(results)]) for i in range(10))
    rec.close()
    assert rec.rows == 10 and rec.dropped == 0
    assert len((tmp_path / "o.csv").read_text().splitlines()) == 1 + 10


def test_recorder_on_a_full_disk_stops_and_publishes_nothing(small_fs, results):
    from dmsl_core.export import ExportSet, JSONLExporter, Recorder
    d = small_fs("64k")
    rec = Recorder(ExportSet([JSONLExporter(d / "o.jsonl")]), maxsize=8, drop_when_full=True)
    for i in range(4000):
        if not rec.write(results[i % len(results)]) and rec.error is not None:
            break
        if i % 8 == 7:
            import time
            time.sleep(0.002)                  # let the writer keep up: the disk fills, not the queue
    assert rec.error is not None and "No space left" in str(rec.error)
    assert rec.write(results[0]) is False      # stopped: nothing more is taken
    with pytest.raises(OSError):
        rec.close()
    assert not (d / "o.jsonl").exists()        # a cut-off recording is never published
    assert (d / "o.jsonl.part").exists()       # the partial work is kept
