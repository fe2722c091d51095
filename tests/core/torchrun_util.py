"""Helpers for the tests that launch torchrun: the repository root, a free port, the environment."""
from __future__ import annotations

import os
import socket
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def torchrun_env() -> dict:
    """This environment with the repository first on PYTHONPATH and no inherited WORLD_SIZE."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])])
    env.pop("WORLD_SIZE", None)
    return env
