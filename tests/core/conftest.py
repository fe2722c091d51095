"""Fixtures for the core tests: a small generated paired dataset, made once per session."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def synth_data(tmp_path_factory):
    """3 subjects x 4 variations of generated visible + thermal pairs (the dataset-folder layout)."""
    from dmsl_core.data.synth import generate_dataset
    out = tmp_path_factory.mktemp("synth") / "data"
    generate_dataset(out, subjects=3, seed=11, variations=["neutral", "smile", "yaw_left", "dark"])
    return out
