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


def test_train_from_a_job_file_with_a_flag_over_it(synth_data, tmp_path, capsys):
    """``dmsl train --job FILE`` (issue 21): the file is the TrainConfig's own dict (what the Train tab
    writes as RUN/job.json); the run goes into its folder; a flag typed beside it overrides its key."""
    from dmsl_core.runs import read_metrics
    from dmsl_core.training import TrainConfig, write_job
    run = tmp_path / "run"
    cfg = TrainConfig(model="dmsl-tiny", epochs=3, head_epochs=1, batch_size=8, device="cpu", augment=False,
                      data=str(synth_data), name="from-a-job")
    job = write_job(run, cfg)
    assert json.loads(job.read_text()) == cfg.to_dict()
    assert main(["train", "--job", str(job), "--epochs", "1"]) == 0, capsys.readouterr().err
    assert (run / "model.safetensors").exists()
    saved = json.loads((run / "config.json").read_text())
    saved.pop("dmsl_version")
    assert saved == {**cfg.to_dict(), "epochs": 1}              # the job, with the typed flag over it
    assert [r["epoch"] for r in read_metrics(run) if r["phase"] == 0] == [1]
    assert json.loads((run / "model.json").read_text())["name"] == "from-a-job"


def test_job_file_errors_are_one_clear_line(tmp_path, capsys):
    job = tmp_path / "job.json"
    job.write_text(json.dumps({"model": "dmsl-tiny", "data": str(tmp_path), "learning_rate": 0.1}))
    assert main(["train", "--job", str(job)]) == 2
    err = capsys.readouterr().err
    assert f"{job}: unknown key 'learning_rate' in the job file" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    job.write_text(json.dumps({"model": "dmsl-tiny", "data": str(tmp_path), "epochs": "3"}))
    assert main(["train", "--job", str(job)]) == 2
    assert f"{job}: key 'epochs' in the job file must be an integer" in capsys.readouterr().err
    job.write_text("{not json")
    assert main(["cv", "--job", str(job)]) == 2
    assert f"{job}: not a JSON job file" in capsys.readouterr().err
    job.write_text(json.dumps({"model": "dmsl-tiny"}))
    assert main(["train", "--job", str(job)]) == 2
    assert "no \"data\"" in capsys.readouterr().err
    assert main(["train", "--out", str(tmp_path / "r")]) == 2
    assert "--data is required (or --job FILE)" in capsys.readouterr().err


def test_job_file_and_flags_make_the_configuration_the_flags_alone_make(tmp_path):
    """With --job only the flags typed override the file (a flag left at its default does not); without
    --job the flags build the TrainConfig exactly as before."""
    from dmsl_core.cli import build_parser
    from dmsl_core.commands.train import _config_from_args, _out_dir, _requested_folds
    from dmsl_core.training import TrainConfig, write_job
    flags = ["--config", "dmsl-tiny", "--epochs", "5", "--stages", "1,2,3", "--joint-lr", "0.001", "--no-mirror",
             "--spectra", "th", "--fold", "2", "--threads", "3", "--name", "n"]
    parse = build_parser().parse_args
    by_flags = parse(["train", "--data", str(tmp_path), "--out", str(tmp_path / "r"), *flags])
    cfg = _config_from_args(by_flags, _requested_folds(by_flags))
    assert (cfg.model, cfg.epochs, cfg.stages, cfg.joint_lr, cfg.mirror, cfg.spectra, cfg.fold, cfg.num_threads,
            cfg.name, cfg.device) == ("dmsl-tiny", 5, (1, 2, 3), 0.001, False, ("th",), 2, 3, "n", "auto")
    job = write_job(tmp_path / "r", cfg)
    args = parse(["train", "--job", str(job)])
    assert _config_from_args(args, _requested_folds(args)) == cfg and _out_dir(args) == tmp_path / "r"
    args = parse(["train", "--job", str(job), "--epochs", "30", "--fold", "all", "--folds", "4"])
    assert _requested_folds(args) == [0, 1, 2, 3]
    assert _config_from_args(args, 1) == TrainConfig(**{**cfg.__dict__, "epochs": 30, "fold": 1})
