"""Annotation formats: round trips, conventions, the 54->68 map, bad files."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from dmsl_core.data import formats as F
from dmsl_core.data.pts import AnnotationError


@pytest.fixture
def pts68() -> np.ndarray:
    rng = np.random.default_rng(7)
    p = rng.uniform(2, 120, (68, 2)).round(3)
    p[[5, 61]] = np.nan
    return p


def _same(a: np.ndarray, b: np.ndarray, atol: float = 1e-3) -> None:
    assert a.shape == b.shape
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
    np.testing.assert_allclose(a[np.isfinite(a)], b[np.isfinite(b)], atol=atol)


@pytest.mark.parametrize("ext", [".pts", ".ljson", ".json", ".csv"])
def test_round_trip_single_face(tmp_path, pts68, ext):
    path = tmp_path / f"face{ext}"
    F.write_landmarks(path, pts68, image="face.png", image_size=(128, 128))
    _same(F.read_landmarks(path), pts68)
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]  # atomic: no temp left


def test_round_trip_dlib_xml_integer_and_float(tmp_path, pts68):
    ints = np.round(pts68)
    path = tmp_path / "a.xml"
    F.write_landmarks(path, ints)
    _same(F.read_landmarks(path), ints, atol=0)
    F.write_landmarks(path, pts68)  # dlib stores integers: rounded
    _same(F.read_landmarks(path), ints, atol=0)
    F.write_dlib_xml(path, {"a.png": pts68}, integer=False)
    _same(F.read_landmarks(path), pts68)


def test_dlib_xml_multi_image_with_boxes(tmp_path, pts68):
    other = np.round(pts68[::-1] + 1)
    box = np.array([3.0, 4.0, 100.0, 90.0])
    path = tmp_path / "training.xml"
    F.write_dlib_xml(path, {"img/a.jpg": F.FaceAnnotation(np.round(pts68), box=box), "img/b.jpg": other})
    got = F.read_dlib_xml(path)
    assert list(got) == ["img/a.jpg", "img/b.jpg"]
    _same(got["img/a.jpg"].points, np.round(pts68), atol=0)
    np.testing.assert_array_equal(got["img/a.jpg"].box, box)
    assert got["img/b.jpg"].box is not None
    # single-image dispatch needs an image name; matched by path, name or stem
    with pytest.raises(AnnotationError, match="2 images"):
        F.read_landmarks(path)
    _same(F.read_landmarks(path, image="b.jpg"), other, atol=0)
    _same(F.read_landmarks(path, image="img/a.jpg"), np.round(pts68), atol=0)
    with pytest.raises(AnnotationError, match="no landmarks for image"):
        F.read_landmarks(path, image="zzz.png")


def test_dlib_xml_is_zero_based_as_written_by_imglab(tmp_path):
    # what imglab writes (ISO-8859-1 header, ignore boxes, parts named 00..)
    xml = """<?xml version='1.0' encoding='ISO-8859-1'?>
<?xml-stylesheet type='text/xsl' href='image_metadata_stylesheet.xsl'?>
<dataset><name>x</name><images>
  <image file='2009_004587.jpg'>
    <box top='10' left='20' width='50' height='60' ignore='1'/>
    <box top='74' left='155' width='210' height='211'>
      <part name='00' x='160' y='140'/>
      <part name='36' x='200' y='120'/>
      <part name='67' x='260' y='240'/>
    </box>
  </image>
  <image file='empty.jpg'/>
</images></dataset>"""
    path = tmp_path / "d.xml"
    path.write_bytes(xml.encode("latin-1"))
    got = F.read_dlib_xml(path)
    assert list(got) == ["2009_004587.jpg"]  # no box -> left out; ignored box skipped
    p = got["2009_004587.jpg"].points
    assert p.shape == (68, 2)
    assert tuple(p[0]) == (160, 140) and tuple(p[36]) == (200, 120)  # no shift
    assert np.isnan(p[1]).all()
    np.testing.assert_array_equal(got["2009_004587.jpg"].box, [155, 74, 210, 211])


def test_ljson_stores_y_x_zero_based(tmp_path):
    path = tmp_path / "a.ljson"
    F.write_ljson(path, np.array([[10.0, 20.0], [np.nan, np.nan], [3.5, 4.5]]))
    doc = json.loads(path.read_text())
    assert doc["version"] == 2
    assert doc["landmarks"]["points"] == [[20.0, 10.0], [None, None], [4.5, 3.5]]
    # menpo v1 and v3 layouts are read too
    v1 = {"version": 1, "groups": [{"label": "a", "landmarks": [{"point": [1, 2]}, {"point": [None, None]}]},
                                   {"label": "b", "landmarks": [{"point": [5, 6]}]}]}
    (tmp_path / "v1.ljson").write_text(json.dumps(v1))
    _same(F.read_ljson(tmp_path / "v1.ljson"), np.array([[2, 1], [np.nan, np.nan], [6, 5.0]]))
    v3 = {"version": 3, "groups": {"bbox": {"landmarks": {"points": [[0, 0], [1, 1]]}},
                                   "face": {"landmarks": {"points": [[1, 2]] * 68}}}}
    (tmp_path / "v3.ljson").write_text(json.dumps(v3))
    assert F.read_ljson(tmp_path / "v3.ljson").shape == (68, 2)
    assert F.read_ljson(tmp_path / "v3.ljson", group="bbox").shape == (2, 2)


def test_ljson_68_has_ibug_labels(tmp_path, pts68):
    path = tmp_path / "a.ljson"
    F.write_ljson(path, pts68)
    doc = json.loads(path.read_text())
    labels = {d["label"]: d["mask"] for d in doc["labels"]}
    assert labels["jaw"] == list(range(17)) and labels["inner_lips"] == list(range(60, 68))
    assert [59, 48] in doc["landmarks"]["connectivity"]


def test_labelme_pixel_offset_and_index_base(tmp_path):
    # LabelMe canvas: pixel (i, j) spans [i, i+1); a click on its centre records i + 0.5
    shapes = [{"label": str(i + 1), "points": [[i + 10.5, 2 * i + 0.5]], "shape_type": "point"} for i in range(54)]
    shapes.append({"label": "face", "points": [[5.5, 0.5], [70.5, 120.5]], "shape_type": "rectangle"})
    doc = {"version": "5.0.1", "shapes": shapes, "imagePath": "x.png", "imageHeight": 128, "imageWidth": 96}
    path = tmp_path / "x.json"
    path.write_text(json.dumps(doc))
    ann = F.read_labelme_annotation(path)
    assert ann.points.shape == (54, 2)  # labels 1..54 -> 1-based, 54 points
    np.testing.assert_allclose(ann.points[0], [10, 0])
    np.testing.assert_allclose(ann.points[53], [63, 106])
    np.testing.assert_allclose(ann.box, [5, 0, 65, 120])
    assert ann.image == "x.png" and ann.image_size == (96, 128)
    assert F.detect_format(path) == "labelme"
    # labels like "pt_0" -> 0-based
    doc["shapes"] = [{"label": f"pt_{i}", "points": [[1.5, 1.5]], "shape_type": "point"} for i in range(68)]
    path.write_text(json.dumps(doc))
    assert F.read_labelme(path).shape == (68, 2)


def test_labelme_bad_files(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"shapes": [{"label": "3", "points": [[1, 1]], "shape_type": "point"},
                                           {"label": "3", "points": [[2, 2]], "shape_type": "point"}]}))
    with pytest.raises(AnnotationError, match="more than once"):
        F.read_labelme(path)
    path.write_text(json.dumps({"shapes": [{"label": "3", "points": [[1, 1]], "shape_type": "point"},
                                           {"label": "nose", "points": [[2, 2]], "shape_type": "point"}]}))
    with pytest.raises(AnnotationError, match="bad.json.*numbered"):
        F.read_labelme(path)
    path.write_text(json.dumps({"shapes": []}))
    with pytest.raises(AnnotationError, match="no point shapes"):
        F.read_labelme(path)


def test_csv_many_rows_header_and_no_header(tmp_path, pts68):
    rows = {f"s{i:02d}/img_{i}.png": pts68 + i for i in range(5)}
    path = tmp_path / "all.csv"
    F.write_csv_landmarks(path, rows)
    got = F.read_csv_landmarks(path)
    assert list(got) == list(rows)
    for k in rows:
        _same(got[k], rows[k])
    assert path.read_text().splitlines()[0].startswith("image,x0,y0,x1,y1")
    # no header, 3 points, a missing one
    (tmp_path / "nh.csv").write_text("a.png,1,2,,,5,6\nb.png,7,8,9,10,nan,nan\n")
    got = F.read_csv_landmarks(tmp_path / "nh.csv")
    _same(got["a.png"], np.array([[1, 2], [np.nan, np.nan], [5, 6.0]]))
    _same(F.read_landmarks(tmp_path / "nh.csv", image="b"), np.array([[7, 8], [9, 10], [np.nan, np.nan]]))
    (tmp_path / "bad.csv").write_text("image,x0,y0\na.png,1,zz\n")
    with pytest.raises(AnnotationError, match=r"bad.csv:2: 'zz' is not a number"):
        F.read_csv_landmarks(tmp_path / "bad.csv")


def test_map_54_to_68_and_back():
    p54 = np.arange(108, dtype=float).reshape(54, 2)
    p68 = F.map_54_to_68(p54)
    assert p68.shape == (68, 2)
    np.testing.assert_array_equal(p68[:48], p54[:48])
    for i54, i68 in zip(range(48, 54), (48, 54, 51, 62, 66, 57)):
        np.testing.assert_array_equal(p68[i68], p54[i54])
    missing = sorted(set(range(48, 68)) - {48, 54, 51, 62, 66, 57})
    assert np.isnan(p68[missing]).all() and len(missing) == 14
    assert np.isfinite(p68).all(axis=1).sum() == 54
    np.testing.assert_array_equal(F.map_68_to_54(p68), p54)
    assert F.to_68(p54, "x").shape == (68, 2)
    with pytest.raises(AnnotationError, match="x: 10 points"):
        F.to_68(np.zeros((10, 2)), "x")
    with pytest.raises(ValueError):
        F.map_54_to_68(np.zeros((68, 2)))


def test_54_points_through_labelme_and_pts(tmp_path):
    p54 = np.random.default_rng(1).uniform(0, 50, (54, 2))
    F.write_labelme(tmp_path / "a.json", p54, image="a.png", image_size=(64, 64))
    back = F.read_landmarks(tmp_path / "a.json")
    _same(back, p54, atol=1e-9)
    F.write_landmarks(tmp_path / "a.pts", F.map_54_to_68(back))
    _same(F.map_68_to_54(F.read_landmarks(tmp_path / "a.pts")), p54)


@pytest.mark.parametrize("name,content,match", [
    ("a.ljson", "{not json", "not valid JSON"),
    ("a.ljson", '{"version": 2, "landmarks": {"points": [[1, 2, 3]]}}', "expected 2-D"),
    ("a.json", '{"foo": 1}', "neither LabelMe"),
    ("a.xml", "<dataset><images><image file='x'>", "not valid XML"),
    ("a.xml", "<notdlib/>", "not a dlib image dataset"),
    ("a.xml", "<dataset><images><image file='x'><box top='1' left='1' width='2' height='2'>"
              "<part name='nose' x='1' y='1'/></box></image></images></dataset>", "integer name"),
    ("a.pts", "version: 1\nn_points: 3\n{\n1 2\n}\n", "header says 3"),
    ("a.txt", "1 2", "unknown annotation format"),
    ("a.csv", "", "empty CSV"),
])
def test_bad_files_name_file_and_problem(tmp_path, name, content, match):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(AnnotationError, match=match) as ei:
        F.read_landmarks(path)
    assert str(path) in str(ei.value)


def test_missing_file_and_write_errors(tmp_path):
    with pytest.raises(AnnotationError, match="no such file"):
        F.read_landmarks(tmp_path / "nope.pts")
    with pytest.raises(ValueError, match="unknown annotation format"):
        F.write_landmarks(tmp_path / "a.txt", np.zeros((68, 2)))
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        F.write_landmarks(tmp_path / "a.ljson", np.zeros((68, 3)))
