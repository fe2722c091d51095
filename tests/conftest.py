"""Shared test set-up: offscreen Qt (before any Qt import), few torch threads, small fixtures."""
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("OMP_NUM_THREADS", "2")



def pytest_configure(config):
    try:
        import torch
        torch.set_num_threads(2)
    except ImportError:  # pragma: no cover
        pass
