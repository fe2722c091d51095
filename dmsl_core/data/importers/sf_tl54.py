"""The SF-TL54 preset: thermal + visible face pairs annotated with 54 points in LabelMe JSON."""
from __future__ import annotations

from .common import ImportReport, PathLike
from .pairing import import_paired
from .registry import register_preset

__all__ = ["import_sf_tl54"]


@register_preset("sf-tl54")
def import_sf_tl54(src: PathLike, dst: PathLike, **kwargs) -> ImportReport:
    """SF-TL54: thermal + visible face pairs annotated with 54 points in LabelMe JSON.

    Spectrum from folder names (``rgb``/``visible``/``thermal``/``ir``...) or stem suffixes; pairs by
    stem; each image's LabelMe file (same stem, found anywhere under the source, nearest wins) is
    mapped to 68 points (:func:`~dmsl_core.data.formats.map_54_to_68`; the 14 mouth points it lacks
    are missing). Each image keeps its own landmarks (``registered`` defaults to False).
    """
    kwargs.setdefault("registered", False)
    kwargs.setdefault("pair_by", "pattern" if kwargs.get("pattern") else "name")
    return import_paired(src, dst, preset="sf-tl54", **kwargs)
