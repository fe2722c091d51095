"""Importers: folders of visible/thermal face images (+ annotations) -> a DMSL dataset folder.

The package:

- :mod:`.common`: what every importer shares (:class:`ImportReport`, the destination's checks);
- :mod:`.pairing`: the pairing engine (pairing by name / order / pattern, annotation look-up,
  checked copying into the dataset folder: :func:`import_paired`, :func:`write_plans`);
- :mod:`.registry`: the presets by name (:func:`register_preset`, :func:`get_preset`,
  :func:`list_presets`, :func:`import_dataset`);
- one module per preset, each registering itself: :mod:`.paired` (generic folders), :mod:`.eurecom`,
  :mod:`.speakingfaces`, :mod:`.arl_vtf`, :mod:`.sf_tl54`, :mod:`.kopaczka`, :mod:`.ibug_300w` (300-W).

The names of file and folder names (spectrum words, image extensions, natural order) live in
:mod:`dmsl_core.data.names`. ``dmsl import`` (:mod:`dmsl_core.commands.data`) is the command line.
"""
from __future__ import annotations

from ..names import IMAGE_EXTENSIONS, natural_key, spectrum_from_name, strip_spectrum
from .common import ImportProblem, ImportReport
from .pairing import TH_TOKENS, VIS_TOKENS, Annotation, PairPlan, import_paired, write_plans
from .registry import PRESETS, describe_preset, get_preset, import_dataset, list_presets, register_preset
# the presets register themselves in this order (the order ``dmsl import --preset`` lists them)
from . import paired  # noqa: F401,E402  (registers "paired")
from .eurecom import EURECOM_PATTERN, EURECOM_SUBJECTS, EURECOM_VARIATIONS, import_eurecom
from .speakingfaces import SPEAKINGFACES_PATTERN, SPEAKINGFACES_SPECTRA, import_speakingfaces
from .arl_vtf import import_arl_vtf
from .sf_tl54 import import_sf_tl54
from .kopaczka import KOPACZKA_PATTERN, import_kopaczka
from .ibug_300w import face_crop, import_300w, read_300w_points

__all__ = [
    "ImportProblem", "ImportReport", "PairPlan", "Annotation", "PRESETS", "IMAGE_EXTENSIONS",
    "EURECOM_PATTERN", "EURECOM_SUBJECTS", "EURECOM_VARIATIONS", "SPEAKINGFACES_PATTERN", "SPEAKINGFACES_SPECTRA",
    "KOPACZKA_PATTERN", "VIS_TOKENS", "TH_TOKENS",
    "import_dataset", "import_paired", "import_eurecom", "import_speakingfaces", "import_arl_vtf",
    "import_sf_tl54", "import_kopaczka", "import_300w", "face_crop", "read_300w_points", "write_plans",
    "natural_key", "spectrum_from_name", "strip_spectrum",
    "register_preset", "get_preset", "list_presets", "describe_preset",
]
