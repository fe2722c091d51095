"""The generic ``paired`` preset: folders of visible/thermal images paired by name, order or pattern.

It is the pairing engine's own importer (:func:`.pairing.import_paired`); the other presets are
layouts of particular datasets built on it.
"""
from __future__ import annotations

from .pairing import import_paired
from .registry import register_preset

__all__ = ["import_paired"]

register_preset("paired", "generic visible/thermal folders (pair by name, order or pattern)")(import_paired)
