"""Sharded `dmsl run` under `torchrun --nproc-per-node 2` (CPU, gloo) against one process on the same
frames: the CSV and JSONL exports must be byte-for-byte the same (timings left out with --no-timings)."""
from __future__ import annotations

import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from dmsl_core.cli import main
from tests.core.torchrun_util import REPO, free_port, torchrun_env
from dmsl_core.distributed import torchrun_command
from dmsl_core.pipeline import Predictor
from dmsl_core.sources import SourceError, open_source
from dmsl_core.stream import StreamConfig, StreamProcessor

TIMEOUT = 180
COMMON = ["--weights", "untrained:dmsl-tiny", "--threads", "1", "--quiet", "--no-timings", "--device", "cpu"]




def torchrun_run(args: list[str], ok: bool = True) -> subprocess.CompletedProcess:
    argv = torchrun_command(args, 2, command="run", rdzv_endpoint=f"localhost:{free_port()}")
    p = subprocess.run(argv, cwd=REPO, env=torchrun_env(), capture_output=True, text=True, timeout=TIMEOUT)
    if ok:
        assert p.returncode == 0, f"torchrun failed ({p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-5000:]}"
    return p


def one_process(args: list[str]) -> None:
    import torch
    n = torch.get_num_threads()
    try:
        assert main(["run", *args]) == 0
    finally:
        torch.set_num_threads(n)


@pytest.fixture(scope="module")
def folder40(tmp_path_factory) -> Path:
    """4 subjects x 10 variations = 40 generated visible + thermal pairs, 160x128."""
    from dmsl_core.data.synth import generate_dataset
    from dmsl_core.data.synth.dataset import VARIATIONS
    out = tmp_path_factory.mktemp("shard") / "data"
    generate_dataset(out, subjects=4, seed=3, size=(160, 128), variations=list(VARIATIONS)[:10])
    return out


@pytest.fixture(scope="module")
def sbs_video(tmp_path_factory) -> Path:
    """16 frames of the demo (light fading) as one side-by-side Motion-JPEG video, 8 fps."""
    from dmsl_core.sources.demo import DemoScene
    path = tmp_path_factory.mktemp("shardv") / "sbs.avi"
    scene = DemoScene(size=(160, 128), fps=8, cycle=2.0, seed=1)
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 8.0, (320, 128))
    for i in range(16):
        p = scene.pair(i)
        g = np.clip((p.th_celsius - 20) / 20 * 255, 0, 255).astype(np.uint8)
        w.write(cv2.cvtColor(np.hstack([p.vis, cv2.cvtColor(g, cv2.COLOR_GRAY2RGB)]), cv2.COLOR_RGB2BGR))
    w.release()
    return path


def _compare(tmp_path: Path, source: str, opts: list[str], shard_opts: list[str]) -> str:
    one, two = tmp_path / "one", tmp_path / "two"
    one_process(["--source", source, *COMMON, *opts, "--csv", str(one / "o.csv"), "--json", str(one / "o.jsonl")])
    p = torchrun_run(["--source", source, *COMMON, *opts, *shard_opts,
                      "--csv", str(two / "o.csv"), "--json", str(two / "o.jsonl")])
    a, b = (one / "o.csv").read_bytes(), (two / "o.csv").read_bytes()
    assert a.count(b"\n") > 8
    assert a == b, "sharded CSV differs from the one-process CSV"
    assert (one / "o.jsonl").read_bytes() == (two / "o.jsonl").read_bytes(), "sharded JSONL differs"
    assert sorted(x.name for x in two.iterdir()) == ["o.csv", "o.jsonl"], "part files left behind"
    return p.stderr


# ----------------------------------------------------------------------------- in process
def test_state_handover_continues_exactly(folder40):
    """A processor given another's state at frame k produces what the first one produces from k on."""
    pred = Predictor.untrained("dmsl-tiny", seed=0)
    cfg = dict(mode="auto", smoothing=True, reuse_box=True)
    with open_source(f"folder:{folder40}") as src:
        pairs = [p for _, p in zip(range(8), src)]
    a = StreamProcessor(pred, StreamConfig(**cfg))
    ref = [a.process(p).landmarks for p in pairs]
    b = StreamProcessor(pred, StreamConfig(**cfg))
    for p in pairs[:4]:
        b.process(p)
    fresh = StreamProcessor(pred, StreamConfig(**cfg))
    assert fresh.state_fingerprint() != b.state_fingerprint()
    fresh.set_state(b.get_state())
    assert fresh.state_fingerprint() == b.state_fingerprint()
    for p, want in zip(pairs[4:], ref[4:]):
        got = fresh.process(p).landmarks
        assert got.keys() == want.keys()
        for s in want:
            np.testing.assert_array_equal(got[s], want[s])


def test_start_at_skips_frames_and_keeps_their_indices(folder40, sbs_video):
    for uri in (f"folder:{folder40}", f"sbs:{sbs_video}"):
        with open_source(uri) as src:
            full = [p for _, p in zip(range(8), src)]
        with open_source(uri) as src:
            src.start_at(5)
            part = [p for _, p in zip(range(3), src)]
        assert [p.index for p in part] == [5, 6, 7]
        for p, q in zip(part, full[5:]):
            assert p.t == q.t
            np.testing.assert_array_equal(p.vis, q.vis)
    with open_source("demo:?size=64x48&frames=12&realtime=0") as src:
        with pytest.raises(SourceError, match="demo source cannot start at frame 3"):
            src.start_at(3)


def test_sharded_run_refuses_overlay_video_and_bench(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")   # checked before joining a process group
    assert main(["run", "--source", "x", *COMMON, "--video", str(tmp_path / "o.mp4")]) == 2
    err = capsys.readouterr().err
    assert f"--video {tmp_path / 'o.mp4'}: the overlay video is not written under torchrun" in err
    assert main(["run", "--source", "x", *COMMON, "--bench"]) == 2
    assert "--bench measures one process" in capsys.readouterr().err


# ----------------------------------------------------------------------------- under torchrun
def test_folder_sharded_equals_one_process_after_a_rerun_that_converges(folder40, tmp_path):
    """No warm-up: rank 1 starts from a fresh state, rank 0 re-runs frames from 20 until the
    fingerprints agree (the selector's smoothed mean settles), then rank 1's rows are used."""
    err = _compare(tmp_path, f"folder:{folder40}", ["--mode", "thermal"], ["--shard-warmup", "0"])
    assert "shard at frame 20" in err and "(then it agreed)" in err, err[-2000:]


def test_folder_sharded_equals_one_process_with_every_stateful_option(folder40, tmp_path):
    """Auto switching, One Euro smoothing and face-box reuse all on, 40 frames, the default warm-up
    (30 frames for a folder): the warmed-up state agrees at the boundary, nothing is re-run."""
    err = _compare(tmp_path, f"folder:{folder40}", ["--mode", "auto", "--smooth", "--reuse-box"], [])
    assert "40 frames on 2 processes" in err and "warm-up 30 frames" in err, err[-2000:]
    assert "rank 0 re-ran 0 frame(s)" in err, err[-2000:]


def test_video_sharded_equals_one_process(sbs_video, tmp_path):
    """A side-by-side video (smoothing on by default for video), both spectra, box reuse, --max-frames 13
    (odd shares), a warm-up too short for the state to agree: rank 0 re-runs rank 1's share."""
    err = _compare(tmp_path, f"sbs:{sbs_video}", ["--max-frames", "13", "--mode", "both", "--reuse-box"],
                   ["--shard-warmup", "4"])
    assert "13 frames on 2 processes" in err and "shard at frame 7" in err, err[-2000:]


def test_live_source_is_refused_under_torchrun(tmp_path):
    p = torchrun_run(["--source", "fake:cam?frames=5&fps=200&size=64x48", *COMMON, "--csv", str(tmp_path / "o.csv")],
                     ok=False)
    assert p.returncode != 0
    assert "fake:cam?frames=5&fps=200&size=64x48: a live camera source cannot be sharded under torchrun" in p.stderr
    assert not (tmp_path / "o.csv").exists()


def test_video_sharded_with_every_face_tracking_equals_one_process(sbs_video, tmp_path):
    """The face detector + tracker's state (tracks, ids, the next id, frames since detection) hands
    over like the rest: two processes write the same rows as one."""
    err = _compare(tmp_path, f"sbs:{sbs_video}", ["--max-frames", "13", "--mode", "both", "--faces", "every",
                                                  "--detect-every", "3"], ["--shard-warmup", "4"])
    assert "13 frames on 2 processes" in err and "shard at frame 7" in err, err[-2000:]
    assert "faces: every face" in err
    import csv
    rows = list(csv.DictReader(open(tmp_path / "two" / "o.csv")))
    assert rows and all(r["n_faces"] != "" for r in rows)      # the tracker's columns are filled
