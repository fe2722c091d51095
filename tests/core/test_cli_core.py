import json

import numpy as np

from dmsl_core.cli import main


def test_models_lists_configurations(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "dmsl-paper" in out and "dmsl-compact" in out and "47,948,233" in out


def test_train_eval_predict_on_a_generated_dataset(synth_data, tmp_path, capsys):
    run = tmp_path / "run"
    rc = main(["train", "--data", str(synth_data), "--config", "dmsl-tiny", "--out", str(run), "--epochs", "1",
               "--head-epochs", "1", "--batch-size", "8", "--device", "cpu", "--no-augment"])
    assert rc == 0 and (run / "model.safetensors").exists()
    err = capsys.readouterr().err
    assert "dropped 3 black visible images" in err  # the three subjects' "dark" visible images
    report_path = tmp_path / "report.json"
    assert main(["eval", "--data", str(synth_data), "--weights", str(run), "--json", str(report_path)]) == 0
    rep = json.loads(report_path.read_text())
    for key in ("nme", "per_variation", "ced", "auc_0.08", "failure_rate_0.08", "failure_rate_0.10", "n_images"):
        assert key in rep
    assert set(rep["nme"]) == {"th", "vis", "all"} and rep["n_images"] == 3 * 4 * 2 - 3
    assert set(rep["per_variation"]) == {"neutral", "smile", "yaw_left", "dark"}
    assert rep["per_variation"]["dark"]["vis"] is None and rep["per_variation"]["dark"]["th"] > 0
    imgs = sorted((synth_data / "th8").glob("*.png"))[:2]
    out = tmp_path / "pred.json"
    assert main(["predict", "--weights", str(run / "model.safetensors"), *map(str, imgs), "--detector", "none",
                 "--json", str(out)]) == 0
    preds = json.loads(out.read_text())
    assert len(preds) == 2 and len(preds[0]["landmarks"]) == 68 and len(preds[0]["boundary"]) == 4
    assert preds[0]["image"] == str(imgs[0])


def test_errors_are_one_clear_line(tmp_path, capsys):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"junk")
    img = tmp_path / "x.png"
    import cv2
    cv2.imwrite(str(img), np.zeros((10, 10), np.uint8))
    assert main(["predict", "--weights", str(bad), str(img)]) == 2
    err = capsys.readouterr().err
    assert "bad.safetensors" in err and "not a valid safetensors" in err and "Traceback" not in err
    assert main(["eval", "--data", str(tmp_path), "--weights", str(bad)]) == 2
    assert "no manifest.csv" in capsys.readouterr().err
