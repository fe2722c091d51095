"""Every face in a video: detection + tracking (dmsl_core.tracking) through the StreamProcessor, the
exports and ``dmsl run``: three faces walking keep their ids, a frame with none says so, a detection
never replaces a good track, a track no detection confirms is ended, and the state hands over."""
from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from dmsl_core.detection import Detection
from dmsl_core.frames import FramePair
from dmsl_core.landmarks import boundary_from_points
from dmsl_core.stream import StreamConfig, StreamProcessor
from dmsl_core.tracking import FaceTracker, TrackerConfig, box_iou

skimage_data = pytest.importorskip("skimage.data")
pytest.importorskip("dlib")

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "assets" / "models" / "dmsl-default"
HEAD = (slice(20, 270), slice(90, 340))          # the astronaut's head in scikit-image's photo
FACE_CENTRE, FACE_SIDE = np.array([133.0, 105.0]), 100.0
# three heads in their own lanes: (scale, start x, start y, dx, dy per frame)
WALKERS = ((0.9, 10, 20, 3, 1), (0.55, 420, 40, -3, 1), (0.38, 260, 330, 2, -1))


def walk(n: int, gone: range = range(0)):
    """Frames of the three heads walking over a noisy grey background; ``gone``: frames without them."""
    head = skimage_data.astronaut()[HEAD]
    heads = [cv2.resize(head, None, fx=s, fy=s, interpolation=cv2.INTER_AREA) for s, *_ in WALKERS]
    bg = np.random.default_rng(0).normal(110, 6, (512, 640, 3)).clip(0, 255).astype(np.uint8)
    for k in range(n):
        img, centres = bg.copy(), []
        if k not in gone:
            for (s, x, y, dx, dy), h in zip(WALKERS, heads):
                X, Y = x + dx * k, y + dy * k
                img[Y:Y + h.shape[0], X:X + h.shape[1]] = h
                centres.append((np.array([X, Y]) + FACE_CENTRE * s, FACE_SIDE * s))
        yield img, centres


@pytest.fixture(scope="module")
def predictor():
    import torch
    torch.set_num_threads(1)
    from dmsl_core.pipeline import Predictor
    if not (SHIPPED / "model.safetensors").exists():
        pytest.skip("the shipped model is needed: the points must sit on the faces")
    return Predictor.from_weights(str(SHIPPED), device="cpu")


class CountingDetector:
    def __init__(self, inner):
        self.inner, self.calls = inner, 0

    def __call__(self, image, spectrum=None):
        self.calls += 1
        return self.inner(image, spectrum)


def test_three_walking_faces_keep_their_ids_and_the_detector_runs_every_n_frames(predictor):
    from dmsl_core.detection import get_detector
    det = CountingDetector(get_detector("auto"))
    tr = FaceTracker(predictor, det, "vis", TrackerConfig(detect_every=10))
    owner: dict[int, int] = {}                   # walker -> track id
    for k, (img, centres) in enumerate(walk(30)):
        faces = tr.step(img, k)
        assert len(faces) == 3, (k, [f.to_dict()["box"] for f in faces])
        assert len({f.id for f in faces}) == 3
        for w, (c, side) in enumerate(centres):
            near = [f for f in faces if np.linalg.norm(f.landmarks.mean(axis=0) - c) < 0.3 * side]
            assert len(near) == 1, (k, w)
            assert owner.setdefault(w, near[0].id) == near[0].id, f"frame {k}: walker {w} changed id"
            assert (near[0].detected is True) == (k == 0)
    assert sorted(owner.values()) == [1, 2, 3]
    assert det.calls == 3                        # frames 0, 10, 20


def test_no_face_frames_give_an_empty_list_and_faces_that_return_get_new_ids(predictor):
    """Heads gone for 20 frames (more than max_gap) come back under new ids; gone for 6, a head that
    returns on (or near) its last box gets its id back, and no id ever goes to another face."""
    from dmsl_core.detection import get_detector
    tr = FaceTracker(predictor, get_detector("auto"), "vis", TrackerConfig(detect_every=2, max_unconfirmed=1))
    seen = []
    for k, (img, _centres) in enumerate(walk(30, gone=range(4, 24))):
        seen.append({f.id for f in tr.step(img, k)})
    assert seen[0] == {1, 2, 3}
    assert set() in seen[4:24]                   # the heads left: no face, said as an empty list
    assert seen[-1] and min(seen[-1]) > 3        # back after long: new faces, new ids
    tr = FaceTracker(predictor, get_detector("auto"), "vis", TrackerConfig(detect_every=2, max_unconfirmed=1))
    seen = []
    for k, (img, _centres) in enumerate(walk(16, gone=range(4, 10))):
        seen.append([f.id for f in tr.step(img, k)])
    assert sorted(seen[0]) == [1, 2, 3] and [] in seen[4:10]
    back = seen[-1]
    assert len(back) == 3 and len(set(back)) == 3    # three faces, three different ids
    assert set(back) & {1, 2, 3}                     # at least one came back under its own id


def test_a_detection_never_replaces_a_good_track(predictor):
    """After the first frame the detector returns a box shifted by a third of the face: the track
    keeps the box of its own landmarks, and keeps its id."""
    img, centres = next(walk(1))
    from dmsl_core.detection import get_detector
    true = get_detector("auto")(img, "vis")
    assert len(true) == 3
    calls = {"n": 0}

    def shifted(image, spectrum=None):
        calls["n"] += 1
        if calls["n"] == 1:
            return true
        return [Detection(box=d.box + np.array([d.box[2] / 3, 0, 0, 0]), score=d.score) for d in true]

    tr = FaceTracker(predictor, shifted, "vis", TrackerConfig(detect_every=1))
    first = {f.id: f for f in tr.step(img, 0)}
    for k in range(1, 4):
        faces = tr.step(img, k)
        assert {f.id for f in faces} == set(first)
        for f in faces:
            prev = first[f.id]
            np.testing.assert_allclose(f.box, boundary_from_points(prev.landmarks))   # its own box, not the detector's
            assert box_iou(boundary_from_points(f.landmarks), boundary_from_points(prev.landmarks)) > 0.8
            first[f.id] = f
    assert calls["n"] == 4


def test_a_track_no_detection_confirms_is_ended(predictor):
    """A false detection on the background starts a track; the detector never sees it again, so it
    ends after max_unconfirmed detection rounds."""
    img = np.random.default_rng(1).normal(110, 6, (512, 640, 3)).clip(0, 255).astype(np.uint8)
    calls = {"n": 0}

    def once(image, spectrum=None):
        calls["n"] += 1
        return [Detection(box=np.array([200.0, 150.0, 120.0, 120.0]), score=0.5)] if calls["n"] == 1 else []

    # the landmark stage's confidence rejects the points M_l puts on the noise: no track at all
    assert predictor.quality is not None
    tr = FaceTracker(predictor, once, "vis", TrackerConfig(detect_every=3, max_unconfirmed=2))
    assert [len(tr.step(img, k)) for k in range(4)] == [0, 0, 0, 0] and calls["n"] == 4
    # without it (a model with no quality network) the unconfirmed rounds are what ends the track
    calls["n"] = 0
    quality, predictor.quality = predictor.quality, None
    try:
        tr = FaceTracker(predictor, once, "vis", TrackerConfig(detect_every=3, max_unconfirmed=2))
        counts = [len(tr.step(img, k)) for k in range(12)]
        faces_seen = tr.step(img, 12)
    finally:
        predictor.quality = quality
    assert counts[0] == 1
    assert counts[-1] == 0
    # rounds at frames 3 and 6 miss it (unconfirmed 1, 2), the round at 9 ends it
    assert counts[:9] == [1] * 9 and counts[9:] == [0, 0, 0], counts
    assert faces_seen == []


def test_stream_processor_every_face_exports_and_state_handover(predictor, tmp_path):
    from dmsl_core.export import CSVExporter, JSONLExporter, csv_header
    frames = list(walk(14, gone=range(10, 14)))
    # detections at frames 0, 5, 10; the one at 10 finds nobody and ends the tracks at once
    cfg = dict(mode="visible", detector="auto", detect_every=5, smoothing=True,
               tracker=TrackerConfig(max_unconfirmed=0))
    proc = StreamProcessor(predictor, StreamConfig(**cfg))
    csv_path, jl = tmp_path / "out.csv", tmp_path / "out.jsonl"
    cw, jw = CSVExporter(csv_path), JSONLExporter(jl)
    results = []
    state_at = {}
    for k, (img, _) in enumerate(frames):
        if k == 7:
            state_at[7] = proc.get_state()
        r = proc.process(FramePair(vis=img, th=None, t=k / 25, index=k))
        results.append(r)
        cw.write(r)
        jw.write(r)
    cw.close()
    jw.close()
    r0 = results[0]
    assert r0.tracked and len(r0.faces["vis"]) == 3 and not r0.no_face("vis")
    assert r0.primary_ids["vis"] in {f.id for f in r0.faces["vis"]}
    np.testing.assert_allclose(r0.landmarks["vis"], r0.primary["vis"].landmarks)
    assert results[-1].no_face("vis") and "vis" not in results[-1].landmarks
    rows = list(csv.DictReader(open(csv_path)))
    assert list(rows[0]) == csv_header()
    assert len(rows) == 10 * 3 + 4                        # a row per face, one row per face-less frame
    assert {r["face_id"] for r in rows if r["index"] == "0"} == {"1", "2", "3"}
    assert [r["n_faces"] for r in rows if r["index"] == "13"] == ["0"] and rows[-1]["x0"] == ""
    lines = [json.loads(x) for x in open(jl)]
    assert [f["id"] for f in lines[0]["faces"]["vis"]] == [f.id for f in r0.faces["vis"]]
    assert lines[-1]["faces"] == {"vis": []}
    # a second processor continued from frame 7's state gives the same points (sharded runs)
    other = StreamProcessor(predictor, StreamConfig(**cfg))
    other.set_state(state_at[7])
    for k in range(7, 11):
        r = other.process(FramePair(vis=frames[k][0], th=None, t=k / 25, index=k))
        assert {f.id for f in r.faces["vis"]} == {f.id for f in results[k].faces["vis"]}
        for f, g in zip(sorted(r.faces["vis"], key=lambda f: f.id), sorted(results[k].faces["vis"], key=lambda f: f.id)):
            np.testing.assert_allclose(f.landmarks, g.landmarks, atol=1e-9)


def test_dmsl_run_faces_every_on_a_video_writes_ids_and_refuses_bad_options(tmp_path):
    if not (SHIPPED / "model.safetensors").exists():
        pytest.skip("the shipped model is needed")
    video = tmp_path / "walk.avi"
    w = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (640, 512))
    for img, _ in walk(12):
        w.write(cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    w.release()
    out = tmp_path / "faces.csv"
    env = {"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    cmd = [sys.executable, "-m", "dmsl_core.cli", "run", "--source", str(video), "--csv", str(out),
           "--threads", "1", "--quiet", "--mode", "visible"]
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert "faces: every face (detector auto, every 10 frames + tracking)" in p.stderr
    rows = list(csv.DictReader(open(out)))
    assert len(rows) == 12 * 3 and {r["n_faces"] for r in rows} == {"3"}
    assert {r["face_id"] for r in rows} == {"1", "2", "3"}
    bad = subprocess.run(cmd[:-2] + ["--detect-every", "0"], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120)
    assert bad.returncode != 0 and "--detect-every must be 1 or more frames, got 0" in bad.stderr
    bad = subprocess.run(cmd + ["--detector", "nope"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "unknown face detector 'nope'" in bad.stderr


def test_dropped_frames_keep_the_tracks_and_a_seek_back_starts_again(predictor):
    """A live source drops frames (the indices jump by a few): the faces keep their ids and no
    extra detection runs; a frame before the last one (a seek) starts again with new ids."""
    from dmsl_core.detection import get_detector
    det = CountingDetector(get_detector("auto"))
    tr = FaceTracker(predictor, det, "vis", TrackerConfig(detect_every=10))
    frames = list(walk(13))
    for k in (0, 3, 6, 9, 12):                      # every third frame reaches the pipeline
        faces = tr.step(frames[k][0], k)
        assert {f.id for f in faces} == {1, 2, 3}, k
    assert det.calls == 1
    faces = tr.step(frames[2][0], 2)                # back in time
    assert det.calls == 2 and {f.id for f in faces} == {4, 5, 6}


def test_async_detection_does_not_hold_up_the_frames(predictor):
    """Live sources: a detection round runs on the detector's own thread while the tracks go on, and
    its result joins the frame on which it is ready (the faces keep their ids)."""
    import threading
    import time
    from dmsl_core.detection import get_detector
    inner = get_detector("auto")
    gate = threading.Event()
    calls = {"n": 0, "threads": set()}

    def slow(image, spectrum=None):
        calls["n"] += 1
        calls["threads"].add(threading.current_thread().name)
        if calls["n"] > 1:
            gate.wait(10)                       # the second round waits until the test lets it go
        return inner(image, spectrum)

    tr = FaceTracker(predictor, slow, "vis", TrackerConfig(detect_every=3, async_detect=True))
    frames = list(walk(12))
    try:
        assert tr.step(frames[0][0], 0) == []                 # the first round runs on the thread
        tr._job.result(timeout=60)
        assert {f.id for f in tr.step(frames[1][0], 1)} == {1, 2, 3}   # its faces join the next frame
        for k in range(2, 6):                                  # the round due at frame 4 is held back
            assert {f.id for f in tr.step(frames[k][0], k)} == {1, 2, 3}, k
        # the frames went on while that round was still waiting at the gate
        assert calls["n"] == 2 and tr._job is not None and not tr._job.done()
        assert any(n.startswith("dmsl-detect-vis") for n in calls["threads"])
        gate.set()
        for _ in range(200):
            if tr._job.done():
                break
            time.sleep(0.05)
        assert {f.id for f in tr.step(frames[6][0], 6)} == {1, 2, 3}
        assert tr._job is None and all(t.unconfirmed == 0 for t in tr.tracks)   # the round confirmed them
    finally:
        gate.set()
        tr.close()


def test_a_live_runner_turns_async_detection_on(predictor):
    from dmsl_core.runner import StreamRunner
    proc = StreamProcessor(predictor, StreamConfig(mode="visible", detector="auto"))
    assert proc.config.async_detect is False
    StreamRunner([], proc, live=False)
    assert proc.config.async_detect is False
    StreamRunner([], proc, live=True)
    assert proc.config.async_detect is True


def test_both_spectra_of_a_registered_pair_share_ids(predictor):
    """One person, one id: in mode both, the thermal face on the visible face's place takes its id
    (the demo's pairs are pixel-registered); ids never collide across the spectra."""
    from dmsl_core.sources.demo import DemoScene
    scene = DemoScene(size=(320, 256), seed=0)
    proc = StreamProcessor(predictor, StreamConfig(mode="both", detector="auto", detect_every=5))
    same = 0
    for k in range(12):
        r = proc.process(scene.pair(k))
        vis, th = r.faces.get("vis") or [], r.faces.get("th") or []
        if vis and th:
            same += {f.id for f in vis} == {f.id for f in th}
            assert r.primary_ids["th"] in {f.id for f in th}
    assert same >= 10, same
    # without a mapping between the images the ids stay apart and never collide
    pairs = [scene.pair(k) for k in range(3)]
    proc = StreamProcessor(predictor, StreamConfig(mode="both", detector="auto"))
    for p in pairs:
        p.registered = False
        p.homography_th_to_vis = None
        r = proc.process(p)
    assert r.faces["vis"] and r.faces["th"]
    assert not ({f.id for f in r.faces["vis"]} & {f.id for f in r.faces["th"]})


def test_the_person_keeps_its_id_when_the_selector_switches_spectrum(predictor):
    """Mode auto runs one spectrum at a time; when it switches (the demo's light fades), the face in
    the new spectrum takes the id the same person had in the other one a frame before."""
    from dmsl_core.sources.demo import DemoScene
    scene = DemoScene(size=(320, 256), fps=25, cycle=4.0, seed=0)
    proc = StreamProcessor(predictor, StreamConfig(mode="auto", detector="auto"))
    seen = []
    for k in range(100):
        r = proc.process(scene.pair(k))
        seen.append((r.chosen, r.primary_ids.get(r.chosen)))
    switches = [k for k in range(1, len(seen)) if seen[k][0] != seen[k - 1][0]]
    assert switches, seen                                   # the light went down: thermal was chosen
    for k in switches:
        before, after = seen[k - 1][1], seen[k][1]
        if before is not None and after is not None:
            assert before == after, (k, seen[k - 3:k + 3])
    assert any(seen[k - 1][1] is not None and seen[k][1] is not None for k in switches)


def test_the_id_survives_the_switch_in_a_live_stream_that_drops_frames(predictor):
    """As the live window runs it: detection on its own thread (the new spectrum's first round comes a
    frame late) and the latest frame only (every 3rd frame reaches the pipeline). The person still
    keeps one id through the switch."""
    import time
    from dmsl_core.sources.demo import DemoScene
    scene = DemoScene(size=(320, 256), fps=25, cycle=4.0, seed=0)
    proc = StreamProcessor(predictor, StreamConfig(mode="auto", detector="auto", async_detect=True))
    seen = []
    try:
        for k in range(0, 150, 3):
            r = proc.process(scene.pair(k))
            seen.append((r.chosen, r.primary_ids.get(r.chosen)))
            for tr in proc._trackers.values():         # a live frame interval: the round finishes
                if tr._job is not None:
                    tr._job.result(timeout=60)
            time.sleep(0.001)
    finally:
        proc.close()
    ids = {i for _, i in seen if i is not None}
    assert {c for c, _ in seen} == {"vis", "th"}, seen      # the light went down and came back
    assert len(ids) == 1, str(seen)
