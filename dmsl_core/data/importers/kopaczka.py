"""The Kopaczka et al. preset: thermal-only face images named ``irface_subNNN_seqNN_frmNNNNN...``."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

from .common import ImportReport, PathLike
from .pairing import annotation_stem, import_paired
from .registry import register_preset

__all__ = ["KOPACZKA_PATTERN", "import_kopaczka"]

#: Kopaczka et al. thermal faces: ``irface_subNNN_seqNN_frmNNNNN...`` (thermal only).
KOPACZKA_PATTERN = r"irface_sub(?P<subject>\d+)_seq(?P<seq>\d+)_frm(?P<frame>\d+)"


def _kopaczka_key(p: Path) -> Optional[str]:
    m = re.search(KOPACZKA_PATTERN, p.name, re.IGNORECASE)
    return m.group(0).lower() if m else annotation_stem(p)


def _kopaczka_variation(g: dict) -> str:
    return f"seq{g.get('seq', '')}"


@register_preset("kopaczka")
def import_kopaczka(src: PathLike, dst: PathLike, *, pattern: Optional[str] = None, **kwargs) -> ImportReport:
    """Kopaczka et al. thermal faces: ``irface_subNNN_seqNN_frmNNNNN...`` images with ``.ljson``/``.pts``.

    Thermal only; an annotation belongs to the image whose ``irface_sub.._seq.._frm..`` prefix it
    shares. The variation is ``seq<NN>``.
    """
    if kwargs.pop("pair_by", "pattern") != "pattern":
        raise ValueError("kopaczka is thermal only: images are named by pattern, not paired by name or order")
    kwargs.setdefault("default_spectrum", "th")
    return import_paired(src, dst, pair_by="pattern", pattern=pattern or KOPACZKA_PATTERN, preset="kopaczka",
                         variation_fn=None if pattern else _kopaczka_variation,
                         annotation_key=_kopaczka_key, **kwargs)
