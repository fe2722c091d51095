"""The Eurecom VIS-TH preset: 50 subjects x 21 variations of pixel-registered visible/thermal pairs."""
from __future__ import annotations

from typing import Optional, Sequence

from .common import ImportReport, PathLike
from .pairing import import_paired
from .registry import register_preset

__all__ = ["EURECOM_PATTERN", "EURECOM_SUBJECTS", "EURECOM_VARIATIONS", "import_eurecom"]

#: Eurecom VIS-TH: the exact file names are not published. The default takes a number (subject)
#: and a variation name/number, separated by ``_``, ``-`` or ``/``, with an optional spectrum
#: suffix; the spectrum otherwise comes from a ``VIS``/``TH`` (visible/thermal, rgb/ir...) folder.
#: Matches ``VIS/001_05.png``, ``001/05_th.jpg``, ``th/12-smile.png``, ``003_07_vis.png``.
EURECOM_PATTERN = (r"(?:^|/)(?P<subject>\d+)[_/-](?P<variation>[A-Za-z0-9]+)"
                   r"(?:[_-](?P<spectrum>vis|visible|rgb|th|thermal|ir|lwir))?\.[A-Za-z0-9]+$")
EURECOM_SUBJECTS = 50
EURECOM_VARIATIONS = 21


@register_preset("eurecom")
def import_eurecom(src: PathLike, dst: PathLike, *, pattern: Optional[str] = None, pair_by: Optional[str] = None,
                   n_variations: int = EURECOM_VARIATIONS, variation_names: Optional[Sequence[str]] = None,
                   **kwargs) -> ImportReport:
    """Eurecom VIS-TH paired faces (50 subjects x 21 variations, pixel-registered pairs).

    Default: ``pattern`` pairing with :data:`EURECOM_PATTERN`. With ``pair_by='order'`` the sorted
    visible and thermal lists are paired in order and labelled subject-major: pair ``i`` is
    subject ``i // n_variations + 1``, variation ``i % n_variations + 1`` (or
    ``variation_names[i % n_variations]``). The annotations (made on the visible images) serve both.
    """
    pair_by = pair_by or "pattern"
    if pair_by == "pattern":
        pattern = pattern or EURECOM_PATTERN
    if variation_names is not None and len(variation_names) != n_variations:
        raise ValueError(f"{len(variation_names)} variation names for {n_variations} variations")

    def labels(i: int) -> tuple[str, str]:
        s, v = divmod(i, n_variations)
        name = variation_names[v] if variation_names is not None else f"{v + 1:02d}"
        return f"{s + 1:03d}", name

    kwargs.setdefault("registered", True)
    return import_paired(src, dst, pair_by=pair_by, pattern=pattern if pair_by == "pattern" else None,
                         order_labels=labels if pair_by == "order" else None, preset="eurecom", **kwargs)
