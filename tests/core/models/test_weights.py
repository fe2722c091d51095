import json

import pytest
import torch

from dmsl_core.models import create_models, get_config
from dmsl_core.models.weights import WeightsError, load_weights, save_weights
from dmsl_core.pipeline import Predictor


def test_save_and_load_round_trip(tmp_path):
    cfg = get_config("dmsl-tiny")
    mb, ml = create_models(cfg, seed=1)
    path = save_weights(tmp_path / "run", mb, ml, cfg, {"name": "t", "nme_val": {"all": 0.1}})
    assert path.name == "model.safetensors" and (tmp_path / "run" / "model.json").exists()
    cfg2, mb2, ml2, card, p2 = load_weights(tmp_path / "run")
    assert cfg2 == cfg and card["name"] == "t" and p2 == path
    for a, b in zip(ml.state_dict().values(), ml2.state_dict().values()):
        assert torch.equal(a, b)
    # a single file spec, half precision
    p3 = save_weights(tmp_path / "x.safetensors", mb, ml, cfg, half=True)
    _, _, ml3, card3, _ = load_weights(p3)
    assert card3["dtype"] == "float16"
    x = torch.rand(2, 1, 64, 64)
    with torch.inference_mode():
        assert torch.allclose(ml(x), ml3(x), atol=2e-3)


def test_corrupt_and_foreign_files_give_clear_errors(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"this is not a safetensors file at all")
    with pytest.raises(WeightsError, match="bad.safetensors.*not a valid safetensors"):
        Predictor.from_weights(bad)
    from safetensors.torch import save_file
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(3)}, str(foreign))
    with pytest.raises(WeightsError, match="foreign.safetensors.*not a DMSL model"):
        load_weights(foreign)
    with pytest.raises(WeightsError, match="no such weights file"):
        load_weights(tmp_path / "missing.safetensors")
    with pytest.raises(WeightsError, match="neither a run folder"):
        load_weights("no-such-model-name")
    empty_run = tmp_path / "run"
    empty_run.mkdir()
    with pytest.raises(WeightsError, match="has no model.safetensors"):
        load_weights(empty_run)


def test_mismatched_weights_name_the_file(tmp_path):
    cfg = get_config("dmsl-tiny")
    mb, ml = create_models(cfg)
    p = save_weights(tmp_path / "r", mb, ml, cfg)
    from safetensors.torch import load_file, save_file
    t = load_file(str(p))
    t["landmark.fc2.weight"] = torch.zeros(3, 3)
    save_file(t, str(p), metadata={"format": "dmsl-v1", "config": json.dumps(cfg.to_dict())})
    with pytest.raises(WeightsError, match="landmark weights do not match"):
        load_weights(p)
