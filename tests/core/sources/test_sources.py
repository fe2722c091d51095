"""Frame sources: pairing of real video files, splits, sequences, folders, fake cameras, demo, URIs."""
from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from dmsl_core.data.folder import PairRecord, write_manifest
from dmsl_core.data.imageio import write_image
from dmsl_core.data.pts import write_pts
from dmsl_core.sources import (SourceError, decode_tc001, lepton_to_celsius, open_source, parse_uri, script_state,
                               strip_lepton_telemetry, tc001_to_celsius)
from dmsl_core.sources.cameras import as_u16, encode_lepton, encode_tc001

W, H = 64, 48


def level(i: int) -> int:
    return 20 + 9 * i


def write_video(path: Path, n: int, fps: float, frame_fn) -> Path:
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, frame_fn(0).shape[1::-1])
    assert w.isOpened()
    for i in range(n):
        w.write(frame_fn(i))
    w.release()
    return path


def flat(i: int, w: int = W, h: int = H) -> np.ndarray:
    return np.full((h, w, 3), level(i), np.uint8)


def decoded_index(img: np.ndarray) -> int:
    return int(round((float(np.mean(img)) - 20) / 9))


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("videos")
    out = {
        "vis": write_video(d / "vis.mp4", 20, 10.0, flat),        # 2.0 s
        "th": write_video(d / "th_IR.mp4", 12, 5.0, flat),        # 2.4 s, other rate and length
        "sbs": write_video(d / "duo.mp4", 6, 10.0, lambda i: np.hstack([flat(i), np.full((H, W, 3), 230 - 9 * i, np.uint8)])),
    }
    tif = d / "tiffs"
    tif.mkdir()
    for j in range(8):
        write_image(tif / f"frame_{j}.tiff", np.full((H, W), 30000 + 100 * j, np.uint16))
    out["tiffs"] = tif
    return out


# ---- URIs -----------------------------------------------------------------------------------
def test_parse_uri_forms():
    u = parse_uri("demo")
    assert (u.scheme, u.target, u.options) == ("demo", "", {})
    u = parse_uri("demo://?fps=10&size=64x48")
    assert u.scheme == "demo" and u.opt_float("fps") == 10 and u.opt_size("size") == (64, 48)
    u = parse_uri("pair:/a/v.mp4|/a/t.mp4?sync=time&offset=120ms")
    assert u.target == "/a/v.mp4|/a/t.mp4" and u.options == {"sync": "time", "offset": "120ms"}
    assert parse_uri(r"C:\videos\x.mp4").scheme == "path"
    assert parse_uri("cams:cam:0?size=640x480+lepton:1").target == "cam:0?size=640x480+lepton:1"
    with pytest.raises(SourceError, match="not a number"):
        parse_uri("demo:?fps=fast").opt_float("fps")


def test_missing_file_names_it(tmp_path):
    with pytest.raises(SourceError, match="nope.mp4"):
        open_source(f"video:{tmp_path / 'nope.mp4'}")
    with pytest.raises(SourceError, match="nope"):
        open_source(str(tmp_path / "nope"))
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all")
    with pytest.raises(SourceError, match="bad.mp4"):
        open_source(str(bad))


# ---- pairs of video files --------------------------------------------------------------------
def test_pair_ratio_sync(videos):
    with open_source(f"pair:{videos['vis']}|{videos['th']}") as src:
        info = src.info
        pairs = list(src)
    assert info["vis_frames"] == 20 and info["th_frames"] == 12
    assert "round(12 * i / 20)" in info["pairing"]
    # flirpy's rule; the last frames clamp to the last thermal frame
    assert len(pairs) == 20
    for p in pairs:
        j = min(round(12 * p.index / 20), 11)
        assert p.meta["frame_index"] == {"vis": p.index, "th": j}
        assert decoded_index(p.vis) == p.index
        assert p.th.ndim == 2 and p.th.dtype == np.uint8
        assert decoded_index(p.th) == j
        assert p.t == pytest.approx(p.index / 10.0)
        assert p.meta["files"] == {"vis": "vis.mp4", "th": "th_IR.mp4"}


def test_pair_time_and_offset_sync(videos):
    with open_source(f"pair:{videos['vis']}|{videos['th']}?sync=time") as src:
        got = [(p.index, decoded_index(p.th)) for p in src]
        assert "time" in src.info["pairing"]
    assert got == [(i, round(i / 10 * 5)) for i in range(20)]  # differs from the ratio rule (0.6 i)
    with open_source(f"pair:{videos['vis']}|{videos['th']}?sync=time&offset=400ms") as src:
        got = [p.meta["frame_index"]["th"] for p in src]
    assert got == [round((i / 10 + 0.4) * 5) for i in range(20)]
    with open_source(f"pair:{videos['vis']}|{videos['th']}?sync=offset&offset=-2") as src:
        pairs = list(src)
    assert [p.th is None for p in pairs[:2]] == [True, True]
    assert all(decoded_index(p.th) == p.index - 2 for p in pairs[2:14])
    assert all(p.th is None for p in pairs[14:])
    with pytest.raises(SourceError, match="sync"):
        open_source(f"pair:{videos['vis']}|{videos['th']}?sync=magic")


def test_pair_with_16bit_tiff_sequence(videos):
    with open_source(f"pair:{videos['vis']}|{videos['tiffs']}?th_format=u16_ck") as src:
        pairs = list(src)
        assert src.info["radiometric"]
    assert len(pairs) == 20
    for p in pairs:
        j = min(round(8 * p.index / 20), 7)
        assert p.th.dtype == np.uint16 and p.th.shape == (H, W)
        assert int(p.th[0, 0]) == 30000 + 100 * j
        assert p.th_celsius[0, 0] == pytest.approx((30000 + 100 * j) / 100 - 273.15, abs=1e-3)
        assert p.meta["files"]["th"] == f"frame_{j}.tiff"
    with open_source(f"pair:{videos['vis']}|{videos['tiffs']}") as src:  # default: raw counts
        p = next(iter(src))
        assert p.th.dtype == np.uint16 and p.th_celsius is None


# ---- split, single, sequences -----------------------------------------------------------------
@pytest.mark.parametrize("layout", ["lr", "rl"])
def test_side_by_side_split(videos, layout):
    with open_source(f"sbs:{videos['sbs']}?layout={layout}") as src:
        pairs = list(src)
    assert len(pairs) == 6
    for p in pairs:
        assert p.vis.shape == (H, W, 3) and p.th.shape == (H, W)
        left, right = level(p.index), 230 - 9 * p.index
        v, t = (left, right) if layout == "lr" else (right, left)
        assert abs(float(p.vis.mean()) - v) < 5 and abs(float(p.th.mean()) - t) < 5  # codec rounding


def test_top_bottom_split_function():
    from dmsl_core.sources import split_frame
    f = np.zeros((40, 30, 3), np.uint8)
    f[20:] = 200
    v, t = split_frame(f, "tb")
    assert v.shape == t.shape == (20, 30, 3) and v.max() == 0 and t.min() == 200
    v, t = split_frame(f, "bt")
    assert v.min() == 200


def test_single_spectrum_video_and_guess(videos):
    with open_source(f"video:{videos['th']}?spectrum=th") as src:
        p = next(iter(src))
        assert p.vis is None and p.th.ndim == 2 and src.info["spectra"] == ("th",)
    with open_source(str(videos["vis"])) as src:  # a bare path, visible by name
        ps = list(src)
        assert len(ps) == 20 and ps[0].th is None and ps[0].vis.shape == (H, W, 3)
    with open_source(str(videos["th"])) as src:  # "_IR" in the name -> thermal
        assert next(iter(src)).vis is None


def test_tiff_and_npy_sequences(videos, tmp_path):
    with open_source(str(videos["tiffs"])) as src:  # guessed: 16-bit grey -> thermal
        ps = list(src)
        assert len(ps) == 8 and ps[0].th.dtype == np.uint16 and ps[0].vis is None
    d = tmp_path / "npy"
    d.mkdir()
    for i in range(3):
        np.save(d / f"t{i}.npy", np.full((H, W), 30.0 + i, np.float32))
    with open_source(f"folder:{d}") as src:
        ps = list(src)
        assert src.info["radiometric"]
    assert [float(p.th_celsius[0, 0]) for p in ps] == [30.0, 31.0, 32.0]


# ---- folders ------------------------------------------------------------------------------------
def test_dataset_folder(tmp_path):
    pts = np.stack([np.linspace(10, 50, 68), np.linspace(5, 40, 68)], axis=1)
    recs = []
    for i in range(2):
        write_image(tmp_path / f"v{i}.png", np.full((H, W, 3), 100, np.uint8))
        write_image(tmp_path / f"t{i}.png", np.full((H, W), 30000 + i, np.uint16))
        write_pts(tmp_path / f"p{i}.pts", pts + i)
        recs.append(PairRecord(subject=f"s{i}", variation="neutral", vis=f"v{i}.png", th=f"t{i}.png",
                               landmarks=f"p{i}.pts", th_format="u16_ck"))
    write_manifest(tmp_path, recs)
    with open_source(str(tmp_path)) as src:
        assert src.info["kind"] == "dataset"
        ps = list(src)
    assert len(ps) == 2
    assert np.allclose(ps[1].meta["landmarks_gt"], pts + 1, atol=1e-3)
    assert ps[1].th_celsius[0, 0] == pytest.approx(30001 / 100 - 273.15, abs=1e-3)
    assert ps[0].registered and ps[0].meta["files"]["vis"] == "v0.png"


def test_plain_paired_folders(tmp_path):
    (tmp_path / "visible").mkdir()
    (tmp_path / "thermal").mkdir()
    for i in (1, 2, 10):
        write_image(tmp_path / "visible" / f"{i:d}_vis.png", np.full((H, W, 3), i, np.uint8))
        np.save(tmp_path / "thermal" / f"{i:d}_th.npy", np.full((H, W), 30.0 + i, np.float32))
    with open_source(f"folder:{tmp_path}") as src:
        assert "3 of 3 matched" in src.info["pairing"]
        ps = list(src)
    assert [int(p.vis[0, 0, 0]) for p in ps] == [1, 2, 10]  # natural order
    assert [float(p.th_celsius[0, 0]) for p in ps] == [31.0, 32.0, 40.0]
    with open_source(f"folder:{tmp_path / 'visible'}|{tmp_path / 'thermal'}?pair=order") as src:
        assert len(list(src)) == 3


# ---- cameras ------------------------------------------------------------------------------------
def test_raw_to_celsius_conversions():
    assert lepton_to_celsius(np.array([30000], np.uint16))[0] == pytest.approx(26.85, abs=1e-3)
    assert tc001_to_celsius(np.array([19200], np.uint16))[0] == pytest.approx(26.85, abs=1e-3)
    raw = np.arange(122 * 160, dtype=np.uint16).reshape(122, 160)
    assert strip_lepton_telemetry(raw).shape == (120, 160)
    assert np.array_equal(strip_lepton_telemetry(raw, "header"), raw[2:])
    assert strip_lepton_telemetry(raw[:120]).shape == (120, 160)
    flat_bytes = raw[:120].astype("<u2").tobytes()
    assert np.array_equal(as_u16(np.frombuffer(flat_bytes, np.uint8).reshape(1, -1), (120, 160)), raw[:120])
    c = np.full((192, 256), 36.6, np.float32)
    c[10, 20] = 20.0
    pic, raw16, cel = decode_tc001(encode_tc001(c))
    assert pic.shape == (192, 256, 3) and raw16.dtype == np.uint16
    assert np.allclose(cel, c, atol=1 / 64)
    assert np.allclose(lepton_to_celsius(strip_lepton_telemetry(encode_lepton(c[:120, :160]))), c[:120, :160], atol=0.01)


@pytest.mark.parametrize("kind,shape,radiometric", [("lepton", (120, 160), True), ("tc001", (192, 256), True),
                                                    ("boson", (256, 320), False)])
def test_fake_thermal_cores(kind, shape, radiometric):
    with open_source(f"fake:{kind}?fps=500&frames=3") as src:
        assert src.info["live"] and src.info["backend"] == "fake" and src.info["radiometric"] == radiometric
        it = iter(src)
        p = next(it)
    assert p.vis is None and p.th.shape == shape and p.th.dtype == np.uint16
    if radiometric:
        assert 15 < float(np.median(p.th_celsius)) < 40 and p.th_celsius.shape == shape
    else:
        assert p.th_celsius is None


def test_fake_y16_camera_through_opencv_decoder_path():
    """A raw Y16 Lepton frame with telemetry goes through the same decode as a real camera."""
    from dmsl_core.sources import CameraMode, CameraSource, FakeBackend
    be = FakeBackend()
    src = CameraSource("0", CameraMode(decoder="lepton", raw=True, fourcc="Y16 ", options={"realtime": "0"}), backend=be)
    p = next(iter(src))
    src.close()
    truth = be.scene.pair(0).th_celsius
    assert np.allclose(p.th_celsius, truth, atol=0.006)


def test_boson_tlinear_and_webcam():
    with open_source("fake:boson?tlinear=1&realtime=0") as src:
        assert 15 < float(np.median(next(iter(src)).th_celsius)) < 40
    with open_source("fake:cam?realtime=0&size=96x80") as src:
        p = next(iter(src))
        assert p.vis.shape[2] == 3 and p.th is None


def test_missing_camera_fails_fast():
    t = time.monotonic()
    with pytest.raises(SourceError, match="camera 99"):
        open_source("cam:99")
    with pytest.raises(SourceError, match="camera 3"):
        open_source("lepton:3?backend=fake&fail_open=1")
    assert time.monotonic() - t < 10
    with pytest.raises(SourceError, match="backend"):
        open_source("cam:0?backend=genicam")


def test_camera_disappearing_ends_with_error():
    with open_source("fake:cam?frames=4&realtime=0&size=64x48") as src:
        got = []
        with pytest.raises(SourceError, match="stopped delivering"):
            for p in src:
                got.append(p.index)
    assert got == [0, 1, 2, 3]


def test_two_cameras_as_one_pair():
    with open_source("cams:fake:cam?fps=200&frames=6&size=96x80+fake:lepton?fps=400") as src:
        assert src.info["spectra"] == ("vis", "th")
        pairs = []
        with pytest.raises(SourceError):
            for p in src:
                pairs.append(p)
    assert len(pairs) == 6 and pairs[0].vis.shape == (80, 96, 3)
    assert any(p.th is not None and p.th_celsius is not None for p in pairs)


# ---- demo ---------------------------------------------------------------------------------------
def test_demo_source_frames_and_script():
    with open_source("demo:?size=96x80&frames=3&realtime=0&cycle=4") as src:
        assert src.info["radiometric"] and not src.info["live"]
        ps = list(src)
    assert len(ps) == 3 and ps[0].vis.shape == (80, 96, 3) and ps[0].th.dtype == np.uint16
    assert ps[0].meta["landmarks_gt"].shape == (68, 2)
    assert np.allclose(ps[0].th_celsius, ps[0].th / 100.0 - 273.15, atol=0.006)
    assert script_state(0.0, 20).light == 1.0 and script_state(10.0, 20).light == 0.0
    assert script_state(17.0, 20).light == 1.0


def test_demo_is_paced_in_realtime():
    with open_source("demo:?size=64x48&frames=6&fps=20") as src:
        assert src.info["live"]
        t = time.monotonic()
        idx = [p.index for p in src]
        dt = time.monotonic() - t
    # frame i is delivered at i / fps (indices are skipped if rendering cannot keep up)
    assert idx == sorted(set(idx)) and idx[-1] >= 3
    assert dt >= idx[-1] / 20 * 0.9


def test_demo_rig_homography():
    from dmsl_core.registration import map_points
    with open_source("demo:?size=96x80&frames=1&realtime=0&rig=1") as src:
        p = next(iter(src))
    assert not p.registered and p.homography_th_to_vis is not None
    assert np.allclose(map_points(p.meta["landmarks_gt_th"], p.homography_th_to_vis), p.meta["landmarks_gt"], atol=1e-6)


def test_single_image_files_are_guessed(tmp_path):
    write_image(tmp_path / "face.png", np.full((H, W, 3), 90, np.uint8))
    np.save(tmp_path / "temp.npy", np.full((H, W), 33.0, np.float32))
    with open_source(str(tmp_path / "face.png")) as src:
        p = next(iter(src))
        assert p.vis.shape == (H, W, 3) and p.th is None and src.info["frames"] == 1
    with open_source(str(tmp_path / "temp.npy")) as src:
        p = next(iter(src))
        assert p.vis is None and float(p.th_celsius[0, 0]) == 33.0


def test_demo_without_the_face_renderer(monkeypatch):
    """The built-in drawing stands in when dmsl_core.data.synth is unavailable."""
    import dmsl_core.sources.demo as demo
    monkeypatch.setattr(demo, "_render_synth", lambda *a, **k: demo._render_simple(*a[1:], **k))
    with open_source("demo:?size=96x80&frames=1&realtime=0&rig=1") as src:
        p = next(iter(src))
    assert p.vis.shape == (80, 96, 3) and p.meta["landmarks_gt"].shape == (68, 2)
    assert p.homography_th_to_vis is not None and 30 < float(p.th_celsius.max()) < 40


def test_two_real_cameras_missing_fail_fast():
    with pytest.raises(SourceError, match="camera"):
        open_source("cams:90+91")
    with pytest.raises(SourceError, match="cams:VIS"):
        open_source("cams:90")


def test_source_info_is_a_json_dict_with_typed_accessors():
    import json

    from dmsl_core.sources import SourceInfo, open_source
    with open_source("demo:?size=64x48&frames=3&realtime=0") as src:
        info = src.info
    assert isinstance(info, SourceInfo) and isinstance(info, dict)
    assert (info.kind, info.fps, info.frames, info.live, info.spectra) == ("demo", 25.0, 3, False, ("vis", "th"))
    assert info.radiometric and not info.still and info.on_demand is False
    assert json.loads(json.dumps(info)) == json.loads(json.dumps(dict(info)))   # written into exports as it is
    blank = SourceInfo()
    assert (blank.kind, blank.fps, blank.frames, blank.live, blank.spectra, blank.still) == ("", None, None, False, (), False)
    assert SourceInfo(kind="folders").still and SourceInfo(kind="video", frames=1).still
