"""What several ``dmsl`` commands share: argument types, ``--tta`` / ``--refine``, the spectra list,
the NME format of the tables."""
from __future__ import annotations

import argparse
from typing import Optional


# ----------------------------------------------------------------------------- argument types
def _int_at_least(text: str, minimum: int, too_small: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if v < minimum:
        raise argparse.ArgumentTypeError(f"{v} {too_small}")
    return v


def positive_arg(text: str) -> int:
    """argparse type: an integer >= 1 (``--batch-size 0`` is refused when parsing)."""
    return _int_at_least(text, 1, "is not a positive integer (1 or more)")


def count_arg(text: str) -> int:
    """argparse type: an integer >= 0 (``--epochs -1`` is refused when parsing)."""
    return _int_at_least(text, 0, "is negative (0 or more)")


def parse_spectra(arg: str) -> tuple[str, ...]:
    """``--spectra``: vis, th (visible, thermal), both, or a comma-separated list -> ("vis", "th")."""
    names = {"vis": "vis", "visible": "vis", "th": "th", "thermal": "th"}
    out = []
    for part in arg.split(","):
        part = part.strip().lower()
        if part == "both":
            out += ["vis", "th"]
        elif part in names:
            out.append(names[part])
        else:
            raise ValueError(f"unknown spectrum {part!r} (use vis, th or both)")
    return tuple(dict.fromkeys(out))


# ----------------------------------------------------------------------------- inference settings
TTA_HELP = ("test-time augmentation: none; flip (M_b's second pass and every M_l pass also run on the mirrored "
            "crop and the results are averaged; 1.4-1.6x the time per frame, see dmsl bench); flip-final (only "
            "the final M_l pass does: one mirrored crop more per face); default: what the model card says")
REFINE_HELP = ("how the face box is refined before M_l's final pass: mb (M_b again on a crop around its coarse "
               "box), landmarks (M_l on the coarse box, then again on the box of its own landmarks; same cost "
               "as mb), both (one forward more); default: what the model card says (mb when it says nothing)")


def add_inference_args(p) -> None:
    """--tta and --refine (the Predictor's test-time settings; None = the model card's). The
    choices are spelled out so the parser does not import torch; a test holds them to
    ``Predictor.TTA_MODES`` / ``REFINE_MODES``."""
    p.add_argument("--tta", default=None, choices=["none", "flip-final", "flip"], help=TTA_HELP)
    p.add_argument("--refine", default=None, choices=["mb", "landmarks", "both"], help=REFINE_HELP)


# ----------------------------------------------------------------------------- printing
def fmt_nme(v: Optional[float]) -> str:
    """An NME in a table: 4 decimals, ``  --  `` for none."""
    return "  --  " if v is None else f"{v:.4f}"
