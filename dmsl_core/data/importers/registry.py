"""The importer presets, registered by name (like the face detectors of :mod:`dmsl_core.detection`).

A preset is a function ``fn(src, dst, **options) -> ImportReport``. Each preset module registers its
own with :func:`register_preset`; :func:`get_preset` and :func:`import_dataset` look it up by name,
and :func:`list_presets` gives the names in registration order (the order ``dmsl import --preset``
lists them). Importing :mod:`dmsl_core.data.importers` registers the shipped presets.
"""
from __future__ import annotations

import os
from typing import Callable, Union

from .common import ImportReport

PathLike = Union[str, os.PathLike]
Importer = Callable[..., ImportReport]

#: name -> importer, in registration order (read it through :func:`get_preset` / :func:`list_presets`)
PRESETS: dict[str, Importer] = {}
_DESCRIPTIONS: dict[str, str] = {}


def register_preset(name: str, description: str = "") -> Callable[[Importer], Importer]:
    """Decorator: register an importer as preset ``name`` (an error if the name is taken)."""
    def deco(fn: Importer) -> Importer:
        if name in PRESETS:
            raise ValueError(f"import preset {name!r} is already registered")
        PRESETS[name] = fn
        _DESCRIPTIONS[name] = description or (fn.__doc__ or "").strip().split("\n")[0]
        return fn
    return deco


def list_presets() -> list[str]:
    """The registered preset names, in registration order."""
    return list(PRESETS)


def describe_preset(name: str) -> str:
    """One line about preset ``name`` ('' when unknown)."""
    return _DESCRIPTIONS.get(name, "")


def get_preset(name: str) -> Importer:
    """The importer registered as ``name``; ValueError naming the known presets otherwise."""
    fn = PRESETS.get(name)
    if fn is None:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return fn


def import_dataset(preset: str, src: PathLike, dst: PathLike, **kwargs) -> ImportReport:
    """Run the importer ``preset`` (a name of :func:`list_presets`); options it does not take are errors."""
    return get_preset(preset)(src, dst, **kwargs)
