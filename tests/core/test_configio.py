"""One way from dataclass configurations to JSON and back (dmsl_core.configio), one policy for what is
not understood: strict configurations name the file and the key, saved state drops it."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Optional

import pytest

from dmsl_core import configio


@dataclass
class Cfg:
    name: str = "x"
    stages: tuple[int, ...] = (1, 2)
    lr: float = 0.1
    epochs: int = 3
    fold: Optional[int] = None
    on: bool = True
    extra: dict = field(default_factory=dict)


def test_round_trip_through_json_keeps_tuples_and_types():
    c = Cfg(name="y", stages=(3,), lr=2.0, fold=1, extra={"a": [1, 2]})
    d = json.loads(json.dumps(configio.to_dict(c)))
    assert d["stages"] == [3]
    back = configio.from_dict(Cfg, d)
    assert back == c and isinstance(back.stages, tuple)
    assert configio.from_dict(Cfg, {"lr": 1}).lr == 1.0 and isinstance(configio.from_dict(Cfg, {"lr": 1}).lr, float)
    assert configio.from_dict(Cfg, {}) == Cfg()                       # keys left out: the defaults


def test_strict_names_the_place_and_the_key():
    with pytest.raises(ValueError, match=r"job\.json: unknown key 'lrate' in the job file \(known keys: name"):
        configio.from_dict(Cfg, {"lrate": 1}, where="job.json", what="in the job file")
    for key, value, want in (("epochs", "3", "an integer"), ("on", 1, "true or false"), ("stages", [], "a non-empty list"),
                             ("stages", ["a"], "a list of int values"), ("fold", "1", "an integer"),
                             ("lr", True, "a number"), ("extra", [], "an object")):
        with pytest.raises(ValueError, match=f"c.json: key '{key}' must be {want}"):
            configio.from_dict(Cfg, {key: value}, where="c.json")
    with pytest.raises(ValueError, match="expected a JSON object for Cfg, not list"):
        configio.from_dict(Cfg, [1])
    assert configio.from_dict(Cfg, {"dmsl_version": "0.1"}, skip=("dmsl_version",)) == Cfg()


def test_lenient_drops_what_it_does_not_understand():
    c = configio.from_dict(Cfg, {"name": "kept", "epochs": "many", "future_key": 1, "fold": None}, strict=False)
    assert c == Cfg(name="kept")


def test_the_real_configurations_use_it():
    from dmsl_core.models import get_config
    from dmsl_core.models.registry import ModelConfig
    from dmsl_core.training import TrainConfig
    t = TrainConfig(model="dmsl-tiny", stages=(3,))
    assert TrainConfig.from_dict(json.loads(json.dumps(t.to_dict()))) == t
    with pytest.raises(ValueError, match="unknown key 'learning_rate'"):
        TrainConfig.from_dict({"learning_rate": 0.1})
    m = get_config("dmsl-fast")
    assert ModelConfig.from_dict(json.loads(json.dumps(m.to_dict()))) == m
    with pytest.raises(ValueError, match="unknown landmark head"):
        ModelConfig.from_dict({**m.to_dict(), "head": "nope"})
