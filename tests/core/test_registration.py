"""Registration: homography from points, from a checkerboard / ArUco target (thermal inverted), JSON."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from dmsl_core.registration import (Calibration, CalibrationError, calibrate_from_images, calibrate_from_points,
                                    homography_for_pair, map_points, read_point_pairs)

H_TRUE = np.array([[1.08, 0.02, -14.0], [-0.01, 1.05, 9.0], [1e-5, 0.0, 1.0]])


def checkerboard(cols: int = 7, rows: int = 5, sq: int = 22, size=(320, 240)) -> np.ndarray:
    """A board with (cols x rows) inner corners, dark squares on white, as RGB."""
    img = np.full((size[1], size[0]), 255, np.uint8)
    x0, y0 = 50, 40
    for r in range(rows + 1):
        for c in range(cols + 1):
            if (r + c) % 2 == 0:
                img[y0 + r * sq:y0 + (r + 1) * sq, x0 + c * sq:x0 + (c + 1) * sq] = 0
    return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)


def thermal_view(vis: np.ndarray, H_th_to_vis: np.ndarray, size=(300, 220)) -> np.ndarray:
    """What the thermal sensor sees: the visible scene warped into thermal pixels, contrast inverted, 16-bit."""
    g = cv2.cvtColor(vis, cv2.COLOR_RGB2GRAY)
    th = cv2.warpPerspective(g, np.linalg.inv(H_th_to_vis), size, flags=cv2.INTER_LINEAR, borderValue=255)
    return ((255 - th).astype(np.uint16) * 40 + 29000).astype(np.uint16)


def test_points_exact_and_json_roundtrip(tmp_path):
    rng = np.random.default_rng(0)
    th = rng.uniform(0, 200, (12, 2))
    vis = map_points(th, H_TRUE)
    cal = calibrate_from_points(vis, th, rig="duo")
    assert cal.rms_px < 1e-4 and cal.n_points == 12
    assert np.allclose(cal.th_to_vis(th), vis, atol=1e-6)
    assert np.allclose(cal.vis_to_th(vis), th, atol=1e-6)
    p = cal.save(tmp_path / "rig.json")
    d = json.loads(p.read_text())
    assert d["format"] == "dmsl-calibration" and d["rig"] == "duo" and d["rms_px"] is not None
    back = Calibration.load(p)
    assert np.allclose(back.H_th_to_vis, cal.H_th_to_vis, atol=1e-8)


def test_points_ransac_drops_outliers_and_errors():
    rng = np.random.default_rng(1)
    th = rng.uniform(0, 200, (30, 2))
    vis = map_points(th, H_TRUE) + rng.normal(0, 0.2, (30, 2))
    vis[:3] += 40  # three bad clicks
    cal = calibrate_from_points(vis, th, ransac=True)
    assert cal.n_points == 27 and cal.rms_px < 0.5
    with pytest.raises(CalibrationError, match="at least 4"):
        calibrate_from_points(vis[:3], th[:3])
    with pytest.raises(CalibrationError, match="visible points"):
        calibrate_from_points(vis[:5], th[:6])


def test_read_point_pairs_csv_and_bad_files(tmp_path):
    f = tmp_path / "pts.csv"
    f.write_text("th_x,th_y,vis_x,vis_y\n1,2,3,4\n5,6,7,8\n")
    v, t = read_point_pairs(f)
    assert v.tolist() == [[3, 4], [7, 8]] and t.tolist() == [[1, 2], [5, 6]]
    bad = tmp_path / "bad.json"
    bad.write_text("{oops")
    with pytest.raises(CalibrationError, match="bad.json"):
        read_point_pairs(bad)
    with pytest.raises(CalibrationError, match="bad.json"):
        Calibration.load(bad)
    nonsq = tmp_path / "ns.json"
    nonsq.write_text(json.dumps({"H_th_to_vis": [[1, 0], [0, 1]]}))
    with pytest.raises(CalibrationError, match="3x3"):
        Calibration.load(nonsq)


def test_checkerboard_with_inverted_thermal():
    vis = checkerboard()
    th = thermal_view(vis, H_TRUE)
    cal, used = calibrate_from_images([(vis, th)], "checkerboard:7x5")
    assert used == 1 and cal.n_points >= 33  # of 35 corners; RANSAC drops a mislocated one
    assert cal.rms_px < 0.5, cal.summary()
    probe = np.array([[60.0, 50.0], [200.0, 150.0], [120.0, 90.0]])
    assert np.abs(cal.th_to_vis(probe) - map_points(probe, H_TRUE)).max() < 1.0
    with pytest.raises(CalibrationError, match="not found"):
        calibrate_from_images([(vis, np.zeros_like(th))], "checkerboard:7x5")


@pytest.mark.skipif(not hasattr(cv2, "aruco"), reason="OpenCV without aruco")
def test_aruco_board():
    d = cv2.aruco.getPredefinedDictionary(cv2.aruco.DICT_4X4_50)
    canvas = np.full((240, 320), 255, np.uint8)
    for k, (x, y) in enumerate([(30, 30), (200, 30), (30, 140), (200, 140)]):
        canvas[y:y + 70, x:x + 70] = cv2.aruco.generateImageMarker(d, k, 70)
    vis = cv2.cvtColor(canvas, cv2.COLOR_GRAY2RGB)
    th = thermal_view(vis, H_TRUE)
    cal, _ = calibrate_from_images([(vis, th)], "aruco")
    assert cal.n_points >= 12 and cal.rms_px < 1.0


def test_calibrate_cli_and_source_option(tmp_path):
    from dmsl_core.cli import main
    from dmsl_core.data.imageio import write_image
    from dmsl_core.sources import open_source
    vis = checkerboard()
    write_image(tmp_path / "v.png", vis)
    write_image(tmp_path / "t.png", thermal_view(vis, H_TRUE))
    out = tmp_path / "rig.json"
    assert main(["calibrate", "--vis", str(tmp_path / "v.png"), "--th", str(tmp_path / "t.png"),
                 "--target", "checkerboard:7x5", "--out", str(out)]) == 0
    cal = Calibration.load(out)
    assert cal.rms_px < 0.5
    with open_source(f"demo:?size=64x48&frames=1&realtime=0&calib={out}") as src:
        p = next(iter(src))
    assert np.allclose(homography_for_pair(p), cal.H_th_to_vis)
    assert main(["calibrate", "--vis", str(tmp_path / "v.png"), "--th", str(tmp_path / "v.png"),
                 "--target", "checkerboard:9x9", "--out", str(tmp_path / "x.json")]) == 2
