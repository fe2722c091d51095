"""One weights file from M_b of one run and M_l of another (same configuration), with the card's
validation / test NME re-measured on the combination (as the trainer measures a finished run).

    python tools/combine_models.py BOUNDARY_RUN LANDMARK_RUN OUT

How the shipped model was put together after stage 3: M_b and M_l were fine-tuned in separate
runs (``--models boundary`` / ``--models landmark``), each of which copies the other model from
``--init``. The card is the landmark run's, plus ``combined_from`` (both runs, and the boundary
run's training configuration). Written with ``save_weights`` (atomic).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dmsl_core.data.splits import split_subjects as _split_subjects  # noqa: E402
from dmsl_core.data.folder import load_samples  # noqa: E402
from dmsl_core.evaluation import card_nme, evaluate_predictor  # noqa: E402
from dmsl_core.models.weights import load_weights, save_weights  # noqa: E402
from dmsl_core.pipeline import Predictor  # noqa: E402


def combine(boundary_run, landmark_run, out) -> Path:
    cfg, mb, _, card_b, _ = load_weights(boundary_run)
    cfg_l, _, ml, card, _ = load_weights(landmark_run)
    if cfg.to_dict() != cfg_l.to_dict():
        raise ValueError(f"{boundary_run} is a {cfg.name} model and {landmark_run} a {cfg_l.name} one: "
                         "only models of the same configuration can be combined")
    card = dict(card)
    card["combined_from"] = {"boundary": str(Path(boundary_run).resolve()),
                             "landmark": str(Path(landmark_run).resolve()),
                             "boundary_training": card_b.get("training"), "boundary_init": card_b.get("init")}
    pred = Predictor(mb, ml, cfg, device="cpu")
    t = card.get("training") or {}
    if t.get("data") and Path(t["data"]).is_dir():
        _, val, test = _split_subjects(t["data"], t.get("fold"), 10)
        for tag, subjects in (("val", val), ("test", test)):
            card.pop(f"nme_{tag}", None)      # the landmark run's figures were for another M_b
            samples = load_samples(t["data"], tuple(t.get("spectra") or ("vis", "th")), subjects=subjects)
            if samples:
                rep = evaluate_predictor(pred, samples)
                card[f"nme_{tag}"] = card_nme(rep)
    else:
        card.pop("nme_val", None)
        card.pop("nme_test", None)
    return save_weights(out, pred.boundary, pred.landmark, cfg, card)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("boundary_run", help="the run (or weights) whose M_b is kept")
    p.add_argument("landmark_run", help="the run (or weights) whose M_l and card are kept")
    p.add_argument("out", help="folder to write model.safetensors + model.json to")
    a = p.parse_args()
    path = combine(a.boundary_run, a.landmark_run, a.out)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
