"""The heatmap head (configuration head="heatmap"): soft-argmax geometry, end-to-end training,
weights round trip, and --init across configurations."""

import numpy as np
import pytest
import torch

from dmsl_core.data.folder import load_samples
from dmsl_core.losses import point_distance_loss
from dmsl_core.models import HeatmapLandmarkModel, create_models, get_config
from dmsl_core.models.registry import ModelConfig
from dmsl_core.models.weights import load_weights, save_weights
from dmsl_core.pipeline import Predictor
from dmsl_core.preprocess import from_normalised
from dmsl_core.training import TrainConfig, Trainer, train


def test_soft_argmax_returns_the_peak_pixel_in_the_pipeline_convention():
    S = 32
    model = HeatmapLandmarkModel((4, 8, 16), input_size=S)
    M = model.map_size
    assert M == S // 2
    rng = np.random.default_rng(0)
    rows, cols = rng.integers(0, M, 68), rng.integers(0, M, 68)

    def peaks(x):
        out = torch.full((x.shape[0], 68, M, M), -1e4)
        out[:, np.arange(68), rows, cols] = 1e4
        return out
    model.heatmap_logits = peaks
    y = model(torch.zeros(2, 1, S, S)).detach().numpy()
    assert y.shape == (2, 136)
    pts = from_normalised(y[0].reshape(68, 2), S)   # view pixels, as the Predictor reads them
    # map pixel j covers view pixels 2j and 2j+1: its centre is 2j + 0.5
    np.testing.assert_allclose(pts[:, 0], 2 * cols + 0.5, atol=1e-4)
    np.testing.assert_allclose(pts[:, 1], 2 * rows + 0.5, atol=1e-4)


def test_gaussian_targets_peak_under_the_point_and_the_loss_prefers_the_truth():
    from dmsl_core.losses import gaussian_targets, heatmap_landmark_loss
    M = 16
    t = torch.tensor([[(5 + 0.5) / M, (9 + 0.5) / M] * 68])
    q = gaussian_targets(t, M)
    assert q.shape == (1, 68, M, M)
    torch.testing.assert_close(q.sum(dim=(2, 3)), torch.ones(1, 68))
    assert int(q[0, 0].argmax()) == 9 * M + 5
    good = heatmap_landmark_loss(t, torch.log(q.clamp_min(1e-12)), t)
    flat = heatmap_landmark_loss(t, torch.full((1, 68, M, M), -float(np.log(M * M))), t)
    assert float(good) < float(flat)


def test_heatmaps_are_distributions_and_outputs_stay_inside_the_view():
    _, ml = create_models("dmsl-tiny-hm", seed=0)
    x = torch.rand(3, 1, 64, 64)
    hm = ml.heatmaps(x)
    assert hm.shape == (3, 68, 32, 32)
    torch.testing.assert_close(hm.sum(dim=(2, 3)), torch.ones(3, 68))
    y = ml(x).detach()   # a plain number check: float() of a tensor that needs grad warns
    assert y.shape == (3, 136) and float(y.min()) > 0 and float(y.max()) < 1


def test_point_distance_loss_is_the_mean_euclidean_distance_over_valid_points():
    p = torch.zeros(1, 68, 2)
    t = torch.zeros(1, 68, 2)
    t[0, :, 0] = 0.3
    t[0, :, 1] = 0.4          # every point 0.5 away
    t[0, 10] = 5.0            # far, but marked missing below
    valid = torch.ones(1, 68, dtype=torch.bool)
    valid[0, 10] = False
    assert abs(float(point_distance_loss(p, t, valid)) - 0.5) < 1e-4
    assert float(point_distance_loss(p, t)) > 0.5


def test_unknown_head_is_a_clear_error():
    d = get_config("dmsl-tiny").to_dict()
    d["head"] = "transformer"
    with pytest.raises(ValueError, match="transformer"):
        ModelConfig.from_dict(d)


def _split(data):
    samples = load_samples(data)
    return [s for s in samples if s.subject != "s003"], [s for s in samples if s.subject == "s003"]


def test_heatmap_model_trains_end_to_end_without_a_stage_2(synth_data, tmp_path):
    train_s, val_s = _split(synth_data)
    events = []
    cfg = TrainConfig(model="dmsl-tiny-hm", epochs=5, head_epochs=3, batch_size=4, lr=3e-3, head_lr=3e-3,
                      device="cpu", augment=False, seed=0)
    path = train(cfg, tmp_path / "run", train_s, val_s, on_event=events.append)
    starts = [(e.model, e.stage) for e in events if e.kind == "phase_start"]
    assert starts == [("boundary", 1), ("boundary", 2), ("landmark", 1)]
    lm = [e for e in events if e.kind == "epoch" and e.model == "landmark"]
    assert len(lm) == 5 and lm[-1].loss < lm[0].loss
    assert all(e.val_nme is not None for e in lm)           # scored by NME, as stage 2 of the FC head is
    # every landmark parameter trained (end to end), and the saved model predicts what the trained one does
    fresh = create_models("dmsl-tiny-hm", seed=0)[1]
    cfg_l, mb, ml, card, _ = load_weights(path)
    assert cfg_l.head == "heatmap" and isinstance(ml, HeatmapLandmarkModel)
    changed = [k for k, v in ml.state_dict().items() if not torch.equal(v, fresh.state_dict()[k])]
    assert "hm_head.4.weight" in changed and "unet.down.0.0.weight" in changed
    assert not any(k.startswith("unet.out") for k in ml.state_dict())   # unused parts are not carried
    a = Predictor.from_weights(path, device="cpu").predict_one(val_s[0].load()).landmarks
    b = Predictor(mb, ml, cfg_l, device="cpu").predict_one(val_s[0].load()).landmarks
    assert np.isfinite(a).all() and a.shape == (68, 2)
    np.testing.assert_allclose(a, b, atol=1e-6)
    assert card["config"]["head"] == "heatmap"


def test_weights_round_trip_for_the_heatmap_head(tmp_path):
    cfg = get_config("dmsl-tiny-hm")
    mb, ml = create_models(cfg, seed=4)
    save_weights(tmp_path, mb, ml, cfg, {"name": "t"})
    _, mb2, ml2, _, _ = load_weights(tmp_path)
    x = torch.rand(2, 1, 64, 64)
    torch.testing.assert_close(ml.eval()(x), ml2(x))


def test_init_from_another_configuration_loads_the_models_that_fit(synth_data, tmp_path):
    train_s, val_s = _split(synth_data)
    src_cfg = get_config("dmsl-tiny")
    mb, ml = create_models(src_cfg, seed=9)
    save_weights(tmp_path / "src", mb, ml, src_cfg, {})
    cfg = TrainConfig(model="dmsl-tiny-hm", train_models="landmark", epochs=1, batch_size=4, device="cpu",
                      augment=False, init_weights=str(tmp_path / "src"))
    events = []
    path = train(cfg, tmp_path / "run", train_s, val_s, on_event=events.append)
    _, mb2, ml2, card, _ = load_weights(path)
    for k, v in mb.state_dict().items():          # M_b fits: taken over, and not trained (landmark only)
        assert torch.equal(v, mb2.state_dict()[k])
    assert card["init"]["loaded"] == ["boundary"] and card["init"]["fresh"] == ["landmark"]
    assert any(e.kind == "status" and "start fresh" in e.message for e in events)
    # asking only for the model that cannot fit is an error naming the file
    bad = TrainConfig(model="dmsl-tiny-hm", epochs=1, device="cpu", init_weights=str(tmp_path / "src"),
                      init_models="landmark")
    with pytest.raises(ValueError, match="no model that fits"):
        Trainer(bad, tmp_path / "run2", train_s, val_s).run()


def test_speed_options_give_the_same_landmarks(synth_data):
    pred = Predictor.untrained("dmsl-tiny-hm", seed=1)
    img = load_samples(synth_data)[0].load()
    ref = pred.predict_one(img).landmarks
    for opts in ({"channels_last": True}, {"grad_mode": "no_grad"}):
        got = Predictor.untrained("dmsl-tiny-hm", seed=1).optimise(**opts).predict_one(img).landmarks
        np.testing.assert_allclose(got, ref, atol=1e-3)
    with pytest.raises(ValueError, match="backend"):
        pred.optimise(backend="tensorrt")


@pytest.mark.parametrize("config", ["dmsl-tiny", "dmsl-tiny-hm"])
def test_onnxruntime_backend_gives_the_same_landmarks(synth_data, config):
    pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
    pytest.importorskip("onnx", reason="the onnx extra is not installed")
    img = load_samples(synth_data)[0].load()
    ref = Predictor.untrained(config, seed=2).predict_one(img).landmarks
    got = Predictor.untrained(config, seed=2).optimise(backend="onnxruntime").predict_one(img).landmarks
    np.testing.assert_allclose(got, ref, atol=1e-2)


def test_the_measured_speed_option_is_applied_only_where_it_can_run(tmp_path):
    pred = Predictor.untrained("dmsl-tiny", seed=0)
    assert pred.apply_measured_speed_option() == "torch (default)"          # no bench figures: plain torch
    pred.card = {"bench": {"best_option": {"option": "channels_last", "device": "cpu", "ratio": 1.2}}}
    assert pred.apply_measured_speed_option() == "channels_last" and pred.options["channels_last"]
    pred.card = {"bench": {"best_option": {"option": "channels_last", "device": "cuda", "ratio": 1.2}}}
    fresh = Predictor.untrained("dmsl-tiny", seed=0)
    fresh.card = pred.card
    assert fresh.apply_measured_speed_option() == "torch (default)"          # measured on another device
    fresh.card = {"bench": {"best_option": {"option": "torch.compile", "device": "cpu"}}}
    fresh.optimise = lambda **kw: (_ for _ in ()).throw(RuntimeError("no compiler")) if kw else Predictor.optimise(fresh)
    assert fresh.apply_measured_speed_option() == "torch (default)"          # cannot run here: falls back


def test_the_automatic_speed_option_skips_compile_and_options_that_move_the_points():
    """The shipped card's bench measured torch.compile fastest among the exact options and ONNX
    Runtime faster still but 0.5 px off; the app must not compile at start-up (tens of seconds per
    input shape) nor take an option that changes the points: it takes channels_last."""
    pred = Predictor.untrained("dmsl-tiny", seed=0)
    rows = [{"option": "baseline (inference_mode, fp32, NCHW)", "device": "cpu", "threads": 1, "fps": 46.0, "max_diff_px": 0.0},
            {"option": "channels_last", "device": "cpu", "threads": 1, "fps": 54.9, "max_diff_px": 0.0002},
            {"option": "torch.compile", "device": "cpu", "threads": 1, "fps": 57.4, "max_diff_px": 0.004},
            {"option": "onnxruntime", "device": "cpu", "threads": 1, "fps": 70.8, "max_diff_px": 0.507},
            {"option": "tta=none", "device": "cpu", "threads": 1, "fps": 80.0, "changes_results": True}]
    pred.card = {"bench": {"threads": 1, "options": rows,
                           "best_option": {"option": "torch.compile", "device": "cpu", "fps": 57.4}}}
    assert pred.apply_measured_speed_option() == "channels_last"
    assert pred.options["channels_last"] and not pred.options["compile"]
    rows[3]["max_diff_px"] = 0.001          # exact ONNX Runtime: the fastest that qualifies
    fresh = Predictor.untrained("dmsl-tiny", seed=0)
    fresh.card = pred.card
    fresh.optimise = lambda **kw: Predictor.optimise(fresh, **kw)
    import importlib.util
    want = "onnxruntime" if importlib.util.find_spec("onnxruntime") else "torch (default)"
    assert fresh.apply_measured_speed_option() == want
