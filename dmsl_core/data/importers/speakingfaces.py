"""The SpeakingFaces preset: visible/thermal frames of talking subjects, not pixel-registered."""
from __future__ import annotations

from typing import Optional

from .common import ImportReport, PathLike
from .pairing import import_paired
from .registry import register_preset

__all__ = ["SPEAKINGFACES_PATTERN", "SPEAKINGFACES_SPECTRA", "import_speakingfaces"]

#: SpeakingFaces: ``sub_{id}/trial_{n}/{rgb_image,thr_image}/{sub}_{trial}_{pos}_{frame}_{1|2}.png``,
#: the last field 1 = thermal, 2 = visible.
SPEAKINGFACES_PATTERN = (r"(?:^|/)(?P<subject>\d+)_(?P<trial>\d+)_(?P<pos>\d+)_(?P<frame>\d+)"
                         r"_(?P<spectrum>[12])\.[A-Za-z0-9]+$")
SPEAKINGFACES_SPECTRA = {"1": "th", "2": "vis"}


def _speakingfaces_variation(g: dict) -> str:
    return f"trial{g.get('trial', '')}_pos{g.get('pos', '')}"


@register_preset("speakingfaces")
def import_speakingfaces(src: PathLike, dst: PathLike, *, pattern: Optional[str] = None,
                         pair_by: Optional[str] = None, **kwargs) -> ImportReport:
    """SpeakingFaces: ``sub_{id}/trial_{n}/{rgb_image,thr_image}/{sub}_{trial}_{pos}_{frame}_{1|2}.png``.

    The last field says the spectrum (1 thermal, 2 visible); pairs share sub, trial, pos and frame.
    The variation is ``trial<n>_pos<p>``. The two cameras are not pixel-registered (``registered``
    defaults to False).
    """
    kwargs.setdefault("registered", False)
    kwargs.setdefault("spectrum_map", SPEAKINGFACES_SPECTRA)
    pair_by = pair_by or "pattern"
    return import_paired(src, dst, pair_by=pair_by,
                         pattern=(pattern or SPEAKINGFACES_PATTERN) if pair_by != "order" or pattern else None,
                         variation_fn=None if pattern else _speakingfaces_variation,
                         preset="speakingfaces", **kwargs)
