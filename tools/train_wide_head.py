"""The wide-head experiment (docs/experiments.md, "A wider FC head on M_l"): M_l of ``dmsl-fast`` with an
FC hidden layer of HIDDEN nodes instead of 256, its U-Net (and the whole M_b) taken from the shipped
model, the new head trained from scratch (stage 2 on the cached U-Net features), then stage 3.

    python tools/train_wide_head.py 768 /work/runs/w768 --data /work/data/mix-r2 -- \\
        --stages 2,3 --head-epochs 15 --joint-epochs 25 --joint-lr 2e-4 --lr-schedule cosine --box-jitter 0.03

Everything after ``--`` goes to ``dmsl train``. The configuration (``dmsl-fast-hHIDDEN``, registered
here for the run; ``landmark_hidden`` in :class:`dmsl_core.models.ModelConfig`) is stored in the run's
weights, so ``dmsl eval --weights OUT`` loads it without this script. Measured once, not shipped: see
the experiment log.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dmsl_core.cli import main as dmsl  # noqa: E402
from dmsl_core.models import create_models  # noqa: E402
from dmsl_core.models.registry import get_config, register_config  # noqa: E402
from dmsl_core.models.weights import load_weights, save_weights  # noqa: E402


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    rest = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("hidden", type=int)
    ap.add_argument("out")
    ap.add_argument("--data", required=True)
    ap.add_argument("--init", default="dmsl-default", help="the weights whose M_b and M_l U-Net start the run")
    ap.add_argument("--threads", default="1")
    a = ap.parse_args(argv)
    base = get_config("dmsl-fast")
    wide = dataclasses.replace(base, name=f"dmsl-fast-h{a.hidden}", landmark_hidden=a.hidden,
                               description=f"dmsl-fast with M_l's FC hidden layer at {a.hidden} nodes")
    register_config(wide)
    icfg, mb, ml, _, ipath = load_weights(a.init)
    if icfg.widths != base.widths or icfg.input_size != base.input_size:
        raise SystemExit(f"{ipath}: configuration {icfg.name!r} is not a dmsl-fast model")
    mb2, ml2 = create_models(wide, seed=0)
    mb2.load_state_dict(mb.state_dict())
    ml2.unet.load_state_dict(ml.unet.state_dict())
    init = Path(a.out + "-init")
    save_weights(init, mb2, ml2, wide, card={"name": f"{wide.name} init from {ipath}"})
    return dmsl(["train", "--data", a.data, "--config", wide.name, "--init", str(init), "--models", "landmark",
                 "--out", a.out, "--threads", a.threads, *rest])


if __name__ == "__main__":
    sys.exit(main())
